"""Repository locations: accepted forms, refused forms, internal addresses."""

from __future__ import annotations

import pytest

from ryax_kit.net import OutboundAllow
from ryax_repository.domain.errors import InvalidInput
from ryax_repository.domain.git_url import UrlKind, parse_git_url
from ryax_repository.infrastructure.network import OutboundAddressGuard


class FakeResolver:
    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    async def resolve(self, host: str, port: int) -> list[str]:
        return self.table[host]


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
    ("host", "words"),
    [
        ("169.254.169.254", "cloud metadata"),
        ("10.1.2.3", "private address (10.0.0.0/8)"),
        ("172.16.0.1", "private address (172.16.0.0/12)"),
        ("192.168.1.10", "private address (192.168.0.0/16)"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("fd00:ec2::254", "cloud metadata"),
        ("fc00::1", "unique-local"),
        ("fe80::1", "link-local"),
        ("::ffff:10.0.0.1", "private address"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("224.0.0.1", "multicast"),
    ],
)
async def test_security_internal_addresses_are_refused_naming_the_rule(
    host: str, words: str
) -> None:
    """The rule is the kit's (ryax_kit.net); the repository says how to allow more."""
    with pytest.raises(InvalidInput) as caught:
        await OutboundAddressGuard().check(host, 443)
    assert caught.value.field == "url" and words in caught.value.detail
    assert "RYAX_OUTBOUND_ALLOW" in caught.value.detail


async def test_security_a_host_with_one_internal_address_is_refused_with_a_clear_message() -> None:
    guard = OutboundAddressGuard(
        resolver=FakeResolver(
            {"git.example.com": ["140.82.121.3", "10.0.0.7"], "ok.example.com": ["140.82.121.3"]}
        )
    )
    with pytest.raises(InvalidInput) as caught:
        await guard.check("git.example.com", 443)
    assert "host git.example.com resolves to 10.0.0.7" in caught.value.detail
    assert "RYAX_REPOSITORY_ALLOW_LOCAL=true" in caught.value.detail
    assert await guard.check("ok.example.com", 443) == "140.82.121.3"
    with pytest.raises(InvalidInput) as literal:
        await guard.check("169.254.169.254", 443)
    assert "url: 169.254.169.254 is a cloud metadata address" in str(literal.value)


async def test_the_allow_list_lets_an_internal_git_host_through() -> None:
    guard = OutboundAddressGuard(
        OutboundAllow.parse("git.corp"), FakeResolver({"git.corp": ["10.0.0.7"]})
    )
    assert await guard.check("git.corp", 22) == "10.0.0.7"
