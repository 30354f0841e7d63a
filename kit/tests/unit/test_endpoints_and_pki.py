"""`endpoint_host` / `is_loopback_endpoint` (what decides whether a plaintext gRPC port or
runner address is allowed) and the throwaway CA of TLS tests (`make_test_pki`)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ryax_kit.net import endpoint_host, is_loopback_endpoint
from ryax_kit.testing import make_test_pki


@pytest.mark.parametrize(
    ("address", "host"),
    [
        ("127.0.0.1:8105", "127.0.0.1"),
        ("localhost:8105", "localhost"),
        ("[::1]:8105", "::1"),
        ("dns:///runner.example:443", "runner.example"),
        ("ipv4:10.0.0.1:1", "10.0.0.1"),
        ("runner", "runner"),
        ("::1", "::1"),
    ],
)
def test_the_host_of_an_endpoint(address: str, host: str) -> None:
    assert endpoint_host(address) == host


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:8105", True),
        ("127.9.9.9:1", True),
        ("localhost:8105", True),
        ("api.localhost:1", True),
        ("[::1]:8105", True),
        ("0.0.0.0:8105", False),  # every interface
        ("[::]:8105", False),
        ("10.0.0.5:8105", False),
        ("runner.example:8105", False),
        ("localhost.example:8105", False),
    ],
)
def test_only_this_machine_is_loopback(address: str, loopback: bool) -> None:
    assert is_loopback_endpoint(address) is loopback


def test_the_test_pki_signs_a_server_certificate_for_its_hosts(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path / "pki", ("runner.test", "127.0.0.1"))
    ca = x509.load_pem_x509_certificate(pki.ca_file.read_bytes())
    cert = x509.load_pem_x509_certificate(pki.cert_file.read_bytes())
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["runner.test"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert pki.key_file.stat().st_mode & 0o777 == 0o600
