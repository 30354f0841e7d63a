"""Repository locations: accepted forms, refused forms, internal addresses."""

from __future__ import annotations

import pytest

from ryax_repository.domain.errors import InvalidInput
from ryax_repository.domain.git_url import (
    UrlKind,
    internal_address_reason,
    parse_git_url,
    refused_address,
)


@pytest.mark.parametrize(
    ("url", "kind", "host", "path"),
    [
        (
            "https://github.com/RyaxTech/ryax-engine.git",
            UrlKind.HTTPS,
            "github.com",
            "/RyaxTech/ryax-engine.git",
        ),
        (
            "https://GitLab.example.org:8443/group/repo",
            UrlKind.HTTPS,
            "gitlab.example.org",
            "/group/repo",
        ),
        ("ssh://git@github.com/org/repo.git", UrlKind.SSH, "github.com", "/org/repo.git"),
        ("ssh://git@host.example:2222/org/repo", UrlKind.SSH, "host.example", "/org/repo"),
        ("git@github.com:org/repo.git", UrlKind.SSH, "github.com", "org/repo.git"),
        ("github.com:org/repo.git", UrlKind.SSH, "github.com", "org/repo.git"),
        ("/srv/git/actions", UrlKind.LOCAL, None, "/srv/git/actions"),
        ("file:///srv/git/actions", UrlKind.LOCAL, None, "/srv/git/actions"),
        ("  https://example.com/a/b  ", UrlKind.HTTPS, "example.com", "/a/b"),
    ],
)
def test_accepted_forms(url: str, kind: UrlKind, host: str | None, path: str) -> None:
    parsed = parse_git_url(url)
    assert (parsed.kind, parsed.host, parsed.path) == (kind, host, path)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("", "is empty"),
        ("http://example.com/repo.git", "plain http is refused"),
        ("https://user:secret@example.com/repo.git", "must not contain a password"),
        ("https://user@example.com/repo.git", "must not contain a user name"),
        ("ssh://git:pw@example.com/repo.git", "must not contain a password"),
        ("git://example.com/repo.git", "scheme 'git' is not accepted"),
        ("ext::sh -c touch% /tmp/pwned", "must not contain spaces"),
        ("ext::sh", "scheme 'ext' is not accepted"),
        ("ftp://example.com/repo", "scheme 'ftp' is not accepted"),
        ("./relative/path", "relative path is refused"),
        ("relative/path", "relative path is refused"),
        ("--upload-pack=touch", "must not start with '-'"),
        ("https://example.com", "names no repository path"),
        ("https://exa_mple.com/x", "is not a valid host name"),
        ("file://otherhost/srv/x", "must name a local path"),
        ("/srv/../etc", "must not contain '..'"),
        ("https://example.com/a\nb", "control characters"),
    ],
)
def test_refused_forms_say_why(url: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_git_url(url)
    assert caught.value.field == "url"
    assert words in caught.value.detail


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("169.254.169.254", "link-local (cloud metadata)"),
        ("10.1.2.3", "private address (10.0.0.0/8)"),
        ("172.16.0.1", "private address (172.16.0.0/12)"),
        ("172.31.255.255", "private address (172.16.0.0/12)"),
        ("192.168.1.10", "private address (192.168.0.0/16)"),
        ("127.0.0.1", "loopback"),
        ("127.9.9.9", "loopback"),
        ("::1", "loopback"),
        ("fd00:ec2::254", "unique-local"),
        ("fc00::1", "unique-local"),
        ("fe80::1", "link-local"),
        ("::ffff:10.0.0.1", "private address"),
        ("::ffff:169.254.169.254", "link-local"),
        ("0.0.0.0", "'this network'"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
    ],
)
def test_internal_addresses_are_named(address: str, words: str) -> None:
    reason = internal_address_reason(address)
    assert reason is not None and words in reason


@pytest.mark.parametrize(
    "address", ["140.82.121.3", "8.8.8.8", "2606:4700:4700::1111", "172.32.0.1", "192.169.0.1"]
)
def test_public_addresses_pass(address: str) -> None:
    assert internal_address_reason(address) is None


def test_a_host_with_one_internal_address_is_refused_with_a_clear_message() -> None:
    message = refused_address("git.example.com", ["140.82.121.3", "10.0.0.7"])
    assert message is not None
    assert "host git.example.com resolves to 10.0.0.7" in message
    assert "RYAX_REPOSITORY_ALLOW_LOCAL=true" in message
    assert refused_address("git.example.com", ["140.82.121.3"]) is None
    literal = refused_address("169.254.169.254", ["169.254.169.254"])
    assert literal is not None and literal.startswith("169.254.169.254 is a link-local")
