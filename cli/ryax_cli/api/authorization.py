"""Users, projects, members and machine tokens (the authorization service)."""

from __future__ import annotations

import builtins
from typing import Any

from ..models import (
    API_KEYS,
    PROJECTS,
    TOKENS,
    USERS,
    ApiKey,
    MachineToken,
    Me,
    Project,
    Session,
    User,
)
from ._base import Group, seg

BASE = "/authorization/v1"


class Sessions(Group):
    def login(self, username: str, password: str) -> Session:
        """Exchange credentials for an access token; the transport uses it from now on."""
        body = self._http.post(f"{BASE}/login", {"username": username, "password": password})
        session = Session.from_json(body)
        self._http.token = session.access_token
        return session

    def logout(self) -> None:
        self._http.post(f"{BASE}/logout")
        self._http.token = None

    def me(self) -> Me:
        return Me.from_json(self._http.get(f"{BASE}/me"))


class Users(Group):
    def list(self) -> builtins.list[User]:
        return USERS.read(self._http.get(f"{BASE}/users"))

    def create(self, username: str, password: str, *, is_admin: bool = False) -> User:
        body = {"username": username, "password": password, "is_admin": is_admin}
        return User.from_json(self._http.post(f"{BASE}/users", body))

    def change_password(self, old_password: str, new_password: str) -> None:
        self._http.put(
            f"{BASE}/me/password", {"old_password": old_password, "new_password": new_password}
        )


class Projects(Group):
    def list(self) -> builtins.list[Project]:
        return PROJECTS.read(self._http.get(f"{BASE}/projects"))

    def get(self, project: str) -> Project:
        """A project (id or name) with its members."""
        return Project.from_json(self._http.get(f"{BASE}/projects/{seg(project)}"))

    def create(self, name: str, *, owner: str | None = None) -> Project:
        """Create a project (admins); `owner` is a user id or a username (default: the
        caller)."""
        body: dict[str, Any] = {"name": name}
        if owner:
            body["owner_id"] = owner
        return Project.from_json(self._http.post(f"{BASE}/projects", body))

    def set_member(self, project: str, user: str, role: str) -> Project:
        """Add `user` (id or username) to `project` or change their role (owner, editor...)."""
        path = f"{BASE}/projects/{seg(project)}/members/{seg(user)}"
        return Project.from_json(self._http.put(path, {"role": role}))

    def remove_member(self, project: str, user: str) -> Project:
        path = f"{BASE}/projects/{seg(project)}/members/{seg(user)}"
        return Project.from_json(self._http.delete(path))


class Tokens(Group):
    def create(self, name: str, *, expires_in_days: int | None = None) -> MachineToken:
        """A machine token for scripts and CI; its value is in `.token`, shown only now."""
        body: dict[str, Any] = {"name": name}
        if expires_in_days is not None:
            body["expires_in_days"] = expires_in_days
        return MachineToken.from_json(self._http.post(f"{BASE}/tokens", body))

    def list(self) -> builtins.list[MachineToken]:
        return TOKENS.read(self._http.get(f"{BASE}/tokens"))

    def revoke(self, token_id: str) -> None:
        self._http.delete(f"{BASE}/tokens/{seg(token_id)}")


class ApiKeys(Group):
    """Project API keys: a machine calls the project's user API (/user-api/...) with one, as
    `Authorization: Bearer <key>`, and nothing else."""

    def create(self, project: str, name: str) -> ApiKey:
        """Owners and admins; the key's value is in `.key`, shown only now."""
        path = f"{BASE}/projects/{seg(project)}/api-keys"
        return ApiKey.from_json(self._http.post(path, {"name": name}))

    def list(self, project: str) -> builtins.list[ApiKey]:
        """The project's keys, revoked ones too, without their value."""
        return API_KEYS.read(self._http.get(f"{BASE}/projects/{seg(project)}/api-keys"))

    def revoke(self, project: str, key: str) -> ApiKey:
        """Revoke a key, by id, or by name among the keys in use."""
        key_id = key
        keys = self.list(project)
        if not any(k.id == key for k in keys):
            named = [k for k in keys if k.name == key and not k.revoked]
            if len(named) == 1:
                key_id = named[0].id
        path = f"{BASE}/projects/{seg(project)}/api-keys/{seg(key_id)}"
        return ApiKey.from_json(self._http.delete(path))
