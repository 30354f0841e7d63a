"""`ryax site ...`: admins create a site (its credential printed once, alone on stdout),
show it, rotate or revoke its credential, archive it; members list the sites of their project;
who serves a site and since when is shown."""

from __future__ import annotations

import json

from .conftest import ADMIN, Ryax
from .fake_ryax import FakeRyax


def test_an_admin_creates_a_site_and_gets_its_credential_once(ryax: Ryax, fake: FakeRyax) -> None:
    ryax.login(ADMIN)
    out = ryax("site", "create", "edge-1", "--type", "slurm")
    assert out.exit_code == 0, out.stderr
    credential = fake.site_credentials["edge-1"]
    # Only the credential on stdout (`ryax site create X > file` keeps it); guidance on stderr.
    assert out.stdout == credential + "\n"
    assert "shown once" in out.stderr and "RYAX_SITE_CREDENTIAL" in out.stderr
    [create] = fake.calls("POST", "/runner/v1/sites")
    assert json.loads(create.body) == {"name": "edge-1", "type": "slurm"}

    shown = ryax("site", "show", "edge-1")
    assert shown.exit_code == 0, shown.stderr
    assert "slurm" in shown.stdout and "active" in shown.stdout and credential not in shown.stdout
    lines = {" ".join(line.split()[:-1]): line.split()[-1] for line in shown.stdout.splitlines()}
    assert (lines["state"], lines["connected"], lines["credential"]) == ("offline", "no", "active")

    again = ryax("site", "create", "edge-1", "--type", "slurm")
    assert again.exit_code != 0 and "already exists" in again.stderr


def test_rotate_prints_a_new_credential_and_revoke_and_archive_say_so(
    ryax: Ryax, fake: FakeRyax
) -> None:
    ryax.login(ADMIN)
    assert ryax("site", "create", "edge-1").exit_code == 0
    first = fake.site_credentials["edge-1"]
    rotated = ryax("site", "rotate", "edge-1", "-o", "json")
    assert rotated.exit_code == 0, rotated.stderr
    doc = json.loads(rotated.stdout)
    assert doc["credential"] == fake.site_credentials["edge-1"] != first
    assert doc["site"]["name"] == "edge-1"

    revoked = ryax("site", "revoke", "edge-1")
    assert revoked.exit_code == 0 and "Revoked the credential of site edge-1" in revoked.stderr
    assert json.loads(ryax("site", "show", "edge-1", "-o", "json").stdout)["credential"] == (
        "revoked"
    )
    archived = ryax("site", "archive", "edge-1")
    assert archived.exit_code == 0 and "Archived site edge-1" in archived.stderr
    # Archived: gone from the lists but with --archived; no new credential.
    listed = json.loads(ryax("site", "list", "--all", "-o", "json").stdout)
    assert [s["name"] for s in listed] == ["local"]
    listed = json.loads(ryax("site", "list", "--all", "--archived", "-o", "json").stdout)
    assert [s["name"] for s in listed] == ["local", "edge-1"]
    table = ryax("site", "list", "--archived")
    assert "archived" in table.stdout
    refused = ryax("site", "rotate", "edge-1")
    assert refused.exit_code != 0 and "archived" in refused.stderr


def test_the_list_says_which_worker_serves_each_site_and_since_when(ryax: Ryax) -> None:
    ryax.login()
    out = ryax("site", "list")
    assert out.exit_code == 0, out.stderr
    assert "worker-1 (ipv4:192.0.2.10:50123)" in out.stdout and "CONNECTED SINCE" in out.stdout
    assert "default (4 cpu, 7.5 GiB)" in out.stdout


def test_members_cannot_administer_sites(ryax: Ryax, fake: FakeRyax) -> None:
    ryax.login()
    for args in (
        ("site", "create", "mine"),
        ("site", "list", "--all"),
        ("site", "show", "local"),
        ("site", "rotate", "local"),
        ("site", "revoke", "local"),
        ("site", "archive", "local"),
    ):
        out = ryax(*args)
        assert out.exit_code != 0 and "administrators only" in out.stderr, args
    assert fake.site_credentials == {} and [s["name"] for s in fake.sites] == ["local"]


def test_an_unknown_site_is_named(ryax: Ryax) -> None:
    ryax.login(ADMIN)
    out = ryax("site", "show", "nowhere")
    assert out.exit_code != 0 and "site 'nowhere' not found" in out.stderr
