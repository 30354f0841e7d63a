"""In-memory adapters for the application tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ryax_authorization.application.ports import AccessTokenClaims
from ryax_authorization.domain.errors import AuthenticationFailed
from ryax_authorization.domain.model import (
    ApiKeyId,
    LoginAttempts,
    MachineToken,
    Project,
    ProjectApiKey,
    ProjectId,
    TokenId,
    User,
    UserId,
)


class FakeHasher:
    """`calls` records each verification ("verify" or "dummy"), to compare the steps taken."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def hash(self, password: str) -> str:
        return "hashed:" + password

    def verify(self, password_hash: str, password: str) -> bool:
        self.calls.append("verify")
        return password_hash == "hashed:" + password

    def dummy_verify(self, password: str) -> None:
        self.calls.append("dummy")


class FakeTokens:
    def __init__(self, lifetime: timedelta = timedelta(hours=1)) -> None:
        self.lifetime = lifetime

    def issue(
        self, user_id: UserId, token_id: TokenId, generation: int, now: datetime
    ) -> tuple[str, datetime]:
        expires = now + self.lifetime
        return f"{user_id}|{token_id}|{generation}|{expires.timestamp()}", expires

    def decode(self, token: str, now: datetime) -> AccessTokenClaims:
        try:
            user_id, token_id, generation, exp = token.split("|")
            expires = datetime.fromtimestamp(float(exp), UTC)
        except ValueError as exc:
            raise AuthenticationFailed("invalid or revoked token") from exc
        if now >= expires:
            raise AuthenticationFailed("token expired")
        return AccessTokenClaims(
            user_id=UserId(user_id),
            token_id=TokenId(token_id),
            generation=int(generation),
            expires_at=expires,
        )

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": []}


class _Repo:
    pass


class FakeUsers:
    def __init__(self, store: dict[UserId, User]) -> None:
        self.store = store

    async def add(self, user: User) -> None:
        self.store[user.id] = user

    async def get(self, user_id: UserId) -> User | None:
        return self.store.get(user_id)

    async def get_by_username(self, username: str) -> User | None:
        return next((u for u in self.store.values() if u.username == username), None)

    async def list_all(self) -> list[User]:
        return list(self.store.values())

    async def count(self) -> int:
        return len(self.store)


class FakeProjects:
    def __init__(self, store: dict[ProjectId, Project]) -> None:
        self.store = store

    async def add(self, project: Project) -> None:
        self.store[project.id] = project

    async def get(self, project_id: ProjectId) -> Project | None:
        return self.store.get(project_id)

    async def get_by_name(self, name: str) -> Project | None:
        return next((p for p in self.store.values() if p.name == name), None)

    async def list_all(self) -> list[Project]:
        return list(self.store.values())

    async def list_for_user(self, user_id: UserId) -> list[Project]:
        return [p for p in self.store.values() if user_id in p.members]


class FakeMachineTokens:
    def __init__(self, store: dict[TokenId, MachineToken]) -> None:
        self.store = store

    async def add(self, token: MachineToken) -> None:
        self.store[token.id] = token

    async def get(self, token_id: TokenId) -> MachineToken | None:
        return self.store.get(token_id)

    async def get_by_hash(self, token_hash: str) -> MachineToken | None:
        return next((t for t in self.store.values() if t.token_hash == token_hash), None)

    async def list_for_user(self, user_id: UserId) -> list[MachineToken]:
        return [t for t in self.store.values() if t.user_id == user_id]

    async def revoke_all_for_user(self, user_id: UserId, now: datetime) -> int:
        usable = [t for t in self.store.values() if t.user_id == user_id and t.is_usable(now)]
        for token in usable:
            token.revoke(now)
        return len(usable)


class FakeApiKeys:
    def __init__(self, store: dict[ApiKeyId, ProjectApiKey]) -> None:
        self.store = store

    async def add(self, key: ProjectApiKey) -> None:
        self.store[key.id] = key

    async def get(self, key_id: ApiKeyId) -> ProjectApiKey | None:
        return self.store.get(key_id)

    async def get_by_hash(self, key_hash: str) -> ProjectApiKey | None:
        return next((k for k in self.store.values() if k.key_hash == key_hash), None)

    async def list_for_project(self, project_id: ProjectId) -> list[ProjectApiKey]:
        return [k for k in self.store.values() if k.project_id == project_id]


class FakeLoginAttempts:
    def __init__(self, store: dict[str, LoginAttempts]) -> None:
        self.store = store

    async def get(self, username: str) -> LoginAttempts | None:
        return self.store.get(username)

    async def add(self, attempts: LoginAttempts) -> None:
        self.store[attempts.username] = attempts

    async def remove(self, username: str) -> None:
        self.store.pop(username, None)

    async def forget_before(self, before: datetime) -> None:
        for name, a in list(self.store.items()):
            old = a.last_failed_at is not None and a.last_failed_at < before
            if old and (a.locked_until is None or a.locked_until < before):
                del self.store[name]


class FakeRevoked:
    def __init__(self, store: dict[TokenId, datetime]) -> None:
        self.store = store

    async def add(self, token_id: TokenId, expires_at: datetime) -> None:
        self.store[token_id] = expires_at

    async def contains(self, token_id: TokenId) -> bool:
        return token_id in self.store


class FakeUnitOfWork:
    """Shares its dicts across instances, like one database; `committed` counts commits."""

    def __init__(self, db: dict[str, dict]) -> None:  # type: ignore[type-arg]
        self.users = FakeUsers(db["users"])
        self.projects = FakeProjects(db["projects"])
        self.machine_tokens = FakeMachineTokens(db["tokens"])
        self.api_keys = FakeApiKeys(db.setdefault("api_keys", {}))
        self.revoked_tokens = FakeRevoked(db["revoked"])
        self.login_attempts = FakeLoginAttempts(db.setdefault("attempts", {}))
        self.db = db

    async def __aenter__(self) -> FakeUnitOfWork:
        return self

    async def __aexit__(self, *args: object) -> None:
        pass

    async def commit(self) -> None:
        self.db.setdefault("commits", {})
        self.db["commits"][len(self.db["commits"])] = True
