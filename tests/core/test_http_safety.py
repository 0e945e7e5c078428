"""The SSRF guard's address check: every non-global form refused, public ones allowed."""

from __future__ import annotations

import ipaddress

import pytest

from callable_agents.core.http_safety import UnsafeAddress, check_http_url, is_public_address, resolve_checked

NOT_PUBLIC = [
    ("::169.254.169.254", "IPv4-compatible form of the cloud metadata address"),
    ("::10.0.0.1", "IPv4-compatible form of a private address"),
    ("::8.8.8.8", "IPv4-compatible form: deprecated, outside global unicast space"),
    ("fec0::1", "site-local"),
    ("feff::1", "site-local, top of the range"),
    ("64:ff9b:1::a9fe:a9fe", "NAT64 local-use prefix"),
    ("64:ff9b:1::808:808", "NAT64 local-use prefix, even around a public IPv4 address"),
    ("::ffff:0:a9fe:a9fe", "IPv4-translated form of the metadata address"),
    ("::ffff:0:7f00:1", "IPv4-translated form of loopback"),
    ("64:ff9b::a9fe:a9fe", "NAT64 well-known prefix around the metadata address"),
    ("2001:db8::1", "documentation range"),
    ("100::1", "discard-only range"),
    ("4000::1", "unassigned, outside global unicast space"),
    ("ff0e::1", "global-scope multicast"),
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "Teredo whose client address is 10.0.0.1"),
]
PUBLIC = ["2606:4700:4700::1111", "2a00:1450:4001::200e", "::ffff:8.8.8.8", "::ffff:0:808:808", "64:ff9b::808:808", "2002:808:808::1"]


@pytest.mark.parametrize(("address", "why"), NOT_PUBLIC, ids=[a for a, _ in NOT_PUBLIC])
def test_non_global_forms_are_refused(address: str, why: str) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is False, why


@pytest.mark.parametrize("address", PUBLIC)
def test_global_addresses_are_allowed(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is True


@pytest.mark.parametrize("host", ["[::169.254.169.254]", "[fec0::1]", "[64:ff9b:1::a9fe:a9fe]", "[::ffff:0:a9fe:a9fe]"])
async def test_bracketed_literals_in_urls_are_refused_before_connecting(host: str) -> None:
    with pytest.raises(UnsafeAddress, match="private, loopback, link-local or reserved"):
        await resolve_checked(host, 80, allow_private=False)


@pytest.mark.parametrize("url", ["http://0177.0.0.1:18085/page", "http://999.1.1.1/", "http://[::1/"])
def test_check_http_url_refuses_what_the_client_cannot_parse(url: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        check_http_url(url)
