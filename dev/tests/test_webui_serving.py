"""How `make demo` serves the web UI: nginx (webui/nginx/ryax-webui.conf, the rules the Helm
chart's image uses too) under supervisord, behind the gateway at `/` with the lowest priority.
The nginx test runs the real nginx on a free port against a small build output."""

from __future__ import annotations

import gzip
import http.client
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
devlib: Any = sys.modules["ryax_devlib"]  # loaded by the root conftest.py
platform: Any = sys.modules.get("ryax_dev_platform")
if platform is None:  # loaded by path, as dev/tests/test_platform.py does
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "ryax_dev_platform", REPO_ROOT / "dev" / "platform.py"
    )
    assert spec is not None and spec.loader is not None
    platform = importlib.util.module_from_spec(spec)
    sys.modules["ryax_dev_platform"] = platform
    spec.loader.exec_module(platform)


def test_the_gateway_routes_the_ui_at_root_below_every_service() -> None:
    routes = yaml.safe_load(platform.traefik_routes(webui=True))["http"]
    webui = routes["routers"]["webui"]
    assert webui["rule"] == "PathPrefix(`/`)"
    assert webui["priority"] == 1
    for service in platform.SERVICES:
        if service.routed:
            router = routes["routers"][service.program]
            # Traefik's default priority is the rule's length: always above 1.
            assert "priority" not in router and len(router["rule"]) > 1
    url = routes["services"]["webui"]["loadBalancer"]["servers"][0]["url"]
    assert url == f"http://127.0.0.1:{platform.WEBUI_PORT}"
    assert "webui" not in yaml.safe_load(platform.traefik_routes(webui=False))["http"]["routers"]


def test_the_ui_port_is_free_of_every_other_program() -> None:
    ports = [port for port, _ in platform.wanted_ports(list(platform.SERVICES))]
    assert platform.WEBUI_PORT in ports
    assert len(ports) == len(set(ports))


def test_the_program_table_has_the_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    programs = platform.programs_for(list(platform.SERVICES), None)
    webui = next(program for program in programs if program.name == "webui")
    assert webui.url == f"{platform.GATEWAY_URL}/"
    asked: list[str] = []
    monkeypatch.setattr(platform, "http_status", lambda url, timeout=2.0: asked.append(url) or 200)
    assert webui.health()
    # nginx itself is probed, not the gateway nor the last service of the table.
    assert asked == [f"http://127.0.0.1:{platform.WEBUI_PORT}/"]


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


