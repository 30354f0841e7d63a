"""`ryax site list|show|create|rotate|revoke|archive`: sites, and their administration (admins).

A site's credential is shown once, by `create` and `rotate`: its worker presents it
(RYAX_SITE_CREDENTIAL); the platform keeps only a hash of it (docs/remote-sites.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..models import NodePool, Site, SiteCredential
from .context import Output, OutputOpt, ProjectOpt, command, info, state
from .output import emit, fields, state_text, table, when

app = typer.Typer(no_args_is_help=True)

SITE_TYPES = ("local", "slurm", "kubernetes")
COLUMNS = (
    "NAME",
    "TYPE",
    "STATE",
    "WORKER",
    "CONNECTED SINCE",
    "NODE POOLS",
    "LAST SEEN",
    "REASON",
)
SiteArg = Annotated[str, typer.Argument(help="The site's name (or id).")]


def _duration(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def _pool(pool: NodePool) -> str:
    res = []
    if pool.cpu:
        res.append(f"{pool.cpu:g} cpu")
    if pool.memory_bytes:
        res.append(f"{pool.memory_bytes / 2**30:.1f} GiB")
    if pool.gpu:
        res.append(f"{pool.gpu} gpu")
    if pool.max_time_seconds:
        res.append(f"max {_duration(pool.max_time_seconds)}")
    name = pool.name or "?"
    return f"{name} ({', '.join(res)})" if res else name


def _pools(pools: list[NodePool]) -> str:
    return "; ".join(_pool(pool) for pool in pools)


def _worker(site: Site) -> str:
    """Who serves the site: the worker's id and where it connected from."""
    if not site.worker_id:
        return ""
    return f"{site.worker_id} ({site.worker_address})" if site.worker_address else site.worker_id


def _since(site: Site) -> str:
    """Connected since when (nothing when the worker's stream is not open)."""
    return when(site.registered_at) if site.connected else ""


def _list(found: list[Site], output: Output, *, empty: str) -> None:
    emit(
        output,
        [s.raw for s in found],
        lambda: table(
            COLUMNS,
            [
                (
                    s.name,
                    s.backend,
                    state_text("archived" if s.archived_at else s.state),
                    _worker(s),
                    _since(s),
                    _pools(s.node_pools),
                    s.last_seen_at if s.worker_id else None,
                    s.reason or "",
                )
                for s in found
            ],
            empty=empty,
        ),
    )


@command(app, "list")
def list_sites(
    project: ProjectOpt = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every site of the platform, from the admin API.")
    ] = False,
    archived: Annotated[
        bool, typer.Option("--archived", help="With --all: archived sites too.")
    ] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Sites, with their state, the worker serving each and since when, and node pools."""
    st = state()
    if every or archived:
        found = st.client().sites.all(archived=archived)
    else:
        found = st.client().sites.list(project or st.load().project)
    _list(found, output, empty="no site: an admin creates one with `ryax site create NAME`")


def _show(site: Site) -> None:
    fields(
        [
            ("name", site.name),
            ("id", site.id),
            ("type", site.backend),
            ("state", state_text(site.state)),
            ("reason", site.reason or ""),
            ("connected", "yes" if site.connected else "no"),
            ("worker", _worker(site)),
            ("connected since", _since(site)),
            ("last seen", site.last_seen_at if site.worker_id else None),
            ("worker version", site.version),
            ("credential", site.credential),
            ("credential issued", site.credential_issued_at),
            ("created", site.created_at),
            ("created by", site.created_by),
            ("archived", site.archived_at),
            ("labels", ", ".join(f"{k}={v}" for k, v in site.raw.get("labels", {}).items())),
        ]
    )
    if site.node_pools:
        table(
            ["NODE POOL", "CPU", "MEMORY", "GPU", "MAX TIME"],
            [
                (
                    p.name,
                    f"{p.cpu:g}" if p.cpu else "",
                    f"{p.memory_bytes / 2**30:.1f} GiB" if p.memory_bytes else "",
                    p.gpu or "",
                    _duration(p.max_time_seconds) if p.max_time_seconds else "",
                )
                for p in site.node_pools
            ],
        )


@command(app, "show")
def show_site(site: SiteArg, output: OutputOpt = Output.table) -> None:
    """A site (admins): its worker, since when, its credential's state, its node pools."""
    found = state().client().sites.show(site)
    emit(output, found.raw, lambda: _show(found))


def _credential(issued: SiteCredential, what: str) -> None:
    site = issued.site
    info(f"{what} for site {site.name} ({site.backend}).")
    info("The credential is shown once, store it now; the site's worker presents it:")
    info(f"  RYAX_SITE_NAME={site.name}  RYAX_SITE_CREDENTIAL=<credential>")
    info("  (or RYAX_SITE_CREDENTIAL_FILE=<a file holding it>); see docs/remote-sites.md")
    typer.echo(issued.credential)


@command(app, "create")
def create_site(
    name: Annotated[str, typer.Argument(help="The site's name: its worker's RYAX_SITE_NAME.")],
    kind: Annotated[
        str,
        typer.Option(
            "--type",
            "-t",
            help=f"What runs its steps: {', '.join(SITE_TYPES)} (its worker's backend).",
        ),
    ] = "local",
    output: OutputOpt = Output.table,
) -> None:
    """Create a site (admins) and print its credential, once."""
    created = state().client().sites.create(name, kind)
    emit(output, created.raw, lambda: _credential(created, "Created a credential"))


@command(app, "rotate")
def rotate_credential(site: SiteArg, output: OutputOpt = Output.table) -> None:
    """Issue a new credential for the site (admins), printed once: the old one stops working
    and the connected worker is cut off (restart it with the new one)."""
    issued = state().client().sites.rotate(site)
    emit(output, issued.raw, lambda: _credential(issued, "Issued a new credential"))


@command(app, "revoke")
def revoke_credential(site: SiteArg, output: OutputOpt = Output.table) -> None:
    """Revoke the site's credential (admins): its worker is cut off and refused until a new
    one is issued (`ryax site rotate`)."""
    revoked = state().client().sites.revoke(site)
    emit(output, revoked.raw, lambda: info(f"Revoked the credential of site {revoked.name}"))


@command(app, "archive")
def archive_site(site: SiteArg, output: OutputOpt = Output.table) -> None:
    """Archive the site (admins): credential revoked, offline for good (its executions run
    again elsewhere), kept in the record with its name."""
    archived = state().client().sites.archive(site)
    emit(output, archived.raw, lambda: info(f"Archived site {archived.name}"))
