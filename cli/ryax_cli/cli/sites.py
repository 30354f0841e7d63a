"""`ryax site list`."""

from __future__ import annotations

import typer

from .context import Output, OutputOpt, ProjectOpt, command, state
from .output import emit, state_text, table

app = typer.Typer(no_args_is_help=True)


def _pools(pools: list[dict[str, object]]) -> str:
    parts = []
    for pool in pools:
        res = []
        if pool.get("cpu"):
            res.append(f"{pool['cpu']} cpu")
        memory = pool.get("memory_bytes") or pool.get("memory")
        if isinstance(memory, int | float) and memory:
            res.append(f"{memory / 2**30:.1f} GiB")
        if pool.get("gpu"):
            res.append(f"{pool['gpu']} gpu")
        name = str(pool.get("name", "?"))
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
