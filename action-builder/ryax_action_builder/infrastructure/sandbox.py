"""pip runs in a sandbox (RYAX_SANDBOX=bwrap): installing a package runs its author's code
(setup.py, build backends), so it gets no more than a build needs.

Inside bubblewrap it sees: the system (/usr and the links to it, a few files of /etc: resolver,
certificates, users, time zone), the interpreter's installation (its prefix and, for a venv,
the venv; read-only), what the build reads (the wrapper layer's constraints; read-only), and,
writable, the build's own folders (its source, its target, a scratch folder with HOME, TMPDIR
and pip's cache). Nothing else: no checkout, no `.dev/`, no other build, no builder cache. The
network is the machine's (pip needs PyPI). Its environment is built, not inherited: PATH, HOME,
TMPDIR, LANG, PYTHONUNBUFFERED, PIP_* set here, and the builder's own index and proxy settings
(PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST, HTTP(S)_PROXY, NO_PROXY); no RYAX_*
setting, no credential of the platform.

As root (the builder's usual user) bwrap runs without a user namespace and the command is
`setpriv` dropping to RYAX_SANDBOX_UID/GID with no capability and no_new_privs (bwrap's own
`--unshare-user --uid` would map that uid onto root's on the host; bwrap started as the
unprivileged user cannot reach root's folders to bind them). The writable folders are handed
to that user for the build. Not root: bwrap with --unshare-user, as the builder's own uid.
"""

from __future__ import annotations

import contextlib
import glob
import grp
import os
import pwd
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
#: The builder's own settings pip may use (a private index, a proxy); never anything else.
PIP_PASSTHROUGH = (
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)
ETC_ENTRIES = (
    "resolv.conf",
    "hosts",
    "host.conf",
    "nsswitch.conf",
    "gai.conf",
    "services",
    "protocols",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "pki",
    "localtime",
    "timezone",
    "passwd",
    "group",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
)
SYSTEM_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


def nobody() -> tuple[int, int]:
    """uid and gid of `nobody`/`nogroup` (65534 where the names are unknown)."""
    try:
        uid = pwd.getpwnam("nobody").pw_uid
    except KeyError:
        uid = 65534
    for name in ("nogroup", "nobody"):
        with contextlib.suppress(KeyError):
            return uid, grp.getgrnam(name).gr_gid
    return uid, 65534


def _parents(path: str) -> list[str]:
    """bwrap makes missing mount points 0700: the sandbox's user must go through them."""
    args: list[str] = []
    for parent in reversed(Path(path).parents[:-1]):
        args += ["--perms", "0755", "--dir", str(parent)]
    return args


@dataclass(frozen=True, kw_only=True)
class PipSandbox:
    #: "bwrap" or "none" (RYAX_SANDBOX).
    mode: str = "none"
    bwrap: str = "bwrap"
    uid: int = 65534
    gid: int = 65534

    @property
    def active(self) -> bool:
        return self.mode == "bwrap"

    @property
    def drops_to_uid(self) -> bool:
        return self.active and os.geteuid() == 0

    @classmethod
    def configured(cls, mode: str, uid: int, gid: int) -> PipSandbox:
        return cls(mode=mode, bwrap=shutil.which("bwrap") or "bwrap", uid=uid, gid=gid)

    def environment(self, scratch: Path | None, python: str) -> dict[str, str]:
        """The whole environment of pip (and of what it runs)."""
        env = {
            "PATH": f"{os.path.dirname(python)}:{SANDBOX_PATH}",
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1",
        }
        if scratch is not None:
            env["HOME"] = str(scratch / "home")
            env["TMPDIR"] = str(scratch / "tmp")
        for name in PIP_PASSTHROUGH:
            if name in os.environ:
                env[name] = os.environ[name]
        return env

    def prepare(self, writable: Sequence[Path], scratch: Path | None) -> None:
        """Make the scratch folders and hand the writable ones to the sandbox's user."""
        if scratch is not None:
            for name in ("home", "tmp", "pip-cache"):
                (scratch / name).mkdir(parents=True, exist_ok=True)
        for top in writable:
            top.mkdir(parents=True, exist_ok=True)
        if not self.drops_to_uid:
            return
        for top in writable:
            os.chown(top, self.uid, self.gid)
            for folder, dirs, files in os.walk(top):
                for name in (*dirs, *files):
                    os.chown(os.path.join(folder, name), self.uid, self.gid, follow_symlinks=False)

    def command(
        self,
        argv: Sequence[str],
        *,
        writable: Sequence[Path],
        read_only: Sequence[Path],
        cwd: Path | None,
    ) -> list[str]:
        """`argv` in the sandbox (as is without one). Paths keep their names inside."""
        if not self.active:
            return list(argv)
        args = [
            self.bwrap,
            "--die-with-parent",
            "--new-session",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--hostname",
            "ryax-build",
        ]
        tail: list[str] = []
        if self.drops_to_uid:
            args += [
                "--cap-add",
                "CAP_SETUID",
                "--cap-add",
                "CAP_SETGID",
                "--cap-add",
                "CAP_SETPCAP",
            ]
            tail = [
                "setpriv",
                f"--reuid={self.uid}",
                f"--regid={self.gid}",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
                "--",
            ]
        else:
            args += ["--unshare-user", "--disable-userns"]
        args += ["--ro-bind", "/usr", "/usr"]
        for name in SYSTEM_LINKS:
            path = f"/{name}"
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        args += ["--perms", "0755", "--dir", "/etc"]
        for entry in [f"/etc/{n}" for n in ETC_ENTRIES] + sorted(glob.glob("/etc/python3*")):
            if os.path.lexists(entry):
                args += ["--ro-bind-try", entry, entry]
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        for folder in read_only:
            args += [*_parents(str(folder)), "--ro-bind", str(folder), str(folder)]
        for folder in writable:
            args += [*_parents(str(folder)), "--bind", str(folder), str(folder)]
        if cwd is not None:
            args += ["--chdir", str(cwd)]
        return [*args, "--", *tail, *argv]
