"""`ryax site list`."""

from __future__ import annotations

import typer

from ..models import NodePool
from .context import Output, OutputOpt, ProjectOpt, command, state
from .output import emit, state_text, table

app = typer.Typer(no_args_is_help=True)


def _pools(pools: list[NodePool]) -> str:
    parts = []
    for pool in pools:
        res = []
        if pool.cpu:
            res.append(f"{pool.cpu:g} cpu")
        if pool.memory_bytes:
            res.append(f"{pool.memory_bytes / 2**30:.1f} GiB")
        if pool.gpu:
            res.append(f"{pool.gpu} gpu")
        name = pool.name or "?"
        parts.append(f"{name} ({', '.join(res)})" if res else name)
    return "; ".join(parts)


@command(app, "list")
def list_sites(project: ProjectOpt = None, output: OutputOpt = Output.table) -> None:
    """Sites (workers) known to the runner, with their state and node pools."""
    st = state()
    found = st.client().sites.list(project or st.load().project)
    emit(
        output,
        [s.raw for s in found],
        lambda: table(
            ["NAME", "BACKEND", "STATE", "NODE POOLS", "LAST SEEN", "REASON"],
            [
                (
                    s.name,
                    s.backend,
                    state_text(s.state),
                    _pools(s.node_pools),
                    s.last_seen_at,
                    s.reason or "",
                )
                for s in found
            ],
            empty="no site registered: start a worker",
        ),
    )
