"""Project API keys through the use cases: who may create, list and revoke them, and what a key
may do (trigger its own project, nothing else)."""

from __future__ import annotations

import pytest

from ryax_authorization.application.use_cases import AuthorizationUseCases
from ryax_authorization.domain.errors import (
    AlreadyExists,
    AuthenticationFailed,
    Forbidden,
    InvalidInput,
    NotFound,
)
from ryax_authorization.domain.model import ApiKeyId, LockoutPolicy, Operation, ProjectId, Role
from ryax_kit.testing import FakeClock

from .fakes import FakeHasher, FakeTokens, FakeUnitOfWork

PASSWORD = "correct horse battery"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def uc(clock: FakeClock) -> AuthorizationUseCases:
    db: dict[str, dict] = {"users": {}, "projects": {}, "tokens": {}, "revoked": {}}  # type: ignore[type-arg]
    cases = AuthorizationUseCases(
        uow_factory=lambda: FakeUnitOfWork(db),
        hasher=FakeHasher(),
        tokens=FakeTokens(),
        clock=clock,
        lockout=LockoutPolicy(),
    )
    assert await cases.bootstrap_admin("admin", PASSWORD)
    return cases


async def admin_token(uc: AuthorizationUseCases) -> str:
    return (await uc.login("admin", PASSWORD)).access_token


@pytest.fixture
async def world(uc: AuthorizationUseCases) -> dict[str, str]:
    """alpha (alice owner, bob developer, carol viewer) and beta (dave owner)."""
    admin = await uc.authenticate(await admin_token(uc))
    users = {n: await uc.create_user(admin, n, PASSWORD) for n in ("alice", "bob", "carol", "dave")}
    alpha = await uc.create_project(admin, "alpha", users["alice"].id)
    beta = await uc.create_project(admin, "beta", users["dave"].id)
    alice = await uc.authenticate((await uc.login("alice", PASSWORD)).access_token)
    await uc.set_member(alice, alpha.id, users["bob"].id, Role.DEVELOPER)
    await uc.set_member(alice, alpha.id, users["carol"].id, Role.VIEWER)
    tokens = {n: (await uc.login(n, PASSWORD)).access_token for n in users}
    return {**tokens, "alpha": alpha.id, "beta": beta.id}


async def test_an_owner_creates_a_key_shown_once_and_stored_hashed(
    uc: AuthorizationUseCases, world: dict[str, str]
) -> None:
    alice = await uc.authenticate(world["alice"])
    new = await uc.create_api_key(alice, ProjectId("alpha"), "  billing system ")
    assert new.key.startswith("ryaxpk_") and len(new.key) > 40
    assert new.record.name == "billing system" and new.record.project_id == world["alpha"]
    assert new.key not in new.record.key_hash and len(new.record.key_hash) == 64
    assert new.record.created_by == alice.user_id and new.record.last_used_at is None
    listed = await uc.list_api_keys(alice, ProjectId(world["alpha"]))
    assert [(k.id, k.name, k.revoked) for k in listed] == [(new.record.id, "billing system", False)]


async def test_only_owners_and_admins_create_and_revoke_members_list(
    uc: AuthorizationUseCases, world: dict[str, str]
) -> None:
    bob, carol, dave = [await uc.authenticate(world[n]) for n in ("bob", "carol", "dave")]
    for who in (bob, carol, dave):
        with pytest.raises(Forbidden):
            await uc.create_api_key(who, ProjectId("alpha"), "k")
    admin = await uc.authenticate(await admin_token(uc))
    new = await uc.create_api_key(admin, ProjectId("alpha"), "by the admin")
    assert [k.name for k in await uc.list_api_keys(carol, ProjectId("alpha"))] == ["by the admin"]
    with pytest.raises(Forbidden):
        await uc.list_api_keys(dave, ProjectId("alpha"))
    for who in (bob, carol):
        with pytest.raises(Forbidden):
            await uc.revoke_api_key(who, ProjectId("alpha"), new.record.id)
    # dave owns beta, not alpha: the key is not found through his project.
    with pytest.raises(NotFound):
        await uc.revoke_api_key(dave, ProjectId("beta"), new.record.id)


