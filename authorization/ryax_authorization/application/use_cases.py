"""Use cases of the authorization service."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ryax_kit.core import Clock

from ..domain.errors import (
    AlreadyExists,
    AuthenticationFailed,
    Forbidden,
    InvalidInput,
    NotFound,
)
from ..domain.model import (
    ApiKeyId,
    LockoutPolicy,
    LoginAttempts,
    MachineToken,
    Operation,
    Principal,
    Project,
    ProjectAccess,
    ProjectApiKey,
    ProjectId,
    Role,
    TokenId,
    User,
    UserId,
    authorize,
    check_api_key_name,
    check_password_policy,
    check_project_name,
    check_username,
    ensure_admin,
    ensure_can_manage,
)
from .ports import AccessTokens, PasswordHasher, UnitOfWork

MACHINE_TOKEN_PREFIX = "ryax_"
#: Project API keys (not a machine token: "ryaxpk_" does not start with "ryax_").
API_KEY_PREFIX = "ryaxpk_"


def hash_machine_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, kw_only=True)
class LoginResult:
    access_token: str
    expires_at: datetime
    user: User


@dataclass(frozen=True, kw_only=True)
class NewApiKey:
    key: str  # shown once
    record: ProjectApiKey


@dataclass(frozen=True, kw_only=True)
class NewMachineToken:
    token: str  # shown once
    record: MachineToken


class AuthorizationUseCases:
    """Every operation of the service; each opens its own unit of work."""

    def __init__(
        self,
        *,
        uow_factory: Callable[[], UnitOfWork],
        hasher: PasswordHasher,
        tokens: AccessTokens,
        clock: Clock,
        lockout: LockoutPolicy,
    ) -> None:
        self._uow = uow_factory
        self._hasher = hasher
        self._tokens = tokens
        self._clock = clock
        self._lockout = lockout

    # ---- bootstrap -------------------------------------------------------------------------
    async def bootstrap_admin(self, username: str, password: str) -> bool:
        """Create the first admin from configuration when the platform has no user yet."""
        async with self._uow() as uow:
            if await uow.users.count() > 0:
                return False
            check_username(username)
            check_password_policy(password)
            await uow.users.add(
                User(
                    id=UserId(new_id()),
                    username=username,
                    password_hash=self._hasher.hash(password),
                    is_admin=True,
                    created_at=self._clock.now(),
                )
            )
            await uow.commit()
            return True

    # ---- sessions --------------------------------------------------------------------------
    async def login(self, username: str, password: str) -> LoginResult:
        """Same answer for an unknown user and a wrong password, and the same lockout: failed
        logins are counted by username whether or not a user has it, and a locked username is
        refused before any password is checked, known or not (same answer, same steps)."""
        now = self._clock.now()
        async with self._uow() as uow:
            attempts = await uow.login_attempts.get(username)
            if attempts is not None:
                attempts.ensure_not_locked(now)
            user = await uow.users.get_by_username(username)
            if user is None:
                self._hasher.dummy_verify(password)
            if user is None or not self._hasher.verify(user.password_hash, password):
                await self._record_failure(uow, username, attempts, now)
                await uow.commit()
                raise AuthenticationFailed()
            if attempts is not None:
                await uow.login_attempts.remove(username)
            token, expires_at = self._tokens.issue(
                user.id, TokenId(new_id()), user.token_generation, now
            )
            await uow.commit()
            return LoginResult(access_token=token, expires_at=expires_at, user=user)

    async def _record_failure(
        self, uow: UnitOfWork, username: str, attempts: LoginAttempts | None, now: datetime
    ) -> None:
        if attempts is None:
            attempts = LoginAttempts(username=username)
            await uow.login_attempts.add(attempts)
        attempts.record_failure(now, self._lockout)
        await uow.login_attempts.forget_before(now - self._lockout.forget_after)

    async def logout(self, token: str) -> None:
        """Revoke the access token until it would have expired anyway."""
        now = self._clock.now()
        claims = self._tokens.decode(token, now)
        async with self._uow() as uow:
            if not await uow.revoked_tokens.contains(claims.token_id):
                await uow.revoked_tokens.add(claims.token_id, claims.expires_at)
                await uow.commit()

    def public_keys(self) -> dict[str, list[dict[str, str]]]:
        """The JWKS: the public keys that verify access tokens (current first)."""
        return self._tokens.jwks()

    async def authenticate(self, token: str, *, api_keys: bool = False) -> Principal:
        """Resolve a bearer token (access or machine token) into the calling principal. A
        project API key is accepted only where `api_keys` (the authorization contract): it
        manages nothing, not even itself."""
        now = self._clock.now()
        if token.startswith(API_KEY_PREFIX):
            if not api_keys:
                raise Forbidden("a project API key only calls the user API of its project")
            return await self._api_key_principal(token, now)
        async with self._uow() as uow:
            if token.startswith(MACHINE_TOKEN_PREFIX):
                record = await uow.machine_tokens.get_by_hash(hash_machine_token(token))
                if record is None or not record.is_usable(now):
                    raise AuthenticationFailed("invalid or revoked token")
                user = await uow.users.get(record.user_id)
                if user is None:
                    raise AuthenticationFailed("invalid or revoked token")
                return Principal(
                    user_id=user.id,
                    username=user.username,
                    is_admin=user.is_admin,
                    token_id=record.id,
                    machine=True,
                )
            claims = self._tokens.decode(token, now)
            if await uow.revoked_tokens.contains(claims.token_id):
                raise AuthenticationFailed("invalid or revoked token")
            user = await uow.users.get(claims.user_id)
            if user is None:
                raise AuthenticationFailed("invalid or revoked token")
            if claims.generation != user.token_generation:
                raise AuthenticationFailed("token revoked: the password was changed, log in again")
            return Principal(
                user_id=user.id,
                username=user.username,
                is_admin=user.is_admin,
                token_id=claims.token_id,
            )

    async def _api_key_principal(self, key: str, now: datetime) -> Principal:
        async with self._uow() as uow:
            record = await uow.api_keys.get_by_hash(hash_machine_token(key))
            if record is None or record.revoked:
                raise AuthenticationFailed("invalid or revoked API key")
            if record.used(now):
                await uow.commit()
            return Principal(
                user_id=UserId(f"api-key:{record.id}"),
                username=f"api-key:{record.name}",
                is_admin=False,
                token_id=TokenId(record.id),
                machine=True,
                api_key_id=record.id,
                api_key_project_id=record.project_id,
            )

    async def authorize(
        self, token: str, project_id: ProjectId, operation: Operation
    ) -> ProjectAccess:
        """The contract every service relies on: token valid, member, role high enough (a
        project API key: its own project, operation trigger)."""
        principal = await self.authenticate(token, api_keys=True)
        async with self._uow() as uow:
            project = await uow.projects.get(project_id)
            if project is None:
                project = await uow.projects.get_by_name(project_id)
            if project is None:
                # Same answer as "not a member" so a project's existence does not leak.
                raise Forbidden(f"no access to project {project_id}")
            return authorize(principal, project, operation)

    # ---- users -----------------------------------------------------------------------------
    async def create_user(
        self, caller: Principal, username: str, password: str, is_admin: bool = False
    ) -> User:
        ensure_admin(caller)
        check_username(username)
        check_password_policy(password)
        async with self._uow() as uow:
            if await uow.users.get_by_username(username) is not None:
                raise AlreadyExists(f"user {username} already exists")
            user = User(
                id=UserId(new_id()),
                username=username,
                password_hash=self._hasher.hash(password),
                is_admin=is_admin,
                created_at=self._clock.now(),
            )
            await uow.users.add(user)
            await uow.commit()
            return user

    async def list_users(self, caller: Principal) -> list[User]:
        ensure_admin(caller)
        async with self._uow() as uow:
            return await uow.users.list_all()

    async def change_password(
        self, caller: Principal, old_password: str, new_password: str
    ) -> None:
        """A user changes their own password, proving they know the current one (a wrong one
        counts toward the lockout of the username, as at login). Every access token the user
        was issued before, and every machine token of the user, is revoked: log in again."""
        check_password_policy(new_password)
        now = self._clock.now()
        async with self._uow() as uow:
            user = await uow.users.get(caller.user_id)
            if user is None:
                raise AuthenticationFailed("current password is wrong")
            attempts = await uow.login_attempts.get(user.username)
            if attempts is not None:
                attempts.ensure_not_locked(now)
            if not self._hasher.verify(user.password_hash, old_password):
                await self._record_failure(uow, user.username, attempts, now)
                await uow.commit()
                raise AuthenticationFailed("current password is wrong")
            user.change_password(self._hasher.hash(new_password))
            await uow.machine_tokens.revoke_all_for_user(user.id, now)
            if attempts is not None:
                await uow.login_attempts.remove(user.username)
            await uow.commit()

    # ---- projects --------------------------------------------------------------------------
    async def create_project(
        self, caller: Principal, name: str, owner_id: UserId | None = None
    ) -> Project:
        """Admins create projects; the named owner (a user id or a username; else the admin)
        becomes its first owner. An owner that is nobody is bad input (`owner_id`)."""
        ensure_admin(caller)
        check_project_name(name)
        async with self._uow() as uow:
            if await uow.projects.get_by_name(name) is not None:
                raise AlreadyExists(f"project {name} already exists")
            if owner_id:
                user = await uow.users.get(owner_id) or await uow.users.get_by_username(owner_id)
                if user is None:
                    raise InvalidInput("owner_id", f"no user has the id or username {owner_id!r}")
                owner = user.id
            else:
                owner = caller.user_id
                if await uow.users.get(owner) is None:
                    raise NotFound(f"user {owner} not found")
            project = Project(id=ProjectId(new_id()), name=name, created_at=self._clock.now())
            project.set_member(owner, Role.OWNER)
            await uow.projects.add(project)
            await uow.commit()
            return project

    async def list_projects(self, caller: Principal) -> list[tuple[Project, Role]]:
        """The projects the caller belongs to (all of them for an admin), with the caller's role."""
        async with self._uow() as uow:
            if caller.is_admin:
                projects = await uow.projects.list_all()
            else:
                projects = await uow.projects.list_for_user(caller.user_id)
            return [(p, p.role_of(caller.user_id) or Role.OWNER) for p in projects]

    async def get_project(self, caller: Principal, project_id: ProjectId) -> Project:
        async with self._uow() as uow:
            return await self._visible_project(uow, caller, project_id, Operation.READ)

    async def member_names(self, project: Project) -> dict[UserId, str]:
        """The usernames of a project's members (shown with the project to whoever may see
        it; a member whose user is gone has none)."""
        async with self._uow() as uow:
            names: dict[UserId, str] = {}
            for user_id in project.members:
                user = await uow.users.get(user_id)
                if user is not None:
                    names[user_id] = user.username
            return names

    async def set_member(
        self, caller: Principal, project_id: ProjectId, user_id: UserId, role: Role
    ) -> Project:
        """Owners add members and change roles."""
        async with self._uow() as uow:
            project = await self._visible_project(uow, caller, project_id, Operation.MANAGE)
            ensure_can_manage(caller, project)
            user = await uow.users.get(user_id) or await uow.users.get_by_username(user_id)
            if user is None:
                raise NotFound(f"user {user_id} not found")
            project.set_member(user.id, role)
            await uow.commit()
            return project

    async def remove_member(
        self, caller: Principal, project_id: ProjectId, user_id: UserId
    ) -> Project:
        async with self._uow() as uow:
            project = await self._visible_project(uow, caller, project_id, Operation.MANAGE)
            user = await uow.users.get(user_id) or await uow.users.get_by_username(user_id)
            project.remove_member(user.id if user else user_id)
            await uow.commit()
            return project

    async def _visible_project(
        self, uow: UnitOfWork, caller: Principal, project_id: ProjectId, operation: Operation
    ) -> Project:
        project = await uow.projects.get(project_id) or await uow.projects.get_by_name(project_id)
        if project is None:
            raise Forbidden(f"no access to project {project_id}")
        authorize(caller, project, operation)
        return project

    # ---- machine tokens --------------------------------------------------------------------
    async def create_machine_token(
        self, caller: Principal, name: str, expires_in: timedelta | None = None
    ) -> NewMachineToken:
        """The token is returned once; only its hash is stored."""
        token = MACHINE_TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self._clock.now()
        record = MachineToken(
            id=TokenId(new_id()),
            user_id=caller.user_id,
            name=name[:200] or "token",
            token_hash=hash_machine_token(token),
            created_at=now,
            expires_at=now + expires_in if expires_in else None,
        )
        async with self._uow() as uow:
            await uow.machine_tokens.add(record)
            await uow.commit()
        return NewMachineToken(token=token, record=record)

    async def list_machine_tokens(self, caller: Principal) -> list[MachineToken]:
        async with self._uow() as uow:
            return await uow.machine_tokens.list_for_user(caller.user_id)

    async def revoke_machine_token(self, caller: Principal, token_id: TokenId) -> None:
        async with self._uow() as uow:
            record = await uow.machine_tokens.get(token_id)
            if record is None or (record.user_id != caller.user_id and not caller.is_admin):
                raise NotFound(f"token {token_id} not found")
            record.revoke(self._clock.now())
            await uow.commit()

    # ---- project API keys ------------------------------------------------------------------
    async def create_api_key(
        self, caller: Principal, project_id: ProjectId, name: str
    ) -> NewApiKey:
        """Owners (and admins) create a project's keys; the key is returned once, only its
        hash is stored. Names are unique among the project's keys in use."""
        name = check_api_key_name(name)
        key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        async with self._uow() as uow:
            project = await self._visible_project(uow, caller, project_id, Operation.MANAGE)
            for other in await uow.api_keys.list_for_project(project.id):
                if other.name == name and not other.revoked:
                    raise AlreadyExists(f"project {project.name} has an API key named {name}")
            record = ProjectApiKey(
                id=ApiKeyId(new_id()),
                project_id=project.id,
                name=name,
                key_hash=hash_machine_token(key),
                created_at=self._clock.now(),
                created_by=caller.user_id,
            )
            await uow.api_keys.add(record)
            await uow.commit()
        return NewApiKey(key=key, record=record)

    async def list_api_keys(self, caller: Principal, project_id: ProjectId) -> list[ProjectApiKey]:
        """The project's keys (revoked ones too), without their value: for its members."""
        async with self._uow() as uow:
            project = await self._visible_project(uow, caller, project_id, Operation.READ)
            return await uow.api_keys.list_for_project(project.id)

    async def revoke_api_key(
        self, caller: Principal, project_id: ProjectId, key_id: ApiKeyId
    ) -> ProjectApiKey:
        """Owners (and admins) revoke a key: refused from then on (services that cached an
        answer keep it for at most their cache time, 10 s)."""
        async with self._uow() as uow:
            project = await self._visible_project(uow, caller, project_id, Operation.MANAGE)
            record = await uow.api_keys.get(key_id)
            if record is None or record.project_id != project.id:
                raise NotFound(f"API key {key_id} not found in project {project.name}")
            record.revoke(self._clock.now())
            await uow.commit()
            return record
