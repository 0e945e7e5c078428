"""Outbound HTTP configured by businesses (tools, web sources, webhooks): the shared client,
and the guard that keeps requests off private networks.

A tool's URL is set by a business and partly filled by a model, so a request could be aimed
at the server's own network (cloud metadata at 169.254.169.254, a database on localhost,
an office LAN). Unless ``allow_private_urls`` is set, the host is resolved and *every*
address it resolves to must be public; the request then goes to one of those checked
addresses, with the original name kept in the ``Host`` header and as the TLS server name
(so certificates are still verified against it). Connecting to the checked address, rather
than resolving again, is what stops a DNS answer that changes between the check and the
connection (rebinding) from slipping a private address through.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import ipaddress
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

if TYPE_CHECKING:
    from callable_agents.core.runtime import Runtime

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# NAT64's well-known prefix: an address in it reaches the IPv4 address in its last 32 bits.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# NAT64's local-use prefix (RFC 8215): routed only inside an operator's own network.
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")
# IPv4-translated addresses (RFC 2765 / SIIT): ::ffff:0:a.b.c.d reaches a.b.c.d.
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
# Global unicast space (RFC 4291): no IPv6 address outside it is reachable on the internet.
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


class UnsafeAddress(Exception):
    """The URL's host is, or resolves to, an address tools may not reach. Safe to show."""


class HostNotFound(Exception):
    """The URL's host does not resolve."""


def check_http_url(url: str) -> str:
    """Accept an absolute http(s) URL with a host and no inline credentials; raise ``ValueError``.

    For config validators: the message says what was expected and never repeats the URL,
    which might carry a token someone pasted by mistake.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise ValueError("expected an http:// or https:// URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"expected an http:// or https:// URL, got scheme {parts.scheme[:20]!r}")
    if not parts.hostname:
        raise ValueError("expected an http:// or https:// URL with a host name")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials in the URL are not allowed: reference a secret instead")
    if any(char.isspace() for char in url):
        raise ValueError("expected a URL without spaces or line breaks")
    try:
        httpx.URL(url)  # what will make the request must be able to parse it too
    except httpx.InvalidURL as exc:
        raise ValueError(f"expected a URL with a valid host ({str(exc)[:120]})") from None
    return url


def is_public_address(address: IPAddress) -> bool:
    """Whether ``address`` is a globally routable unicast address (not private, loopback, …).

    IPv6 is judged by allowlist: only global unicast space (``2000::/3``) can be public, so
    site-local (``fec0::/10``), IPv4-compatible (``::a.b.c.d``), NAT64 local-use
    (``64:ff9b:1::/48``) and any range Python's ``is_global`` still calls global are refused.
    IPv6 forms that embed an IPv4 address on purpose (mapped, translated, 6to4, Teredo, the
    well-known NAT64 prefix) are judged by the IPv4 address they lead to.
    """
    if isinstance(address, ipaddress.IPv4Address):
        return address.is_global and not address.is_multicast
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return is_public_address(embedded)
    if address not in _GLOBAL_UNICAST or address in _NAT64_LOCAL_USE:
        return False
    return address.is_global and not address.is_multicast


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to by design, if it is one of those forms."""
    embedded = address.ipv4_mapped or address.sixtofour
    if embedded is None and address.teredo is not None:
        embedded = address.teredo[1]
    if embedded is None and (address in _NAT64 or address in _IPV4_TRANSLATED):
        embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return embedded


async def resolve_checked(host: str, port: int, *, allow_private: bool) -> list[IPAddress]:
    """Resolve ``host`` and return its addresses, refusing if any of them is not public.

    Every address is checked, not only the first: a name with one public and one private
    address could otherwise reach the private one on a retry or a later connection.
    """
    try:
        literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise HostNotFound(f"the host {host[:100]!r} could not be resolved") from exc
        addresses = []
        for _family, _type, _proto, _name, sockaddr in infos:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise HostNotFound(f"the host {host[:100]!r} has no addresses")
    if not allow_private:
        for address in addresses:
            if not is_public_address(address):
                raise UnsafeAddress(
                    f"the host {host[:100]!r} resolves to {address}, a private, loopback, link-local or "
                    "reserved address; tools may only call public addresses (an operator can allow "
                    "private ones with CALLABLE_ALLOW_PRIVATE_URLS=true)"
                )
    return addresses


@dataclass(frozen=True)
class PinnedTarget:
    """A request aimed at one checked address, with what keeps the original host name in use."""

    url: httpx.URL
    headers: dict[str, str]
    extensions: dict[str, Any]


def pin_to_address(url: httpx.URL, address: IPAddress) -> PinnedTarget:
    """Aim ``url`` at ``address``: same scheme, port, path and query; ``Host`` and TLS name kept.

    ``Connection: close`` keeps the pinned connection out of the client's pool, so a later
    request for another name on the same address never reuses a TLS session verified for
    this one.
    """
    headers = {"Host": url.netloc.decode("ascii"), "Connection": "close"}
    extensions: dict[str, Any] = {}
    if url.scheme == "https":
        extensions["sni_hostname"] = url.raw_host.decode("ascii")
    return PinnedTarget(url.copy_with(host=str(address)), headers, extensions)


async def guarded_targets(url: httpx.URL, *, allow_private: bool) -> list[PinnedTarget]:
    """Check ``url``'s scheme and host; return it pinned to each checked address, in resolver order.

    The caller tries them in turn, so a host whose first address is unreachable (IPv6 listed
    first on a machine without an IPv6 route) still answers.
    """
    if url.scheme not in ("http", "https"):
        raise UnsafeAddress(f"only http and https URLs may be called, not {url.scheme[:20]!r}")
    if not url.host:
        raise UnsafeAddress("the URL has no host")
    port = url.port or (443 if url.scheme == "https" else 80)
    addresses = await resolve_checked(url.host, port, allow_private=allow_private)
    return [pin_to_address(url, address) for address in addresses]


def shared_http_client(runtime: Runtime) -> httpx.AsyncClient:
    """The process's one :class:`httpx.AsyncClient`, created on first use.

    Kept in ``runtime.services.http`` so connections are pooled across turns and the runtime closes
    it (``aclose``) at shutdown. Callers pass their own timeout and redirect policy per
    request, so whichever part created the client does not decide them. It keeps no cookies:
    one workspace's API session must never ride along on another workspace's request.
    """
    client = runtime.services.http
    if client is None:
        client = httpx.AsyncClient(
            cookies=http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[])),
            follow_redirects=False,
            timeout=httpx.Timeout(30.0),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            headers={"User-Agent": "callable-agents"},
        )
        runtime.services.http = client
    return client
