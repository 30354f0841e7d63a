"""The Helm chart gives each key only to the service that uses it (helm is not installed here:
the templates are checked as text, block by block)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parents[2] / "helm" / "ryax"


def _blocks(template: str, opening: str) -> list[str]:
    """The bodies of the `{{- if <opening> }}` blocks (nested blocks included)."""
    bodies = []
    for start in [m.end() for m in re.finditer(re.escape("{{- if " + opening + " }}"), template)]:
        depth, pos = 1, start
        for tag in re.finditer(r"\{\{-? (if|with|range|end)\b", template[start:]):
            depth += -1 if tag.group(1) == "end" else 1
            if depth == 0:
                pos = start + tag.start()
                break
        bodies.append(template[start:pos])
    return bodies


def test_security_the_chart_gives_each_key_only_to_its_service() -> None:
    services = (CHART / "templates" / "services.yaml").read_text()
    (sealing,) = _blocks(services, 'has $name (list "repository" "studio" "runner")')
    authorization = _blocks(services, 'eq $name "authorization"')
    assert services.count("RYAX_SECRET_KEY\n") == sealing.count("RYAX_SECRET_KEY\n") == 1
    assert "key: {{ $name }}-secret-key}" in sealing  # each service its own secret
    assert services.count("RYAX_AUTH_SIGNING_KEY_FILE") == 1
    assert "RYAX_AUTH_SIGNING_KEY_FILE" in authorization[0]
    assert any("volumeMounts:" in block for block in authorization)
    (volumes,) = [block for block in authorization if "volumes:" in block]
    assert "key: auth-signing-key, path: signing-key.pem" in volumes
    assert "RYAX_ADMIN_PASSWORD" in authorization[0] and services.count("RYAX_ADMIN_PASSWORD") == 1

    secret = (CHART / "templates" / "secret.yaml").read_text()
    assert "\n  secret-key:" not in secret  # no shared key any more
    assert "auth-signing-key:" in secret
    assert 'list "repository" "studio" "runner"' in secret
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["auth"] == {"previousSigningKeys": False}
    assert "secretKey" not in values["secrets"]["values"]


def test_security_the_chart_gives_the_internal_token_to_the_studio_and_runner_only() -> None:
    services = (CHART / "templates" / "services.yaml").read_text()
    (pair,) = _blocks(services, 'has $name (list "studio" "runner")')
    assert services.count("RYAX_INTERNAL_TOKEN") == pair.count("RYAX_INTERNAL_TOKEN") == 1
    assert "key: internal-token}" in pair
    secret = (CHART / "templates" / "secret.yaml").read_text()
    assert "internal-token: {{ required" in secret
    ingress = (CHART / "templates" / "ingress.yaml").read_text()
    assert "/studio/internal" in ingress  # documented: the studio refuses proxied requests


def test_the_ingress_routes_the_user_api_to_the_runner() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["services"]["runner"]["extraPrefixes"] == ["/user-api"]
    assert all(
        "extraPrefixes" not in svc for name, svc in values["services"].items() if name != "runner"
    )
    ingress = (CHART / "templates" / "ingress.yaml").read_text()
    assert "range $prefix := prepend ($svc.extraPrefixes | default list) $svc.prefix" in ingress
    assert "- path: {{ $prefix }}" in ingress


def test_security_the_chart_gives_the_site_credential_to_the_runner_and_its_worker_only() -> None:
    services = (CHART / "templates" / "services.yaml").read_text()
    (pair,) = _blocks(services, 'has $name (list "runner" "worker")')
    assert services.count("key: site-credential}") == pair.count("key: site-credential}") == 1
    assert "RYAX_RUNNER_BUILTIN_SITE_CREDENTIAL" in pair and "RYAX_SITE_CREDENTIAL\n" in pair
    assert '"{{ $.Values.services.worker.site }}:local"' in pair
    secret = (CHART / "templates" / "secret.yaml").read_text()
    assert "site-credential: {{ required" in secret


def test_remote_sites_get_a_tls_port_only_when_given_its_certificate() -> None:
    """remoteSites.tlsSecret: the runner alone mounts it and serves RYAX_RUNNER_GRPC_TLS_ADDRESS
    with it, beside the chart worker's plaintext port; a Service of its own exposes it."""
    services = (CHART / "templates" / "services.yaml").read_text()
    blocks = _blocks(services, 'and (eq $name "runner") $.Values.remoteSites.tlsSecret')
    assert len(blocks) == 5  # container port, env, mount, volume, Service
    assert services.count("RYAX_RUNNER_GRPC_TLS_ADDRESS") == 1
    env = next(b for b in blocks if "RYAX_RUNNER_GRPC_TLS_ADDRESS" in b)
    assert "RYAX_RUNNER_GRPC_TLS_CERT_FILE, value: /etc/ryax/grpc-tls/tls.crt" in env
    assert "RYAX_RUNNER_GRPC_TLS_KEY_FILE, value: /etc/ryax/grpc-tls/tls.key" in env
    assert any("mountPath: /etc/ryax/grpc-tls" in b for b in blocks)
    assert any("secretName: {{ $.Values.remoteSites.tlsSecret | quote }}" in b for b in blocks)
    assert any("kind: Service" in b and "targetPort: grpc-tls" in b for b in blocks)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["remoteSites"] == {
        "tlsSecret": "",
        "port": 8119,
        "service": {"type": "ClusterIP"},
    }
