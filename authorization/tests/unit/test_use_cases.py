"""Use cases through fakes: assert on state and answers, not on mock calls."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ryax_authorization.application.use_cases import AuthorizationUseCases
from ryax_authorization.domain.errors import (
    AccountLocked,
    AlreadyExists,
    AuthenticationFailed,
    Forbidden,
    InvalidInput,
)
from ryax_authorization.domain.model import (
    LockoutPolicy,
    Operation,
    ProjectId,
    Role,
    TokenId,
    UserId,
)
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
        lockout=LockoutPolicy(max_failures=3, lock_for=timedelta(minutes=1)),
    )
    assert await cases.bootstrap_admin("admin", PASSWORD)
    return cases


async def admin_token(uc: AuthorizationUseCases) -> str:
    return (await uc.login("admin", PASSWORD)).access_token


async def test_bootstrap_only_once(uc: AuthorizationUseCases) -> None:
    assert not await uc.bootstrap_admin("other", PASSWORD)


async def test_login_failures_look_the_same_and_lock_out(
    uc: AuthorizationUseCases, clock: FakeClock
) -> None:
    with pytest.raises(AuthenticationFailed) as unknown:
        await uc.login("nobody", PASSWORD)
    with pytest.raises(AuthenticationFailed) as wrong:
        await uc.login("admin", "wrong password")
    assert unknown.value.detail == wrong.value.detail == "invalid credentials"
    for _ in range(2):
        with pytest.raises(AuthenticationFailed):
            await uc.login("admin", "wrong password")
    with pytest.raises(AccountLocked):
        await uc.login("admin", PASSWORD)
    clock.advance(2 * 60)
    assert (await uc.login("admin", PASSWORD)).access_token


async def test_security_lockout_does_not_reveal_which_usernames_exist(
    uc: AuthorizationUseCases, clock: FakeClock
) -> None:
    """After the same failures an unknown username is locked exactly like a real one: same
    error, same message, same Retry-After; and both unlock the same way."""
    answers: dict[str, list[tuple[str, str]]] = {}
    for name in ("admin", "ghost"):
        seen = []
        for _ in range(4):  # max_failures=3: three 401, then locked
            try:
                await uc.login(name, "wrong password")
            except (AuthenticationFailed, AccountLocked) as exc:
                retry = getattr(exc, "retry_after_seconds", "")
                seen.append((type(exc).__name__, f"{exc.detail}|{retry}"))
        answers[name] = seen
    assert answers["admin"] == answers["ghost"]
    assert answers["admin"][-1][0] == "AccountLocked"
    with pytest.raises(AccountLocked):  # locked even with the right password
        await uc.login("admin", PASSWORD)
    clock.advance(2 * 60)
    assert (await uc.login("admin", PASSWORD)).access_token
    with pytest.raises(AuthenticationFailed):
        await uc.login("ghost", "wrong password")


async def test_security_unknown_and_locked_usernames_take_the_same_steps() -> None:
    """One password verification (real or dummy) per attempt while not locked, none once
    locked: the work done, hence the time taken, follows the same order for both."""
    hasher = FakeHasher()
    db: dict[str, dict] = {"users": {}, "projects": {}, "tokens": {}, "revoked": {}}  # type: ignore[type-arg]
    cases = AuthorizationUseCases(
        uow_factory=lambda: FakeUnitOfWork(db),
        hasher=hasher,
        tokens=FakeTokens(),
        clock=FakeClock(),
        lockout=LockoutPolicy(max_failures=2, lock_for=timedelta(minutes=1)),
    )
    await cases.bootstrap_admin("admin", PASSWORD)
    steps: dict[str, list[list[str]]] = {}
    for name in ("admin", "ghost"):
        steps[name] = []
        for _ in range(3):
            hasher.calls.clear()
            with pytest.raises((AuthenticationFailed, AccountLocked)):
                await cases.login(name, "wrong password")
            steps[name].append(["verify" if c == "dummy" else c for c in hasher.calls])
    assert steps["admin"] == steps["ghost"] == [["verify"], ["verify"], []]


async def test_logout_revokes_and_expiry_rejects(
    uc: AuthorizationUseCases, clock: FakeClock
) -> None:
    token = await admin_token(uc)
    assert (await uc.authenticate(token)).username == "admin"
    await uc.logout(token)
    with pytest.raises(AuthenticationFailed):
        await uc.authenticate(token)
    token = await admin_token(uc)
    clock.advance(2 * 3600)
    with pytest.raises(AuthenticationFailed, match="expired"):
        await uc.authenticate(token)
    with pytest.raises(AuthenticationFailed):
        await uc.authenticate("garbled")


async def test_projects_members_and_the_contract(uc: AuthorizationUseCases) -> None:
    admin = await uc.authenticate(await admin_token(uc))
    alice = await uc.create_user(admin, "alice", PASSWORD)
    bob = await uc.create_user(admin, "bob", PASSWORD)
    with pytest.raises(AlreadyExists):
        await uc.create_user(admin, "alice", PASSWORD)
    project = await uc.create_project(admin, "alpha", alice.id)
    alice_token = (await uc.login("alice", PASSWORD)).access_token
    bob_token = (await uc.login("bob", PASSWORD)).access_token

    with pytest.raises(Forbidden):
        await uc.authorize(bob_token, project.id, Operation.READ)
    alice_p = await uc.authenticate(alice_token)
    await uc.set_member(alice_p, project.id, bob.id, Role.VIEWER)
    access = await uc.authorize(bob_token, ProjectId("alpha"), Operation.READ)
    assert access.role == Role.VIEWER and access.project_id == project.id
    with pytest.raises(Forbidden):
        await uc.authorize(bob_token, project.id, Operation.WRITE)
    bob_p = await uc.authenticate(bob_token)
    with pytest.raises(Forbidden):
        await uc.set_member(bob_p, project.id, bob.id, Role.OWNER)
    with pytest.raises(Forbidden):
        await uc.create_project(bob_p, "beta")
    by_name = await uc.create_project(admin, "gamma", UserId("bob"))  # a username too
    assert by_name.members == {bob.id: Role.OWNER}
    assert await uc.member_names(by_name) == {bob.id: "bob"}
    with pytest.raises(InvalidInput, match="owner_id: no user has the id or username 'nobody'"):
        await uc.create_project(admin, "delta", UserId("nobody"))
    with pytest.raises(Forbidden, match="no access"):
        await uc.authorize(alice_token, ProjectId("does-not-exist"), Operation.READ)


async def test_change_password(uc: AuthorizationUseCases) -> None:
    admin = await uc.authenticate(await admin_token(uc))
    with pytest.raises(InvalidInput, match="too short"):
        await uc.change_password(admin, PASSWORD, "short")
    with pytest.raises(AuthenticationFailed):
        await uc.change_password(admin, "not the password", "a new long password")
    await uc.change_password(admin, PASSWORD, "a new long password")
    assert await uc.login("admin", "a new long password")


async def test_security_changing_a_password_revokes_every_token_of_the_user(
    uc: AuthorizationUseCases,
) -> None:
    admin_session = await admin_token(uc)
    admin = await uc.authenticate(admin_session)
    alice = await uc.create_user(admin, "alice", PASSWORD)
    first, second = (await uc.login("alice", PASSWORD)).access_token, await admin_token(uc)
    alice_p = await uc.authenticate(first)
    machine = await uc.create_machine_token(alice_p, "ci")
    other = await uc.create_machine_token(admin, "admin-ci")

    await uc.change_password(alice_p, PASSWORD, "a new long password")

    for token in (first, machine.token):
        with pytest.raises(AuthenticationFailed, match="revoked"):
            await uc.authenticate(token)
    fresh = (await uc.login("alice", "a new long password")).access_token
    assert (await uc.authenticate(fresh)).user_id == alice.id
    # Another user's tokens are untouched.
    assert (await uc.authenticate(second)).username == "admin"
    assert (await uc.authenticate(other.token)).machine


async def test_wrong_current_passwords_count_toward_the_lockout(
    uc: AuthorizationUseCases,
) -> None:
    admin = await uc.authenticate(await admin_token(uc))
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            await uc.change_password(admin, "not the password", "a new long password")
    with pytest.raises(AccountLocked):
        await uc.change_password(admin, PASSWORD, "a new long password")
    with pytest.raises(AccountLocked):
        await uc.login("admin", PASSWORD)


async def test_machine_tokens(uc: AuthorizationUseCases, clock: FakeClock) -> None:
    admin = await uc.authenticate(await admin_token(uc))
    new = await uc.create_machine_token(admin, "ci", timedelta(days=1))
    assert new.token.startswith("ryax_") and new.token not in new.record.token_hash
    principal = await uc.authenticate(new.token)
    assert principal.machine and principal.username == "admin"
    assert [t.name for t in await uc.list_machine_tokens(admin)] == ["ci"]
    await uc.revoke_machine_token(admin, TokenId(new.record.id))
    with pytest.raises(AuthenticationFailed):
        await uc.authenticate(new.token)
