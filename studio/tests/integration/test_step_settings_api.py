"""Per-step settings with the HPC add-on through the HTTP API on the real PostgreSQL: set,
refused with the field named, kept, exported and imported back, and sent to the runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ryax_studio.infrastructure.proto import studio_events_pb2 as pb

from .test_api import A, import_example, json_of, outbox_rows

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "workflows"
SCRIPT = "srun ./count > out.txt\nexport counts=out.txt\n"
SETTINGS = {
    "timeout_seconds": 3600,
    "retries": 1,
    "site_name": "hpc",
    "node_pool": "debug",
    "labels": {"zone": "eu"},
    "resources": {"cpu": 2, "memory_bytes": 1073741824, "time_seconds": 600, "gpu": 1},
    "hpc": {"partition": "debug", "tasks": 4, "nodes": "1-2", "exclusive": True},
}


async def test_hpc_settings_are_checked_kept_exported_and_deployed(
    studio: Any, fill_store: Any, db_url: str
) -> None:
    await fill_store(studio)
    created = await json_of(await import_example(studio, "demo"), 201)
    w = f"{A}/workflows/{created['id']}"
    settings = f"{w}/steps/count/settings"

    for hpc, detail in (
        ({"partitions": "debug"}, "hpc.partitions: unknown HPC parameter 'partitions'"),
        ({"nodes": "two"}, "hpc.nodes: 'two' is not a node count (e.g. 2 or 1-4)"),
        ({"time": "soon"}, "hpc.time: 'soon' is not a time"),
        ({"custom_script": "  "}, "hpc.custom_script: the script is empty"),
    ):
        refused = await json_of(await studio.call("PUT", settings, json={"hpc": hpc}), 400)
        assert refused["error"] == "invalid_input" and refused["detail"].startswith(detail)
    bad_type = await studio.call("PUT", settings, json={"hpc": {"nodes": [1]}})
    assert bad_type.status == 400

    view = await json_of(
        await studio.call("PUT", settings, json={**SETTINGS, "hpc": {**SETTINGS["hpc"]}}), 200
    )
    count = next(s for s in view["steps"] if s["id"] == "count")
    assert count["settings"]["hpc"] == {
        "partition": "debug",
        "nodes": "1-2",
        "ntasks": "4",
        "exclusive": "true",
    }
    await json_of(
        await studio.call(
            "PUT", f"{w}/steps/shout/settings", json={"hpc": {"custom_script": SCRIPT}}
        ),
        200,
    )
    shown = await json_of(await studio.call("GET", w), 200)
    assert next(s for s in shown["steps"] if s["id"] == "count")["settings"] == count["settings"]
    assert next(s for s in shown["steps"] if s["id"] == "shout")["settings"]["hpc"] == {
        "custom_script": SCRIPT
    }

    # Export: the settings are in the document (no "not exported" comment), and importing it
    # back gives the same steps and the same document.
    exported = await (await studio.call("GET", f"{w}/export")).text()
    assert not exported.startswith("#")
    step = next(f for f in yaml.safe_load(exported)["spec"]["functions"] if f["id"] == "count")
    assert step["addons"] == {
        "hpc": {"partition": "debug", "nodes": "1-2", "ntasks": 4, "exclusive": True}
    }
    assert step["resources"] == {"cpu": 2, "memory": "1G", "time": "10m", "gpu": 1}
    assert step["placement"] == {"site": "hpc", "node_pool": "debug", "labels": {"zone": "eu"}}
    assert (step["timeout"], step["retries"]) == ("1h", 1)
    again = await json_of(
        await studio.call(
            "POST", f"{A}/workflows/import", data=exported.encode(), params={"name": "again"}
        ),
        201,
    )
    assert again["steps"] == shown["steps"]
    second = await (await studio.call("GET", f"{A}/workflows/{again['id']}/export")).text()
    assert second == exported.replace(f"human_name: {created['name']}", "human_name: again", 1)
    await studio.call("DELETE", f"{A}/workflows/{again['id']}")

    # Deploy: the runner gets the parameters in the event.
    await json_of(await studio.call("POST", f"{w}/deploy"), 202)
    [row] = [r for r in await outbox_rows(db_url) if r.type == "WorkflowDeployRequested"]
    message = pb.WorkflowDeployRequested.FromString(row.body)
    by_id = {s.step_id: s for s in message.snapshot.steps}
    assert dict(by_id["count"].settings.hpc) == count["settings"]["hpc"]
    assert dict(by_id["shout"].settings.hpc) == {"custom_script": SCRIPT}
    assert dict(by_id["report"].settings.hpc) == {}
    assert by_id["count"].settings.site_name == "hpc"


async def test_a_document_with_bad_settings_is_refused_at_their_lines(
    studio: Any, fill_store: Any
) -> None:
    await fill_store(studio)
    text = (EXAMPLES / "demo.yaml").read_text()
    text = text.replace(
        "    from: word-count\n",
        "    from: word-count\n"
        "    addons:\n"
        "      hpc: {partition: debug, nodes: none}\n"
        "    placement: {site: hpc, pool: gpu}\n",
    )
    body = await json_of(
        await studio.call("POST", f"{A}/workflows/import", data=text.encode()), 422
    )
    lines = text.splitlines()
    found = [(p["line"], p["path"]) for p in body["problems"]]
    assert found == [
        (
            lines.index("      hpc: {partition: debug, nodes: none}") + 1,
            "spec.functions[2] (count).addons.hpc.nodes",
        ),
        (
            lines.index("    placement: {site: hpc, pool: gpu}") + 1,
            "spec.functions[2] (count).placement",
        ),
    ]
    assert "'none' is not a node count" in body["problems"][0]["message"]
    assert "unknown field 'pool'" in body["problems"][1]["message"]
    listed = await json_of(await studio.call("GET", f"{A}/workflows"), 200)
    assert listed["workflows"] == []
