"""Users, projects, memberships and roles: the rules of who may do what."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NewType

from .errors import AccountLocked, Conflict, Forbidden, InvalidInput

UserId = NewType("UserId", str)
ProjectId = NewType("ProjectId", str)
TokenId = NewType("TokenId", str)
ApiKeyId = NewType("ApiKeyId", str)

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{1,63}$")
PROJECT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


class Role(StrEnum):
    """Project roles, from the most to the least powerful."""

    OWNER = "owner"
    DEVELOPER = "developer"
    VIEWER = "viewer"

    @property
    def rank(self) -> int:
        return {Role.OWNER: 3, Role.DEVELOPER: 2, Role.VIEWER: 1}[self]

    def allows(self, needed: Role) -> bool:
        """An owner can do what a developer can, who can do what a viewer can."""
        return self.rank >= needed.rank


class Operation(StrEnum):
    """What a request wants to do inside a project; each needs a minimum role."""

    READ = "read"  # list, show, download, follow logs
    WRITE = "write"  # create/edit/delete workflows, repositories, deploy, trigger, cancel
    MANAGE = "manage"  # members and roles
    TRIGGER = "trigger"  # call the project's user API (/user-api/...): also a project API key

    @property
    def needed_role(self) -> Role:
        return {
            Operation.READ: Role.VIEWER,
            Operation.WRITE: Role.DEVELOPER,
            Operation.MANAGE: Role.OWNER,
            Operation.TRIGGER: Role.DEVELOPER,
        }[self]


def check_password_policy(password: str) -> None:
    """A password is at least MIN_PASSWORD_LENGTH characters and not absurdly long."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            "password", f"too short: at least {MIN_PASSWORD_LENGTH} characters are required"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput("password", f"too long: at most {MAX_PASSWORD_LENGTH} characters")


def check_username(username: str) -> None:
    if not USERNAME_RE.match(username):
        raise InvalidInput(
            "username",
            "2 to 64 characters: letters, digits and _ . @ -, starting with a letter or digit",
        )


def check_project_name(name: str) -> None:
    if not PROJECT_NAME_RE.match(name):
        raise InvalidInput("name", "2 to 63 characters: lower-case letters, digits and dashes")


@dataclass(frozen=True, kw_only=True)
class LockoutPolicy:
    """After `max_failures` wrong passwords in a row for one username the login is locked for
    `lock_for`; failures older than `forget_after` are forgotten."""

    max_failures: int = 5
    lock_for: timedelta = timedelta(minutes=1)
    forget_after: timedelta = timedelta(days=1)


@dataclass(eq=False, kw_only=True)
class LoginAttempts:
    """The failed logins under one username, kept whether or not a user has that name: an
    unknown username is locked after the same failures, with the same answer, as a real one,
    so lockout does not tell which usernames exist."""

    username: str
    failures: int = 0
    locked_until: datetime | None = None
    last_failed_at: datetime | None = None

    def ensure_not_locked(self, now: datetime) -> None:
        if self.locked_until is not None and now < self.locked_until:
            raise AccountLocked(int((self.locked_until - now).total_seconds()) + 1)

    def record_failure(self, now: datetime, policy: LockoutPolicy) -> None:
        if self.last_failed_at is not None and now - self.last_failed_at > policy.forget_after:
            self.failures = 0
        self.failures += 1
        self.last_failed_at = now
        if self.failures >= policy.max_failures:
            self.locked_until = now + policy.lock_for
            self.failures = 0


@dataclass(eq=False, kw_only=True)
class User:
    id: UserId
    username: str
    password_hash: str
    is_admin: bool = False
    created_at: datetime
    #: Access tokens carry the generation they were issued in; only the current one is valid.
    token_generation: int = 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, User) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def change_password(self, password_hash: str) -> None:
        """The new password, and every access token issued before it revoked."""
        self.password_hash = password_hash
        self.token_generation += 1


