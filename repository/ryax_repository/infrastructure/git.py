"""The git CLI adapter: fetch one branch of a repository into a private clone, safely.

Repositories are untrusted. git runs with no user or system configuration, no terminal
prompt (GIT_TERMINAL_PROMPT=0), hooks disabled, only the https and ssh transports (plus file
when local sources are allowed), no redirects (an https URL cannot bounce to an internal
host), the resolved public address pinned for https, a timeout per call, and its process
group killed on timeout. Credentials reach git only through the environment of the call: a
GIT_ASKPASS helper prints them, or an SSH key file private to the call; they never appear in a
URL, on a command line, in .git/config or in a log line, and git's messages are scrubbed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shlex
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..application.ports import Checkout
from ..domain.errors import ScanFailed, TooLarge
from ..domain.git_url import GitUrl, UrlKind
from ..domain.model import Credentials, Issue, RepositoryId

log = logging.getLogger(__name__)

ASKPASS = """#!/bin/sh
case "$1" in
  [Uu]sername*) printf '%s\\n' "$RYAX_GIT_USERNAME" ;;
  *) printf '%s\\n' "$RYAX_GIT_PASSWORD" ;;
esac
"""
_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
_REDIRECT = re.compile(r"returned error: 30[12378]\b")
_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


@dataclass(frozen=True)
class _Call:
    env: dict[str, str]
    config: tuple[str, ...]
    secrets: tuple[str, ...]


class GitError(Exception):
    def __init__(self, stderr: str) -> None:
        super().__init__(stderr)
        self.stderr = stderr


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove credentials from git's output: user info in URLs and any known secret."""
    text = _URL_USERINFO.sub(r"\1***@", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def is_git_repository(path: Path) -> bool:
    """A work tree root (has .git) or a bare repository (HEAD, objects/ and refs/)."""
    if (path / ".git").exists():
        return True
    return (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()


class GitCli:
    def __init__(
        self,
        work_dir: Path,
        *,
        timeout_seconds: float = 300.0,
        max_repository_bytes: int = 1024**3,
        git_binary: str = "git",
        ca_bundle: Path | None = None,
    ) -> None:
        self._work_dir = work_dir
        self._timeout = timeout_seconds
        self._max_bytes = max_repository_bytes
        self._git = git_binary
        self._ca_bundle = ca_bundle

    def clone_dir(self, repository_id: RepositoryId) -> Path:
        return self._work_dir / "clones" / repository_id

    async def forget(self, repository_id: RepositoryId) -> None:
        await asyncio.to_thread(shutil.rmtree, self.clone_dir(repository_id), True)

    async def checkout(
        self,
        *,
        repository_id: RepositoryId,
        url: GitUrl,
        branch: str | None,
        credentials: Credentials | None,
        pinned_address: str | None,
    ) -> Checkout:
        deadline = time.monotonic() + self._timeout
        if url.kind is UrlKind.LOCAL:
            local = Path(url.path)
            if not await asyncio.to_thread(local.is_dir):
                raise ScanFailed(f"the local path {url.path} does not exist or is not a folder")
            if not await asyncio.to_thread(is_git_repository, local):
                return Checkout(
                    root=local,
                    commit=None,
                    branch=None,
                    warnings=(
                        Issue(
                            file=".",
                            message=(
                                f"{url.path} is not the root of a git repository: its "
                                "files are scanned as they are now (no commit)"
                            ),
                        ),
                    ),
                )
        remote = url.path if url.kind is UrlKind.LOCAL else url.raw
        dest = self.clone_dir(repository_id)
        with self._call(url, credentials, pinned_address) as call:
            try:
                if branch is None:
                    branch = await self._default_branch(remote, call, deadline)
                if not (dest / ".git").is_dir():
                    await asyncio.to_thread(shutil.rmtree, dest, True)
                    dest.mkdir(parents=True)
                    await self._run(["init", "-q", str(dest)], call, deadline)
                await self._run(
                    [
                        "-C",
                        str(dest),
                        "fetch",
                        "--quiet",
                        "--depth",
                        "1",
                        "--no-tags",
                        "--no-recurse-submodules",
                        "--",
                        remote,
                        f"+refs/heads/{branch}:refs/remotes/origin/{branch}",
                    ],
                    call,
                    deadline,
                )
                await self._run(
                    [
                        "-C",
                        str(dest),
                        "checkout",
                        "-q",
                        "--force",
                        "--detach",
                        f"refs/remotes/origin/{branch}",
                    ],
                    call,
                    deadline,
                )
                await self._run(["-C", str(dest), "clean", "-ffdxq"], call, deadline)
                commit = (
                    await self._run(["-C", str(dest), "rev-parse", "HEAD"], call, deadline)
                ).strip()
            except GitError as exc:
                raise ScanFailed(self._explain(exc.stderr, branch, call)) from None
        if not _COMMIT.match(commit):
            raise ScanFailed("git returned no commit for the checked out branch")
        size = await asyncio.to_thread(_tree_size, dest)
        if size > self._max_bytes:
            await self.forget(repository_id)
            raise TooLarge(
                f"the repository takes {size} bytes once fetched; at most {self._max_bytes} "
                "bytes are accepted (RYAX_REPOSITORY_MAX_REPOSITORY_BYTES)"
            )
        log.info(
            "git checkout",
            extra={"repository_id": repository_id, "branch": branch, "commit": commit},
        )
        return Checkout(root=dest, commit=commit, branch=branch)

    async def _default_branch(self, remote: str, call: _Call, deadline: float) -> str:
        """The remote's HEAD; else main, else master."""
        out = await self._run(["ls-remote", "--symref", "--", remote, "HEAD"], call, deadline)
        for line in out.splitlines():
            if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
                return line[len("ref: refs/heads/") : -len("\tHEAD")]
        heads = await self._run(["ls-remote", "--heads", "--", remote], call, deadline)
        names = {
            line.split("\t", 1)[1].removeprefix("refs/heads/")
            for line in heads.splitlines()
            if "\t" in line
        }
        for candidate in ("main", "master"):
            if candidate in names:
                return candidate
        raise ScanFailed(
            "no branch was given and the repository has neither a default branch, a main nor "
            "a master branch: set the branch of this repository"
        )

    def _explain(self, stderr: str, branch: str | None, call: _Call) -> str:
        text = scrub(stderr, call.secrets).strip()
        low = text.lower()
        if "couldn't find remote ref" in low:
            return f"the branch {branch!r} does not exist in the repository"
        if any(
            s in low
            for s in (
                "authentication failed",
                "could not read username",
                "could not read password",
                "terminal prompts disabled",
                "permission denied (publickey",
                "invalid username or password",
                "access denied",
            )
        ):
            return "authentication failed: check the repository's username/password or SSH key"
        if "could not resolve host" in low or "name or service not known" in low:
            return "the repository's host cannot be resolved"
        if "repository not found" in low or "does not appear to be a git repository" in low:
            return "the repository was not found (or the credentials give no access to it)"
        if "redirect" in low or _REDIRECT.search(low):
            return "the server answered with a redirect, which is refused: use the final URL"
        tail = "\n".join(text.splitlines()[-6:])
        return f"git failed: {tail}" if tail else "git failed"

    @contextlib.contextmanager
    def _call(
        self, url: GitUrl, credentials: Credentials | None, pinned_address: str | None
    ) -> Iterator[_Call]:
        """A private directory with the askpass helper (and the SSH key) for one checkout."""
        self._work_dir.mkdir(parents=True, exist_ok=True)
        private = Path(tempfile.mkdtemp(prefix="git-call-", dir=self._work_dir))
        try:
            os.chmod(private, 0o700)
            askpass = private / "askpass.sh"
            askpass.write_text(ASKPASS)
            os.chmod(askpass, 0o700)
            ssh = [
                "ssh",
                "-F",
                "/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "StrictHostKeyChecking=accept-new",
                "-o",
                "ConnectTimeout=30",
                "-o",
                f"UserKnownHostsFile={self._work_dir / 'known_hosts'}",
            ]
            creds = credentials or Credentials()
            if creds.ssh_key:
                key = private / "id_key"
                fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(creds.ssh_key.strip() + "\n")
                ssh += ["-i", str(key)]
            protocols = ["https", "ssh"] + (["file"] if url.kind is UrlKind.LOCAL else [])
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(private),
                "LC_ALL": "C",
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": os.devnull,
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_ASKPASS": str(askpass),
                "SSH_ASKPASS": str(askpass),
                "GIT_SSH_COMMAND": shlex.join(ssh),
                "GIT_ALLOW_PROTOCOL": ":".join(protocols),
                "GIT_LFS_SKIP_SMUDGE": "1",
                "RYAX_GIT_USERNAME": creds.username or "",
                "RYAX_GIT_PASSWORD": creds.password or "",
            }
            if self._ca_bundle is not None:
                env["GIT_SSL_CAINFO"] = str(self._ca_bundle)
            config = [
                "protocol.allow=never",
                *(f"protocol.{p}.allow=always" for p in protocols),
                "core.hooksPath=/dev/null",
                "http.followRedirects=false",
                "credential.helper=",
                "core.fsmonitor=false",
                "submodule.recurse=false",
                "gc.auto=0",
                "advice.detachedHead=false",
                "init.defaultBranch=main",
            ]
            if pinned_address and url.kind is UrlKind.HTTPS and url.host:
                shown = f"[{pinned_address}]" if ":" in pinned_address else pinned_address
                config.append(f"http.curloptResolve={url.host}:{url.default_port}:{shown}")
            args: list[str] = []
            for item in config:
                args += ["-c", item]
            yield _Call(env=env, config=tuple(args), secrets=creds.secrets)
        finally:
            shutil.rmtree(private, ignore_errors=True)

    async def _run(self, args: list[str], call: _Call, deadline: float) -> str:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ScanFailed(
                f"git took longer than {self._timeout:.0f} s (RYAX_GIT_TIMEOUT_SECONDS)"
            )
        proc = await asyncio.create_subprocess_exec(
            self._git,
            *call.config,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=call.env,
            start_new_session=True,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), remaining)
        except (TimeoutError, asyncio.CancelledError) as exc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise ScanFailed(
                f"git took longer than {self._timeout:.0f} s (RYAX_GIT_TIMEOUT_SECONDS)"
            ) from None
        if proc.returncode != 0:
            raise GitError(err.decode("utf-8", errors="replace"))
        return out.decode("utf-8", errors="replace")


def _tree_size(path: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(path, followlinks=False):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total
