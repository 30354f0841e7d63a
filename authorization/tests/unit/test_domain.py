"""Domain rules of the authorization service, without infrastructure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ryax_authorization.domain.errors import AccountLocked, Conflict, Forbidden, InvalidInput
from ryax_authorization.domain.model import (
    LockoutPolicy,
    LoginAttempts,
    MachineToken,
    Operation,
    Principal,
    Project,
    ProjectId,
    Role,
    TokenId,
    User,
    UserId,
    authorize,
    check_password_policy,
    check_project_name,
    check_username,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def principal(user: str, admin: bool = False) -> Principal:
    return Principal(user_id=UserId(user), username=user, is_admin=admin, token_id=TokenId("t"))


def project() -> Project:
    p = Project(id=ProjectId("p1"), name="alpha", created_at=NOW)
    p.set_member(UserId("owner"), Role.OWNER)
    p.set_member(UserId("dev"), Role.DEVELOPER)
    p.set_member(UserId("view"), Role.VIEWER)
    return p


@pytest.mark.parametrize(
    ("user", "operation", "allowed"),
    [
        ("owner", Operation.READ, True),
        ("owner", Operation.WRITE, True),
        ("owner", Operation.MANAGE, True),
        ("dev", Operation.READ, True),
        ("dev", Operation.WRITE, True),
        ("dev", Operation.MANAGE, False),
        ("view", Operation.READ, True),
        ("view", Operation.WRITE, False),
        ("view", Operation.MANAGE, False),
        ("stranger", Operation.READ, False),
    ],
)
def test_role_matrix(user: str, operation: Operation, allowed: bool) -> None:
    if allowed:
        access = authorize(principal(user), project(), operation)
        assert access.project_id == "p1"
    else:
        with pytest.raises(Forbidden):
            authorize(principal(user), project(), operation)


def test_admin_may_do_anything_in_any_project() -> None:
    access = authorize(principal("root", admin=True), project(), Operation.MANAGE)
    assert access.role == Role.OWNER


def test_forbidden_message_names_the_needed_role() -> None:
    with pytest.raises(Forbidden, match="developer is needed"):
        authorize(principal("view"), project(), Operation.WRITE)


def test_last_owner_cannot_be_demoted_or_removed() -> None:
    p = project()
    with pytest.raises(Conflict):
        p.set_member(UserId("owner"), Role.VIEWER)
    with pytest.raises(Conflict):
        p.remove_member(UserId("owner"))
    p.set_member(UserId("dev"), Role.OWNER)
    p.remove_member(UserId("owner"))
    assert p.role_of(UserId("owner")) is None


def test_removing_a_non_member_is_refused() -> None:
    with pytest.raises(InvalidInput, match="not a member"):
        project().remove_member(UserId("nobody"))


def test_password_policy() -> None:
    with pytest.raises(InvalidInput, match="too short: at least 10"):
        check_password_policy("short")
    with pytest.raises(InvalidInput, match="too long"):
        check_password_policy("x" * 2000)
    check_password_policy("long enough password")


@pytest.mark.parametrize("name", ["a", "-bad", "has space", "x" * 80])
def test_bad_usernames(name: str) -> None:
    with pytest.raises(InvalidInput, match="username"):
        check_username(name)


@pytest.mark.parametrize("name", ["A", "Upper", "under_score", "-x"])
def test_bad_project_names(name: str) -> None:
    with pytest.raises(InvalidInput, match="name"):
        check_project_name(name)


def test_lockout_after_repeated_failures_then_unlock() -> None:
    policy = LockoutPolicy(max_failures=3, lock_for=timedelta(seconds=30))
    attempts = LoginAttempts(username="u")
    for _ in range(3):
        attempts.ensure_not_locked(NOW)
        attempts.record_failure(NOW, policy)
    with pytest.raises(AccountLocked) as info:
        attempts.ensure_not_locked(NOW + timedelta(seconds=10))
    assert 0 < info.value.retry_after_seconds <= 21
    attempts.ensure_not_locked(NOW + timedelta(seconds=31))


def test_old_failures_are_forgotten() -> None:
    policy = LockoutPolicy(max_failures=3, forget_after=timedelta(hours=1))
    attempts = LoginAttempts(username="u")
    for _ in range(2):
        attempts.record_failure(NOW, policy)
    attempts.record_failure(NOW + timedelta(hours=2), policy)
    assert attempts.failures == 1 and attempts.locked_until is None


def test_a_password_change_moves_the_token_generation_on() -> None:
    user = User(id=UserId("u"), username="u", password_hash="h", created_at=NOW)
    user.change_password("h2")
    assert (user.password_hash, user.token_generation) == ("h2", 1)


def test_machine_token_usability() -> None:
    token = MachineToken(
        id=TokenId("t"),
        user_id=UserId("u"),
        name="ci",
        token_hash="h",
        created_at=NOW,
        expires_at=NOW + timedelta(days=1),
    )
    assert token.is_usable(NOW)
    assert not token.is_usable(NOW + timedelta(days=2))
    token.revoke(NOW)
    assert not token.is_usable(NOW)
