"""Security of the local backend's edges, without processes: what the worker publishes (real
files, links, a link swapped in after the check), how paths cross the sandbox's edge, the
sandbox's command and environment, and per-action cgroups on a fake cgroup v2 tree."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from ryax_kit.filestore import LocalDirFilestore
from ryax_worker.application import staging as staging_module
from ryax_worker.application.staging import FileStaging, tar_directory
from ryax_worker.domain.errors import OutputRefused
from ryax_worker.domain.model import FileRef
from ryax_worker.infrastructure.local.cgroups import Cgroups
from ryax_worker.infrastructure.local.openfiles import OpenFile, number_after
from ryax_worker.infrastructure.local.sandbox import (
    ENTER_CGROUPS,
    Layout,
    Limits,
    SandboxConfig,
    command,
    environment,
)
from ryax_worker.infrastructure.transfers import FilestoreTransfers

SECRET = b"token-signing key"


@pytest.fixture
def places(tmp_path: Path) -> tuple[FileStaging, Path, Path]:
    work = tmp_path / "executions" / "d1" / "s1" / "e1" / "work"
    work.mkdir(parents=True)
    secret = tmp_path / ".dev" / "secret-key"
    secret.parent.mkdir()
    secret.write_bytes(SECRET)
    store = FilestoreTransfers(LocalDirFilestore(tmp_path / "store"))
    return FileStaging(store, tmp_path / "executions"), work, secret


async def publish(staging: FileStaging, work: Path, path: Path, directory: bool = False) -> None:
    await staging.publish_outputs(
        {"report": FileRef(key=str(path), name=path.name, is_directory=directory)},
        lambda output, name: f"runs/r1/e1/{output}/{name}",
        work,
    )


async def test_security_an_output_outside_the_work_dir_is_refused_naming_it(
    places: tuple[FileStaging, Path, Path],
) -> None:
    staging, work, secret = places
    with pytest.raises(OutputRefused) as refused:
        await publish(staging, work, secret)
    assert refused.value.detail == (
        f"output 'report': {secret} is outside the execution's work directory"
    )
    with pytest.raises(OutputRefused, match="is outside"):
        await publish(staging, work, work / ".." / ".." / ".." / ".." / ".." / ".dev", True)
    (work / "innocent.txt").symlink_to(secret)
    with pytest.raises(OutputRefused, match=f"innocent.txt is outside .*leads to {secret}"):
        await publish(staging, work, work / "innocent.txt")
    (work / "folder").symlink_to(secret.parent, target_is_directory=True)
    with pytest.raises(OutputRefused, match="leads to"):
        await publish(staging, work, work / "folder" / "secret-key")
    with pytest.raises(OutputRefused, match="leads to"):
        await publish(staging, work, work / "folder", directory=True)
    assert not [p for p in work.parents[4].joinpath("store").rglob("*") if p.is_file()]


async def test_security_a_link_swapped_in_after_the_check_is_caught(
    places: tuple[FileStaging, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name is checked, then the action swaps a folder for a link: what was opened is
    checked again (and a final link is never followed)."""
    staging, work, secret = places
    (work / "dir").symlink_to(secret.parent, target_is_directory=True)
    (work / "final.txt").symlink_to(secret)
    checked = os.path.realpath
    monkeypatch.setattr(
        staging_module.os.path,
        "realpath",
        lambda path: str(path) if str(path).startswith(str(work)) else checked(path),
    )
    with pytest.raises(OutputRefused, match=f"leads to {secret}"):
        await publish(staging, work, work / "dir" / "secret-key")
    with pytest.raises(OutputRefused, match="cannot open it"):
        await publish(staging, work, work / "final.txt")