@pytest.fixture
def nginx_serving(tmp_path: Path) -> Iterator[int]:
    nginx = platform.nginx_binary()
    if nginx is None:
        pytest.skip("no nginx (bash dev/ensure-nginx.sh installs it)")
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / ".vite").mkdir()
    (dist / "index.html").write_text("<!doctype html><title>Ryax</title>" + " " * 2000)
    (dist / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (dist / "assets" / "index-abc123.js").write_text("console.log('ryax');\n" * 200)
    (dist / ".vite" / "manifest.json").write_text("{}")
    prefix = tmp_path / "nginx"
    (prefix / "tmp").mkdir(parents=True)
    port = devlib.free_ports(1)[0]
    conf = prefix / "nginx.conf"
    conf.write_text(
        platform.nginx_config(
            port=port,
            root=dist,
            rules=platform.WEBUI_NGINX_RULES,
            prefix=prefix,
            access_log=prefix / "access.log",
            # pytest's folders are private to their user: the workers keep it.
            user="root" if os.geteuid() == 0 else None,
        )
    )
    command = [nginx, "-p", str(prefix), "-e", "stderr", "-c", str(conf)]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while devlib.port_is_free(port):
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "nginx did not listen within 10 s"
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.integration
def test_nginx_serves_the_build_as_a_single_page_application(nginx_serving: int) -> None:
    port = nginx_serving
    status, headers, body = _get(port, "/")
    assert status == 200 and body.startswith(b"<!doctype html>")
    assert headers["Cache-Control"] == "no-cache"

    # An address of the UI is index.html, not a 404, and is not cached either.
    status, headers, body = _get(port, "/p/demo/runs/0b6c")
    assert status == 200 and body.startswith(b"<!doctype html>")
    assert headers["Cache-Control"] == "no-cache"

    status, headers, body = _get(port, "/assets/index-abc123.js")
    assert status == 200 and body.startswith(b"console.log")
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert headers["Content-Type"].startswith("application/javascript")

    # A missing asset is a 404, never the page (a stale chunk must fail loudly).
    assert _get(port, "/assets/gone-000.js")[0] == 404
    # Build metadata is not served.
    assert _get(port, "/.vite/manifest.json")[0] == 404

    status, headers, _ = _get(port, "/favicon.svg")
    assert status == 200 and headers["Cache-Control"] == "public, max-age=3600"

    status, headers, body = _get(port, "/assets/index-abc123.js", {"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body).startswith(b"console.log")


def test_the_image_uses_the_same_rules() -> None:
    dockerfile = (REPO_ROOT / "webui" / "Dockerfile").read_text()
    assert "COPY nginx/ryax-webui.conf /etc/nginx/ryax-webui.conf" in dockerfile
    server = (REPO_ROOT / "webui" / "nginx" / "docker-server.conf").read_text()
    assert "include /etc/nginx/ryax-webui.conf;" in server


def _render_simple(template: str, values: dict[str, Any], release: str) -> str:
    """Enough of Helm's templating for helm/ryax/templates/webui.yaml (helm itself is not
    installed here): `if`/`with` blocks on values, `.Release.Name`, `.Values.<path>`."""

    def lookup(path: str) -> Any:
        node: Any = values
        for key in path.removeprefix(".Values.").split("."):
            node = node.get(key) if isinstance(node, dict) else None
        return node

    out: list[str] = []
    keep: list[bool] = []
    for line in template.splitlines():
        block = re.match(r"\s*\{\{-? (if|with) (\.Values\.[\w.]+) \}\}\s*$", line)
        if block:
            keep.append(bool(lookup(block.group(2))))
            continue
        if re.match(r"\s*\{\{-? end \}\}\s*$", line):
            keep.pop()
            continue
        if not all(keep) or line.lstrip().startswith("#"):
            continue
        line = line.replace("{{ .Release.Name }}", release)
        line = re.sub(r"\{\{ (\.Values\.[\w.]+) \}\}", lambda m: str(lookup(m.group(1))), line)
        assert "{{" not in line, f"not handled: {line}"
        out.append(line)
    return "\n".join(out)


def test_the_chart_serves_the_ui_at_root() -> None:
    chart = REPO_ROOT / "helm" / "ryax"
    values = yaml.safe_load((chart / "values.yaml").read_text())
    webui = values["webui"]
    assert "webui" not in values["services"]  # not a Python service of services.yaml
    # The image's nginx listens on the port the chart gives the container and the Service.
    server = (REPO_ROOT / "webui" / "nginx" / "docker-server.conf").read_text()
    assert f"listen {webui['port']};" in server

    docs = list(
        yaml.safe_load_all(
            _render_simple((chart / "templates" / "webui.yaml").read_text(), values, "r")
        )
    )
    deployment, service = docs
    assert deployment["kind"] == "Deployment" and deployment["metadata"]["name"] == "r-webui"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"{webui['image']['repository']}:{webui['image']['tag']}"
    assert container["ports"] == [{"name": "http", "containerPort": webui["port"]}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/", "port": "http"}
    assert service["kind"] == "Service" and service["metadata"]["name"] == "r-webui"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert not _render_simple(
        (chart / "templates" / "webui.yaml").read_text(),
        {**values, "webui": {**webui, "enabled": False}},
        "r",
    ).strip()

    # The ingress: every service prefix, then `/` for the UI (Prefix `/` is the shortest match).
    ingress = (chart / "templates" / "ingress.yaml").read_text()
    services_end = ingress.index("{{- end }}\n          {{- end }}")
    root = ingress.index("- path: /\n")
    assert services_end < root
    assert "name: {{ .Release.Name }}-webui" in ingress[root:]
    assert "port: {number: {{ .Values.webui.port }}}" in ingress[root:]