async def test_names_are_unique_among_keys_in_use(
    uc: AuthorizationUseCases, world: dict[str, str]
) -> None:
    alice = await uc.authenticate(world["alice"])
    first = await uc.create_api_key(alice, ProjectId("alpha"), "ci")
    with pytest.raises(AlreadyExists, match="ci"):
        await uc.create_api_key(alice, ProjectId("alpha"), "ci")
    for bad in ("", "   ", "x" * 201):
        with pytest.raises(InvalidInput, match="name"):
            await uc.create_api_key(alice, ProjectId("alpha"), bad)
    await uc.revoke_api_key(alice, ProjectId("alpha"), first.record.id)
    second = await uc.create_api_key(alice, ProjectId("alpha"), "ci")  # the name is free again
    assert second.record.id != first.record.id


async def test_a_key_triggers_its_own_project_only(
    uc: AuthorizationUseCases, world: dict[str, str]
) -> None:
    alice = await uc.authenticate(world["alice"])
    key = (await uc.create_api_key(alice, ProjectId("alpha"), "ci")).key
    for project in (world["alpha"], "alpha"):
        access = await uc.authorize(key, ProjectId(project), Operation.TRIGGER)
        assert access.project_id == world["alpha"] and access.principal.api_key_id is not None
        assert not access.principal.is_admin and access.role == Role.DEVELOPER
    for operation in (Operation.READ, Operation.WRITE, Operation.MANAGE):
        with pytest.raises(Forbidden, match="only calls the user API"):
            await uc.authorize(key, ProjectId("alpha"), operation)
    with pytest.raises(Forbidden, match="not one of project beta"):
        await uc.authorize(key, ProjectId("beta"), Operation.TRIGGER)


async def test_security_a_key_manages_nothing_not_even_itself(
    uc: AuthorizationUseCases, world: dict[str, str]
) -> None:
    """Everywhere but the contract, a key is refused: no /me, no tokens, no keys, no members."""
    alice = await uc.authenticate(world["alice"])
    key = (await uc.create_api_key(alice, ProjectId("alpha"), "ci")).key
    with pytest.raises(Forbidden, match="only calls the user API"):
        await uc.authenticate(key)


async def test_users_trigger_with_the_developer_role(
    uc: AuthorizationUseCases, world: dict[str, str]
) -> None:
    assert (await uc.authorize(world["bob"], ProjectId("alpha"), Operation.TRIGGER)).role == (
        Role.DEVELOPER
    )
    with pytest.raises(Forbidden, match="developer is needed"):
        await uc.authorize(world["carol"], ProjectId("alpha"), Operation.TRIGGER)


async def test_a_revoked_or_unknown_key_is_refused_alike(
    uc: AuthorizationUseCases, world: dict[str, str]
) -> None:
    alice = await uc.authenticate(world["alice"])
    new = await uc.create_api_key(alice, ProjectId("alpha"), "ci")
    revoked = await uc.revoke_api_key(alice, ProjectId("alpha"), new.record.id)
    assert revoked.revoked and revoked.revoked_at is not None
    again = await uc.revoke_api_key(alice, ProjectId("alpha"), new.record.id)  # idempotent
    assert again.revoked_at == revoked.revoked_at
    errors = []
    for key in (new.key, "ryaxpk_" + "x" * 43):
        with pytest.raises(AuthenticationFailed) as caught:
            await uc.authorize(key, ProjectId("alpha"), Operation.TRIGGER)
        errors.append(caught.value.detail)
    assert errors[0] == errors[1] == "invalid or revoked API key"
    with pytest.raises(NotFound):
        await uc.revoke_api_key(alice, ProjectId("alpha"), ApiKeyId("no-such-key"))


async def test_last_used_at_is_kept_to_the_minute(
    uc: AuthorizationUseCases, world: dict[str, str], clock: FakeClock
) -> None:
    alice = await uc.authenticate(world["alice"])
    new = await uc.create_api_key(alice, ProjectId("alpha"), "ci")
    await uc.authorize(new.key, ProjectId("alpha"), Operation.TRIGGER)
    (used,) = await uc.list_api_keys(alice, ProjectId("alpha"))
    first = used.last_used_at
    assert first == clock.now()
    clock.advance(30)
    await uc.authorize(new.key, ProjectId("alpha"), Operation.TRIGGER)
    assert (await uc.list_api_keys(alice, ProjectId("alpha")))[0].last_used_at == first
    clock.advance(31)
    await uc.authorize(new.key, ProjectId("alpha"), Operation.TRIGGER)
    assert (await uc.list_api_keys(alice, ProjectId("alpha")))[0].last_used_at == clock.now()