def test_security_a_folder_output_keeps_links_as_links(
    places: tuple[FileStaging, Path, Path], tmp_path: Path
) -> None:
    _, work, secret = places
    folder = work / "album"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text("a")
    (folder / "leak").symlink_to(secret)
    archive = tmp_path / "album.tar"
    tar_directory(folder, archive, work)
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members["leak"].issym() and members["leak"].linkname == str(secret)
        assert members["sub/a.txt"].isfile()
        content = b"".join(
            tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in members.values()
            if m.isfile()
        )
    assert SECRET not in content


def test_security_removing_what_a_trigger_handed_over_stays_in_its_work_dir(
    places: tuple[FileStaging, Path, Path],
) -> None:
    staging, work, secret = places
    staging.remove(secret, work)
    (work / "link").symlink_to(secret.parent, target_is_directory=True)
    staging.remove(work / "link" / "secret-key", work)
    assert secret.read_bytes() == SECRET
    (work / "made.txt").write_text("x")
    staging.remove(work / "made.txt", work)
    assert not (work / "made.txt").exists()


def test_security_only_the_executions_folder_maps_back_to_the_host(tmp_path: Path) -> None:
    layout = Layout(
        artefact=tmp_path / "artefact",
        home=tmp_path / "home",
        tmp=tmp_path / "tmp",
        executions=tmp_path / "executions",
    )
    assert layout.inside(tmp_path / "executions" / "e1" / "work") == "/ryax/executions/e1/work"
    assert layout.inside(tmp_path / "artefact" / "code") == "/ryax/action/code"
    assert layout.outside("/ryax/executions/e1/work/out.txt") == (
        tmp_path / "executions" / "e1" / "work" / "out.txt"
    )
    for path in ("/tmp/x", "/ryax/action/code/a", "/etc/passwd", "/ryax/executions/../home/x"):
        assert layout.outside(path) is None, path
    with pytest.raises(ValueError, match="not visible"):
        layout.inside(tmp_path / "elsewhere")


def test_security_the_sandbox_command_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RYAX_SECRET_KEY", "sekrit")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sekrit")
    config = SandboxConfig(mode="bwrap", uid=4242, gid=4343, read_only_paths=(Path("/opt/py"),))
    layout = Layout(
        artefact=tmp_path / "a", home=tmp_path / "h", tmp=tmp_path / "t", executions=tmp_path / "e"
    )
    limits = Limits(memory_bytes=2**28, max_processes=64)
    argv = command(config, layout, ["--address", "unix:action.sock"], limits)
    joined = " ".join(argv)
    for flag in ("--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc"):
        assert flag in argv
    assert "--unshare-net" not in argv  # actions may call the network
    assert f"--ro-bind {tmp_path / 'a'} /ryax/action" in joined
    assert f"--bind {tmp_path / 'e'} /ryax/executions" in joined
    assert "--ro-bind-try /opt/py /opt/py" in joined
    assert "/work" not in joined.replace(str(tmp_path), "")  # no checkout, no cache but its own
    assert argv[:5] == ["prlimit", "--core=0", "--nproc=64", "--data=268435456", "--"]
    if os.geteuid() == 0:
        assert "--reuid=4242" in argv and "--regid=4343" in argv and "--no-new-privs" in argv
        assert argv.index("setpriv") < argv.index("/ryax/action/run.sh")
    env = environment(config, layout, {"EXTRA": "1"})
    assert not [k for k in env if k.startswith("RYAX_")] and "sekrit" not in env.values()
    assert env["HOME"] == "/ryax/home" and env["TMPDIR"] == "/tmp" and env["EXTRA"] == "1"
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"