@dataclass(eq=False, kw_only=True)
class Project:
    id: ProjectId
    name: str
    created_at: datetime
    members: dict[UserId, Role] = field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Project) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def role_of(self, user_id: UserId) -> Role | None:
        return self.members.get(user_id)

    def set_member(self, user_id: UserId, role: Role) -> None:
        """Add a member or change a role; the project never loses its last owner."""
        current = self.members.get(user_id)
        if current == Role.OWNER and role != Role.OWNER and self._owner_count() == 1:
            raise Conflict("a project must keep at least one owner")
        self.members[user_id] = role

    def remove_member(self, user_id: UserId) -> None:
        if user_id not in self.members:
            raise InvalidInput("user_id", "is not a member of this project")
        if self.members[user_id] == Role.OWNER and self._owner_count() == 1:
            raise Conflict("a project must keep at least one owner")
        del self.members[user_id]

    def _owner_count(self) -> int:
        return sum(1 for r in self.members.values() if r == Role.OWNER)


@dataclass(frozen=True, kw_only=True)
class Principal:
    """Who is calling: resolved from a token."""

    user_id: UserId
    username: str
    is_admin: bool
    token_id: TokenId
    machine: bool = False
    #: A project API key: the key and its project (it may only trigger there).
    api_key_id: ApiKeyId | None = None
    api_key_project_id: ProjectId | None = None


@dataclass(frozen=True, kw_only=True)
class ProjectAccess:
    """The answer of the authorization contract: the caller, the project, the effective role."""

    principal: Principal
    project_id: ProjectId
    project_name: str
    role: Role


def authorize(principal: Principal, project: Project, operation: Operation) -> ProjectAccess:
    """Admins may do anything; others need membership with the role the operation needs. A
    project API key may trigger (call the user API of) its own project, nothing else."""
    if principal.api_key_id is not None:
        if principal.api_key_project_id != project.id:
            raise Forbidden(f"this API key is not one of project {project.name}")
        if operation is not Operation.TRIGGER:
            raise Forbidden(
                "a project API key only calls the user API of its project (operation trigger), "
                f"it cannot {operation}"
            )
        return ProjectAccess(
            principal=principal,
            project_id=project.id,
            project_name=project.name,
            role=Role.DEVELOPER,
        )
    role = project.role_of(principal.user_id)
    if principal.is_admin:
        return ProjectAccess(
            principal=principal,
            project_id=project.id,
            project_name=project.name,
            role=Role.OWNER,
        )
    if role is None:
        raise Forbidden(f"not a member of project {project.name}")
    if not role.allows(operation.needed_role):
        raise Forbidden(
            f"role {role} in project {project.name} cannot {operation}: "
            f"{operation.needed_role} is needed"
        )
    return ProjectAccess(
        principal=principal, project_id=project.id, project_name=project.name, role=role
    )


def ensure_can_manage(principal: Principal, project: Project) -> None:
    authorize(principal, project, Operation.MANAGE)


def ensure_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("platform administrators only")


@dataclass(eq=False, kw_only=True)
class MachineToken:
    """A long-lived token for the CLI and scripts. Only its hash is stored."""

    id: TokenId
    user_id: UserId
    name: str
    token_hash: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    def is_usable(self, now: datetime) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at

    def revoke(self, now: datetime) -> None:
        if self.revoked_at is None:
            self.revoked_at = now


API_KEY_NAME_MAX = 200


def check_api_key_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > API_KEY_NAME_MAX:
        raise InvalidInput("name", f"1 to {API_KEY_NAME_MAX} characters")
    return name


@dataclass(eq=False, kw_only=True)
class ProjectApiKey:
    """A key that lets a machine call the user API of one project (and nothing else). Only
    its hash is stored; the key itself is shown once, when created."""

    id: ApiKeyId
    project_id: ProjectId
    name: str
    key_hash: str
    created_at: datetime
    created_by: UserId | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    #: `last_used_at` is written at most this often (a busy key costs no write per call).
    USE_RESOLUTION = timedelta(minutes=1)

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def revoke(self, now: datetime) -> None:
        if self.revoked_at is None:
            self.revoked_at = now

    def used(self, now: datetime) -> bool:
        """Note a use; True when `last_used_at` moved (to be saved)."""
        if self.last_used_at is not None and now - self.last_used_at < self.USE_RESOLUTION:
            return False
        self.last_used_at = now
        return True
