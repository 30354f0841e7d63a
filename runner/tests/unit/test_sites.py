"""Sites created by admins and their credentials: the domain (create, rotate, revoke, archive,
the credential check) and the engine (a worker registers only with its site's credential;
nothing about a site changes on a refusal; rotating cuts the worker off)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ryax_runner.application.engine import SiteExists, SiteTaken, WorkerRefused
from ryax_runner.application.messages import Registered, RegisterWorker
from ryax_runner.application.ports import LoadedState
from ryax_runner.application.queries import site_document
from ryax_runner.domain.errors import Conflict, InvalidInput, NotFound
from ryax_runner.domain.run import ExecutionState
from ryax_runner.domain.site import (
    CREDENTIAL_PREFIX,
    AuthFailure,
    CredentialHash,
    CredentialState,
    Site,
    SiteState,
    site_id_for,
)
from ryax_runner.infrastructure.database.serialization import site_from_row, site_row

from .fakes import FakeChannel
from .rig import HEARTBEAT_TIMEOUT, Rig, processor

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LATER = datetime(2026, 1, 2, tzinfo=UTC)


# -- domain ------------------------------------------------------------------------------------


def test_a_created_site_keeps_only_a_salted_hash_of_its_credential() -> None:
    site, credential = Site.create(name="edge-1", kind="slurm", now=NOW, by="admin")
    assert credential.startswith(CREDENTIAL_PREFIX) and len(credential) > 40
    assert site.credential is not None and credential not in repr(site)
    assert credential not in str(site_row(site)) and credential not in str(site_document(site))
    assert (site.backend_kind, site.state, site.worker_id) == ("slurm", SiteState.OFFLINE, "")
    assert (site.created_at, site.created_by, site.credential_issued_at) == (NOW, "admin", NOW)
    assert site.credential_state is CredentialState.ACTIVE
    assert site.refusal(credential) is None
    # The same credential hashed twice: two salts, two digests, both match.
    a, b = CredentialHash.of(credential), CredentialHash.of(credential)
    assert (
        a.salt != b.salt
        and a.digest != b.digest
        and a.matches(credential)
        and b.matches(credential)
    )
    assert site_document(site)["credential"] == "active"


@pytest.mark.parametrize("name", ["", "-x", "a b", "x" * 101, "é", "a/b"])
def test_a_site_name_is_checked(name: str) -> None:
    with pytest.raises(InvalidInput, match="name"):
        Site.create(name=name, kind="local", now=NOW, by="admin")


def test_a_site_type_is_local_slurm_or_kubernetes() -> None:
    with pytest.raises(InvalidInput, match="type: one of local, slurm, kubernetes"):
        Site.create(name="s", kind="docker", now=NOW, by="admin")


def test_the_credential_check_says_why_it_refuses() -> None:
    site, credential = Site.create(name="s", kind="local", now=NOW, by="admin")
    assert site.refusal("") is AuthFailure.MISSING
    assert site.refusal(credential + "x") is AuthFailure.WRONG
    assert site.refusal(credential[:-1]) is AuthFailure.WRONG
    assert site.refusal(CREDENTIAL_PREFIX) is AuthFailure.WRONG
    assert site.refusal(credential) is None


def test_rotating_issues_a_new_credential_and_the_old_one_stops_working() -> None:
    site, old = Site.create(name="s", kind="local", now=NOW, by="admin")
    new = site.issue_credential(LATER)
    assert new != old and site.credential_issued_at == LATER
    assert site.refusal(old) is AuthFailure.WRONG and site.refusal(new) is None


def test_revoking_leaves_no_credential_that_works_until_one_is_issued() -> None:
    site, credential = Site.create(name="s", kind="local", now=NOW, by="admin")
    site.revoke_credential(LATER)
    site.revoke_credential(LATER)  # idempotent
    assert site.credential is None and site.credential_revoked_at == LATER
    assert site.credential_state is CredentialState.REVOKED
    assert site.refusal(credential) is AuthFailure.REVOKED
    again = site.issue_credential(LATER)
    assert site.refusal(again) is None and site.credential_state is CredentialState.ACTIVE


def test_archiving_revokes_and_retires_the_site() -> None:
    site, credential = Site.create(name="s", kind="local", now=NOW, by="admin")
    site.state = SiteState.ONLINE
    site.archive(LATER)
    assert (site.archived_at, site.state, site.state_reason) == (
        LATER,
        SiteState.OFFLINE,
        "site archived",
    )
    assert site.refusal(credential) is AuthFailure.ARCHIVED
    with pytest.raises(Conflict, match="archived"):
        site.issue_credential(LATER)


def test_a_site_of_before_credentials_is_refused_until_one_is_issued() -> None:
    site = Site(
        id=site_id_for("old"),
        name="old",
        worker_id="old",
        backend_kind="local",
        registered_at=NOW,
        last_seen_at=NOW,
    )
    assert site.credential_state is CredentialState.NONE
    assert site.refusal("anything") is AuthFailure.NO_CREDENTIAL


def test_a_site_and_its_credential_hash_survive_the_record() -> None:
    site, credential = Site.create(name="s", kind="kubernetes", now=NOW, by="admin")
    row = site_row(site)
    assert row["credential_hash"] and row["credential_salt"] and credential not in str(row)

    class Row:
        pass

    record = Row()
    record.__dict__.update(row)
    back = site_from_row(record)
    assert back.refusal(credential) is None and back.created_by == "admin"
    record.node_pools = [["p", 2.0, 1024, 0]]  # recorded before max time existed
    assert site_from_row(record).node_pools[0].max_time_seconds == 0.0


# -- engine ------------------------------------------------------------------------------------


def register(rig: Rig, site: str, credential: str, worker: str = "w-s1") -> Registered:

    channel = rig.channels[site] = FakeChannel()
    return rig.engine.register_worker(
        RegisterWorker(
            worker_id=worker,
            site_name=site,
            backend_kind="local",
            credential=credential,
            address="ipv4:192.0.2.7:40000",
        ),
        channel,
    )


def test_a_worker_registers_with_its_sites_credential(rig: Rig) -> None:
    site, credential = rig.engine.create_site("s1", "local", "admin")
    assert rig.recorder.sites[site.id] is site  # recorded, offline, no worker yet
    reply = register(rig, "s1", credential)
    assert reply.site_id == site.id and site.state is SiteState.ONLINE
    assert (site.worker_id, site.worker_address) == ("w-s1", "ipv4:192.0.2.7:40000")
    assert rig.engine.links[site.id].channel is rig.channels["s1"]


@pytest.mark.parametrize(
    ("presented", "site_name", "reason"),
    [
        ("", "s1", AuthFailure.MISSING),
        ("ryax_site_wrong", "s1", AuthFailure.WRONG),
        ("ryax_site_wrong", "nowhere", AuthFailure.UNKNOWN_SITE),
        ("", "nowhere", AuthFailure.MISSING),
    ],
)
def test_a_worker_without_the_right_credential_is_refused_and_nothing_changes(
    rig: Rig, presented: str, site_name: str, reason: AuthFailure
) -> None:
    site, _ = rig.engine.create_site("s1", "local", "admin")
    before = dict(site_row(site))
    recorded = dict(rig.recorder.sites)
    with pytest.raises(WorkerRefused) as refused:
        register(rig, site_name, presented)
    assert refused.value.reason is reason and refused.value.code == "unauthenticated"
    assert "ryax_site_wrong" not in refused.value.detail
    assert site_row(site) == before and rig.recorder.sites == recorded
    assert set(rig.engine.sites) == {site.id}
    assert rig.channels[site_name].sent == [] and rig.engine.links[site.id].channel is None


def test_a_revoked_credential_is_refused_and_cuts_the_worker_off(rig: Rig) -> None:
    site, credential = rig.engine.create_site("s1", "local", "admin")
    register(rig, "s1", credential)
    channel = rig.channels["s1"]
    rig.engine.revoke_site_credential("s1", "admin")
    assert channel.closed == "the site's credential was revoked"
    assert rig.engine.links[site.id].channel is None
    with pytest.raises(WorkerRefused) as refused:
        register(rig, "s1", credential)
    assert refused.value.reason is AuthFailure.REVOKED


async def test_rotating_while_connected_cuts_the_stream_and_the_old_credential_is_refused(
    rig: Rig,
) -> None:
    site, old = rig.engine.create_site("s1", "local", "admin")
    register(rig, "s1", old)
    first = rig.channels["s1"]
    _, new = rig.engine.rotate_site_credential("s1", "admin")
    assert first.closed == "the site's credential was rotated"
    with pytest.raises(WorkerRefused) as refused:
        register(rig, "s1", old)
    assert refused.value.reason is AuthFailure.WRONG
    register(rig, "s1", new)
    assert rig.engine.links[site.id].channel is rig.channels["s1"] and not rig.channels["s1"].closed


def test_a_second_worker_with_the_credential_is_refused_while_the_first_is_online(
    rig: Rig,
) -> None:
    site, credential = rig.engine.create_site("s1", "local", "admin")
    register(rig, "s1", credential, worker="first")
    first = rig.channels["s1"]
    with pytest.raises(SiteTaken):
        register(rig, "s1", credential, worker="second")
    assert site.worker_id == "first" and rig.engine.links[site.id].channel is first
    assert not first.closed
    # Once the first one's stream ended and it went silent, the second may take the site.
    rig.engine.disconnected(site.id, first)
    rig.timers.advance(HEARTBEAT_TIMEOUT + 1)
    register(rig, "s1", credential, worker="second")
    assert site.worker_id == "second" and site.last_report_seq == 0


def test_the_worker_backend_must_be_the_sites_type(rig: Rig) -> None:
    _, credential = rig.engine.create_site("hpc", "slurm", "admin")
    with pytest.raises(InvalidInput, match="site 'hpc' is of type slurm, this worker's backend"):
        register(rig, "hpc", credential)


def test_a_site_name_is_taken_once_archived_sites_included(rig: Rig) -> None:
    rig.engine.create_site("s1", "local", "admin")
    with pytest.raises(SiteExists, match=r"already exists$"):
        rig.engine.create_site("s1", "slurm", "admin")
    rig.engine.archive_site("s1", "admin")
    with pytest.raises(SiteExists, match="archived"):
        rig.engine.create_site("s1", "local", "admin")
    with pytest.raises(NotFound):
        rig.engine.rotate_site_credential("nowhere", "admin")


async def test_archiving_an_online_site_loses_its_executions_and_refuses_its_worker(
    rig: Rig,
) -> None:
    rig.register("s1")
    d = await rig.deploy(processor("a"))
    rig.ready("s1", "a")
    run = rig.engine.start_run(d, {"x": "hi"}, origin="http")
    [order] = rig.executes("s1")
    site = rig.engine.find_site("s1")
    rig.engine.archive_site("s1", "admin")
    assert site.is_archived and site.state is SiteState.OFFLINE and site.credential is None
    assert rig.channels["s1"].closed
    execution = next(e for e in run.executions.values() if e.id == order.execution_id)
    assert execution.state is ExecutionState.LOST
    with pytest.raises(WorkerRefused) as refused:
        rig.register("s1", credential="ryax_site_anything")
    assert refused.value.reason is AuthFailure.ARCHIVED


# -- the built-in site of the configuration (RYAX_RUNNER_BUILTIN_SITE) ----------------------------

CONFIGURED = "c" * 43


def test_the_builtin_site_is_created_with_the_configured_credential(rig: Rig) -> None:
    site = rig.engine.configure_site("local", "local", CONFIGURED)
    assert rig.recorder.sites[site.id] is site and site.created_by == "configuration"
    assert site.refusal(CONFIGURED) is None and site.state is SiteState.OFFLINE
    register(rig, "local", CONFIGURED)
    assert site.state is SiteState.ONLINE
    # The next start with the same configuration changes nothing: the worker stays connected.
    issued = site.credential_issued_at
    assert rig.engine.configure_site("local", "local", CONFIGURED) is site
    assert site.credential_issued_at == issued and not rig.channels["local"].closed


def test_the_configured_credential_is_made_the_one_that_works_at_each_start(rig: Rig) -> None:
    site, issued = rig.engine.create_site("local", "local", "admin")
    register(rig, "local", issued)
    rig.engine.configure_site("local", "local", CONFIGURED)
    assert rig.channels["local"].closed  # its worker presented the other one
    assert site.refusal(issued) is AuthFailure.WRONG and site.refusal(CONFIGURED) is None
    rig.engine.revoke_site_credential("local", "admin")
    rig.engine.configure_site("local", "local", CONFIGURED)
    assert site.credential_state is CredentialState.ACTIVE and site.refusal(CONFIGURED) is None


def test_a_site_of_before_credentials_gets_the_configured_one(rig: Rig) -> None:
    """The demo's database of before sites had credentials: its site `local` works again."""
    site = Site(
        id=site_id_for("local"),
        name="local",
        worker_id="local",
        backend_kind="local",
        registered_at=NOW,
        last_seen_at=NOW,
    )
    rig.engine.restore(LoadedState(sites=[site]))
    assert site.refusal(CONFIGURED) is AuthFailure.NO_CREDENTIAL
    rig.engine.configure_site("local", "local", CONFIGURED)
    assert site.refusal(CONFIGURED) is None and rig.recorder.sites[site.id] is site


def test_an_archived_builtin_site_stays_archived(rig: Rig) -> None:
    rig.engine.configure_site("local", "local", CONFIGURED)
    site = rig.engine.archive_site("local", "admin")
    rig.engine.configure_site("local", "local", CONFIGURED)
    assert site.is_archived and site.refusal(CONFIGURED) is AuthFailure.ARCHIVED