def test_cgroups_v2_per_action(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    base = root / "worker.slice"
    base.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory pids io\n")
    (base / "cgroup.controllers").write_text("cpu memory pids\n")
    (base / "cgroup.procs").write_text("")
    own = tmp_path / "self-cgroup"
    own.write_text("0::/worker.slice\n")
    cgroups = Cgroups.setup(root, own)
    parent = base / f"ryax-actions.{os.getpid()}"
    assert (cgroups.version, cgroups.parents) == (2, {"unified": parent})
    assert (base / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    assert (parent / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    made = cgroups.create("d1_s1", Limits(memory_bytes=2**28, cpu=0.5, max_processes=64))
    [folder] = made.folders.values()
    assert made.procs_files == (folder / "cgroup.procs",)
    assert (folder / "memory.max").read_text() == str(2**28)
    assert (folder / "cpu.max").read_text() == "50000 100000"
    assert (folder / "cpu.max.burst").read_text() == "50000"
    assert (folder / "pids.max").read_text() == "64"
    assert not made.oom_killed()
    (folder / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert made.oom_killed()
    assert made.cpu_seconds() is None  # no cpu.stat (yet)
    (folder / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\nsystem_usec 1\n")
    assert made.cpu_seconds() == 1.5

    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(RuntimeError, match="neither a cgroup v2 mount nor cgroup v1"):
        Cgroups.setup(bare, own)
    (bare / "cgroup.controllers").write_text("cpu\n")
    (bare / "worker.slice").mkdir()
    (bare / "worker.slice" / "cgroup.controllers").write_text("cpu\n")
    with pytest.raises(RuntimeError, match="memory, pids are not available"):
        Cgroups.setup(bare, own)


def _v1_tree(root: Path, own: dict[str, str]) -> None:
    for controller, path in own.items():
        folder = root / controller / path.lstrip("/")
        folder.mkdir(parents=True, exist_ok=True)
        (root / controller / "cgroup.procs").write_text("")


def test_cgroups_v1_per_action_one_folder_per_hierarchy(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    _v1_tree(root, {"cpu": "/", "memory": "/box/1", "pids": "/", "cpuacct": "/"})
    own = tmp_path / "self-cgroup"
    own.write_text("9:name=systemd:/\n8:pids:/\n4:memory:/box/1\n2:cpuacct:/\n1:cpu:/\n0::/\n")
    cgroups = Cgroups.setup(root, own)
    me = f"ryax-actions.{os.getpid()}"
    assert cgroups.version == 1
    assert cgroups.controllers == ["memory", "pids", "cpu", "cpuacct"]
    assert cgroups.parents == {
        "memory": root / "memory" / "box" / "1" / me,
        "pids": root / "pids" / me,
        "cpu": root / "cpu" / me,
        "cpuacct": root / "cpuacct" / me,
    }
    made = cgroups.create("d1_s1", Limits(memory_bytes=2**28, cpu=0.25, max_processes=64))
    assert set(made.folders) == {"memory", "pids", "cpu", "cpuacct"}
    assert made.cpu_seconds() is None
    (made.folders["cpuacct"] / "cpuacct.usage").write_text("2500000000\n")
    assert made.cpu_seconds() == 2.5
    assert made.procs_files == tuple(f / "cgroup.procs" for f in made.folders.values())
    assert (made.folders["memory"] / "memory.limit_in_bytes").read_text() == str(2**28)
    assert (made.folders["memory"] / "memory.memsw.limit_in_bytes").read_text() == str(2**28)
    assert (made.folders["pids"] / "pids.max").read_text() == "64"
    assert (made.folders["cpu"] / "cpu.cfs_quota_us").read_text() == "25000"
    assert (made.folders["cpu"] / "cpu.cfs_period_us").read_text() == "100000"
    assert (made.folders["cpu"] / "cpu.cfs_burst_us").read_text() == "25000"
    (made.folders["memory"] / "memory.oom_control").write_text(
        "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"
    )
    assert not made.oom_killed()
    (made.folders["memory"] / "memory.oom_control").write_text("under_oom 0\noom_kill 2\n")
    assert made.oom_killed()
    (made.folders["cpu"] / "cpu.stat").write_text("nr_periods 9\nnr_throttled 4\n")
    assert made.throttled() == 4
    assert "cgroups v1" in cgroups.describe()


def test_cgroups_v1_co_mounted_controllers_share_one_folder(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    _v1_tree(root, {"cpu,cpuacct": "/", "memory": "/", "pids": "/"})
    (root / "cpu").symlink_to("cpu,cpuacct")
    (root / "cpuacct").symlink_to("cpu,cpuacct")
    own = tmp_path / "self-cgroup"
    own.write_text("8:pids:/\n4:memory:/\n2:cpu,cpuacct:/\n")
    cgroups = Cgroups.setup(root, own)
    made = cgroups.create("d1_s1", Limits(memory_bytes=2**28, cpu=0.5, max_processes=8))
    assert made.folders["cpu"].resolve() == made.folders["cpuacct"].resolve()
    # One pid write per hierarchy: the shared folder's cgroup.procs once.
    assert len(made.procs_files) == 3
    (made.folders["cpu"] / "cpuacct.usage").write_text("750000000")
    assert made.cpu_seconds() == 0.75


def test_cgroups_v1_without_a_pids_hierarchy_is_refused_and_left_clean(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    _v1_tree(root, {"cpu": "/", "memory": "/"})
    own = tmp_path / "self-cgroup"
    own.write_text("4:memory:/\n1:cpu:/\n")
    with pytest.raises(RuntimeError, match="cgroup v1: no pids hierarchy"):
        Cgroups.setup(root, own)
    assert not list((root / "memory").glob("ryax-actions.*"))  # nothing left behind


def test_cgroups_of_a_worker_that_is_gone_are_removed_at_start(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    _v1_tree(root, {"cpu": "/", "memory": "/", "pids": "/"})
    own = tmp_path / "self-cgroup"
    own.write_text("8:pids:/\n4:memory:/\n1:cpu:/\n")
    gone = root / "pids" / "ryax-actions.999999999"  # no such pid
    (gone / "d1_s1.1").mkdir(parents=True)
    alive = root / "pids" / "ryax-actions.1"  # another worker, running
    (alive / "d2_s1.1").mkdir(parents=True)
    Cgroups.setup(root, own)
    assert not gone.exists()
    assert (alive / "d2_s1.1").is_dir()


def test_entering_several_cgroups_before_the_command(tmp_path: Path) -> None:
    files = [tmp_path / "a.procs", tmp_path / "b.procs"]
    argv = ["/bin/sh", "-c", ENTER_CGROUPS, str(len(files)), *map(str, files)]
    done = subprocess.run(
        [*argv, "/bin/sh", "-c", "echo ran $$"], capture_output=True, text=True, check=True
    )
    pid = done.stdout.split()[-1]
    assert [f.read_text().strip() for f in files] == [pid, pid]  # the command is that shell
    refused = subprocess.run(
        [*argv[:3], "1", str(tmp_path / "missing" / "procs"), "/bin/echo", "ran"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 125 and "ran" not in refused.stdout


def test_open_file_reads_again_and_follows_its_path(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text("Name:\tpython\nVmHWM:\t  2048 kB\nThreads:\t3\n")
    kept = OpenFile()
    assert number_after(kept.read(first) or b"", b"VmHWM:") == 2048
    first.write_text("Name:\tpython\nVmHWM:\t  4096 kB\n")  # same file, new content
    assert number_after(kept.read(first) or b"", b"VmHWM:") == 4096
    second.write_text("usage_usec 7\n")
    assert number_after(kept.read(second) or b"", b"usage_usec") == 7  # another path: reopened
    assert kept.read(tmp_path / "missing") is None
    assert number_after(b"Threads: 3\n", b"VmHWM:") is None
    assert number_after(b"VmHWM: lots\n", b"VmHWM:") is None
    target = tmp_path / "clear_refs"
    target.write_text("")
    writer = OpenFile(write=True)
    assert writer.write(target, b"5")
    assert target.read_text() == "5"
    assert not writer.write(tmp_path / "missing", b"5")
    kept.close()
    writer.close()
