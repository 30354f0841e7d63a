# mypy: disable-error-code="import-not-found,import-untyped"
# (its third-party imports live in a bench virtualenv, not in .venv where mypy runs)
"""Render the results of bench/run.py: a plain-text table (printed, and written with --text) and a
PNG chart (--png, needs matplotlib: bench/run.py runs this in .dev/bench/venv-report).

    python bench/report.py .dev/bench/results.json [--text bench.txt] [--png bench.png]

The table needs only the standard library; it can be rendered again from any results.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SYSTEMS = ("ryax", "prefect", "celery")
PEERS = ("prefect", "celery")
TITLES = {"ryax": "Ryax", "prefect": "Prefect", "celery": "Celery"}
COLORS = {"ryax": "#1f6feb", "prefect": "#8250df", "celery": "#2da44e"}


def number(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1 or size == 0:
        return f"{value:.2f}"
    return f"{value:.3g}"


def count_or_number(value: float | None, count: bool) -> str:
    if count and value is not None and math.isfinite(value) and value == int(value):
        return str(int(value))
    return number(value)


def ratio(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.1f}x" if value >= 10 else f"{value:.2f}x"


def gib(size: float) -> str:
    return f"{size / 2**30:.1f} GiB"


def header(results: dict[str, Any]) -> list[str]:
    env = results.get("environment", {})
    versions: dict[str, str] = env.get("versions", {})
    options = results.get("options", {})
    systems = options.get("systems", [])
    shown = ", ".join(
        f"{name} {value}"
        for name, value in versions.items()
        if not name.startswith("python") and name not in ("kombu",)
    )
    by_version: dict[str, list[str]] = {str(env.get("python", "?")): ["harness"]}
    for name, value in versions.items():
        if name.startswith("python ("):
            by_version.setdefault(value, []).append(name.removeprefix("python (").rstrip(")"))
    pythons = "; ".join(f"{version} ({', '.join(users)})" for version, users in by_version.items())
    return [
        f"Ryax benchmarks, {results.get('started_at', '?')} on {env.get('host', '?')}",
        f"CPU:      {env.get('cpu_model', '?')}, {env.get('cores', '?')} cores "
        f"({env.get('cores_usable', '?')} usable)",
        f"Memory:   {gib(env.get('memory_bytes', 0))}    OS: {env.get('os', '?')}",
        f"Python:   {pythons}",
        f"Versions: {shown or '?'}",
        f"Systems:  {', '.join(TITLES.get(s, s) for s in systems)}    "
        f"runs: {options.get('runs')} (+{options.get('warmup')} warm-up)    "
        f"throughput: clients {options.get('clients')}, at most {options.get('max_requests')} "
        f"requests or {options.get('max_seconds')} s per level",
    ]


def table(results: dict[str, Any]) -> str:
    systems = [s for s in SYSTEMS if s in results.get("options", {}).get("systems", [])]
    peers = [p for p in PEERS if p in systems and "ryax" in systems]
    columns = ["benchmark", "figure", "unit", "better"]
    columns += [TITLES[s] for s in systems]
    columns += [f"Ryax/{TITLES[p]}" for p in peers]
    rows: list[list[str]] = []
    for figure in results.get("figures", []):
        values = figure.get("values", {})
        ratios = figure.get("ratios", {})
        row = [figure["benchmark"], figure["label"], figure["unit"], figure["better"]]
        count = figure["unit"] == "" and figure["better"] in ("-", "lower")
        row += [count_or_number(values.get(s), count) for s in systems]
        row += [ratio(ratios.get(p)) for p in peers]
        rows.append(row)
    widths = [max(len(r[i]) for r in [columns, *rows]) for i in range(len(columns))]
    numeric = set(range(4, len(columns)))

    def line(cells: Sequence[str]) -> str:
        out = []
        for index, (cell, width) in enumerate(zip(cells, widths, strict=True)):
            out.append(cell.rjust(width) if index in numeric else cell.ljust(width))
        return "  ".join(out).rstrip()

    text = [*header(results), ""]
    text.append(line(columns))
    text.append(line(["-" * w for w in widths]))
    previous = ""
    for row in rows:
        if previous and row[0] != previous:
            text.append("")
        previous = row[0]
        text.append(line(row))
    text += [
        "",
        "Ratio = the Ryax figure / the peer's figure, both measured in this run. For times and "
        "memory (better: lower) < 1 means Ryax does better; for runs/s (better: higher) > 1 does.",
        "'-': not measured for that system; Prefect and Celery have no deploy or build step "
        "(bench/README.md).",
    ]
    for system in systems:
        doc = results.get("systems", {}).get(system, {})
        for level in (doc.get("throughput") or {}).get("levels", []):
            for sample in level.get("error_samples", []):
                text.append(f"{TITLES[system]} error, {level['clients']} clients: {sample}")
        for note in doc.get("notes", []):
            text.append(f"{TITLES[system]}: {note}")
    return "\n".join(text) + "\n"


# --------------------------------------------------------------------------- chart


def figure_values(results: dict[str, Any], key: str) -> dict[str, float]:
    for figure in results.get("figures", []):
        if figure["key"] == key:
            return {k: float(v) for k, v in figure.get("values", {}).items()}
    return {}


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    def readable_log(ax: Any) -> None:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: number(value)))
        ax.yaxis.set_minor_formatter(NullFormatter())

    systems = [s for s in SYSTEMS if s in results.get("options", {}).get("systems", [])]
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    env = results.get("environment", {})
    fig.suptitle(
        f"Ryax vs Prefect vs Celery - {env.get('cpu_model', '?')}, {env.get('cores', '?')} cores, "
        f"{results.get('started_at', '')}",
        fontsize=11,
    )

    def bars(ax: Any, keys: list[tuple[str, str]], title: str, unit: str, log: bool) -> None:
        width = 0.8 / max(len(keys), 1)
        for offset, (key, label) in enumerate(keys):
            values = figure_values(results, key)
            xs = [i + offset * width for i, s in enumerate(systems) if s in values]
            ys = [values[s] for s in systems if s in values]
            colors = [COLORS[s] for s in systems if s in values]
            drawn = ax.bar(
                xs, ys, width=width, color=colors, alpha=1.0 - 0.35 * offset, label=label
            )
            ax.bar_label(drawn, labels=[number(y) for y in ys], fontsize=7)
        ax.set_xticks([i + width * (len(keys) - 1) / 2 for i in range(len(systems))])
        ax.set_xticklabels([TITLES[s] for s in systems])
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit)
        if log:
            readable_log(ax)
        if len(keys) > 1:
            ax.legend(fontsize=7)

    steps = results.get("options", {}).get("steps", 40)
    bars(
        axes[0][0],
        [("chain.median", "median"), ("chain.p95", "p95")],
        f"chain-{steps}: trigger -> run completed",
        "seconds (log)",
        log=True,
    )
    bars(axes[0][1], [("chain.per_step", "per step")], "per-step overhead", "ms (log)", log=True)

    clients = results.get("options", {}).get("clients", [])
    for ax, what, title, unit in (
        (axes[0][2], "rate", "throughput, one-step workflow", "runs/s (log)"),
        (axes[1][0], "latency", "latency under load: p50 (solid), p99 (dashed)", "ms (log)"),
    ):
        for system in systems:
            if what == "rate":
                series = [figure_values(results, f"tp.{c}.rate").get(system) for c in clients]
                points = [(c, v) for c, v in zip(clients, series, strict=True) if v is not None]
                if points:
                    xs, ys = zip(*points, strict=True)
                    ax.plot(xs, ys, marker="o", color=COLORS[system], label=TITLES[system])
                continue
            for pct, style in (("p50", "-"), ("p99", "--")):
                series = [figure_values(results, f"tp.{c}.{pct}").get(system) for c in clients]
                points = [(c, v) for c, v in zip(clients, series, strict=True) if v is not None]
                if points:
                    label = TITLES[system] if pct == "p50" else None
                    xs, ys = zip(*points, strict=True)
                    ax.plot(xs, ys, style, marker="o", color=COLORS[system], label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(clients)
        ax.set_xticklabels([str(c) for c in clients])
        ax.set_xlabel("concurrent clients")
        readable_log(ax)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit)
        ax.legend(fontsize=7)

    bars(
        axes[1][1],
        [
            ("mem.rss", "RSS sum"),
            ("mem.services_rss", "services only, RSS"),
            ("mem.pss", "PSS sum"),
        ],
        "idle memory of the system's processes",
        "MiB",
        log=False,
    )

    ax = axes[1][2]
    ryax_only = [
        ("deploy.median", "cold deploy\n(3 actions)"),
        ("build.unchanged", "rebuild,\nunchanged"),
        ("build.new", "build, new\n+1 dependency"),
    ]
    shown = [(label, figure_values(results, key).get("ryax")) for key, label in ryax_only]
    shown = [(label, v) for label, v in shown if v is not None]
    if shown:
        drawn = ax.bar([label for label, _ in shown], [v for _, v in shown], color=COLORS["ryax"])
        ax.bar_label(drawn, labels=[number(v) for _, v in shown], fontsize=7)
    else:
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_title("Ryax only: deploy and build", fontsize=10)
    ax.set_ylabel("seconds")
    ax.tick_params(axis="x", labelsize=8)

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench/report.py", description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="results.json written by bench/run.py")
    parser.add_argument("--text", type=Path, help="also write the table there")
    parser.add_argument("--png", type=Path, help="draw the chart there (needs matplotlib)")
    args = parser.parse_args(argv)
    try:
        results = json.loads(args.results.read_text())
    except (OSError, ValueError) as exc:
        print(f"report: cannot read {args.results}: {exc}", file=sys.stderr)
        return 1
    text = table(results)
    sys.stdout.write(text)
    if args.text:
        args.text.write_text(text)
    if args.png:
        try:
            chart(results, args.png)
        except ImportError as exc:
            print(
                f"report: the chart needs matplotlib ({exc}); run with "
                ".dev/bench/venv-report/bin/python (bench/run.py creates it)",
                file=sys.stderr,
            )
            return 1
        print(f"chart: {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
