"""Configuration of the web chat channels (widget and public page), and origin rules.

Both channels share the limits (message size, rate limits). The widget adds the origins
allowed to embed it and its appearance; the page adds its title, greeting and colour.

**Allowed origins** are written as browsers send them in the ``Origin`` header:
``scheme://host`` or ``scheme://host:port`` (no path), e.g. ``https://shop.example.com``.
Default ports are dropped (``https://a.com:443`` is ``https://a.com``). A port may be
``*`` to allow any port of that host, meant for development: ``http://localhost:*``,
``http://127.0.0.1:*``. An empty list allows no origin, so a new widget answers nobody
until its owner says where it is embedded.

**Embed origins** (the page's ``embed_origins``) are the sites allowed to show the public
page in an iframe; they go into the page's ``Content-Security-Policy: frame-ancestors``,
which browsers enforce. Written like allowed origins, but ``https`` only (plain ``http`` is
accepted for ``localhost`` and ``127.0.0.1``, for development) and no IPv6 addresses (a
policy cannot name one). Empty, the default: no site may frame the page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

DEFAULT_COLOR = "#2563eb"
COLOR_PATTERN = r"^#[0-9a-fA-F]{6}$"
DEFAULT_PORTS = {"http": 80, "https": 443}
# A DNS name or IPv4 address, or an IPv6 address (urlsplit gives it without brackets).
_HOST = re.compile(r"^(?:[0-9a-f.]*:[0-9a-f:.]+|[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*)$")


@dataclass(frozen=True)
class OriginRule:
    """One allowed origin: exact, or any port of a host when ``port`` is None."""

    scheme: str
    host: str
    port: int | None  # None: any port ("*")

    def matches(self, origin: str) -> bool:
        parsed = parse_origin(origin)
        if parsed is None:
            return False
        scheme, host, port = parsed
        return scheme == self.scheme and host == self.host and (self.port is None or self.port == port)


def parse_origin(origin: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an ``Origin`` header value, or None if it is not one.

    The opaque origin ``null`` (sandboxed frames, ``file:`` pages) is never an origin.
    """
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in DEFAULT_PORTS or not host or parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    if parts.username is not None or parts.password is not None or not _HOST.match(host):
        return None
    return scheme, host, port if port is not None else DEFAULT_PORTS[scheme]


def origin_of(scheme: str, host: str, port: int) -> str:
    """The canonical text of an origin (default port left out, as browsers send it)."""
    shown_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{scheme}://{shown_host}" if DEFAULT_PORTS.get(scheme) == port else f"{scheme}://{shown_host}:{port}"


def _check_origin(value: str) -> str:
    text = value.strip()
    wildcard = text.endswith(":*")
    parsed = parse_origin(text[:-2] if wildcard else text)
    if parsed is None or (wildcard and urlsplit(text[:-2]).port is not None):
        raise ValueError(
            "expected an origin like https://shop.example.com or http://localhost:8080 "
            "(scheme and host, optional port, no path), or http://localhost:* for any port"
        )
    scheme, host, port = parsed
    if wildcard:
        return f"{origin_of(scheme, host, DEFAULT_PORTS[scheme])}:*"
    return origin_of(scheme, host, port)


def origin_rule(text: str) -> OriginRule:
    """The rule for a validated allowed-origin entry (see :func:`_check_origin`)."""
    if text.endswith(":*"):
        scheme, host, _ = parse_origin(text[:-2])  # type: ignore[misc]
        return OriginRule(scheme, host, None)
    scheme, host, port = parse_origin(text)  # type: ignore[misc]
    return OriginRule(scheme, host, port)


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1"})


def _check_embed_origin(value: str) -> str:
    origin = _check_origin(value)
    scheme, _, rest = origin.partition("://")
    host = rest.rsplit(":", 1)[0] if rest.count(":") == 1 else rest
    if host.startswith("["):
        raise ValueError("expected a host name or IPv4 address (a Content-Security-Policy cannot name an IPv6 address)")
    if scheme != "https" and host not in LOOPBACK_HOSTS:
        raise ValueError(f"expected an https origin, e.g. https://{host} (plain http only for localhost and 127.0.0.1)")
    return origin


def _check_text(value: str) -> str:
    if any(ord(char) < 32 and char not in "\n\t" for char in value):
        raise ValueError("expected text without control characters")
    return value.strip()


AllowedOrigin = Annotated[str, AfterValidator(_check_origin)]
EmbedOrigin = Annotated[str, AfterValidator(_check_embed_origin)]
Color = Annotated[str, Field(pattern=COLOR_PATTERN, description="A colour as #RRGGBB.")]
Title = Annotated[str, Field(max_length=80), AfterValidator(_check_text)]
Greeting = Annotated[str, Field(max_length=500), AfterValidator(_check_text)]


class WebChatLimits(BaseModel):
    """Limits shared by the widget and the public page.

    Rate limits count in a sliding minute, per server process.
    """

    model_config = ConfigDict(extra="forbid")

    max_message_chars: int = Field(default=2000, ge=1, le=20_000, description="Longest visitor message accepted.")
    messages_per_minute_per_visitor: int = Field(default=20, ge=1, le=10_000)
    messages_per_minute_per_ip: int = Field(default=60, ge=1, le=100_000)
    sessions_per_minute_per_ip: int = Field(default=30, ge=1, le=100_000)


class WidgetAppearance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    color: Color = DEFAULT_COLOR
    title: Title = "Chat with us"
    greeting: Greeting = Field(default="", description="Shown when the chat opens; default: the agent's greeting.")
    position: Literal["bottom-right", "bottom-left"] = "bottom-right"


class WidgetConfig(WebChatLimits):
    """A website widget: where it may be embedded and how it looks."""

    allowed_origins: list[AllowedOrigin] = Field(
        default_factory=list,
        max_length=100,
        description="Origins whose pages may use the widget, e.g. https://shop.example.com; http://localhost:* "
        "allows any port. Empty: none.",
    )
    appearance: WidgetAppearance = Field(default_factory=WidgetAppearance)

    def origin_rules(self) -> list[OriginRule]:
        return [origin_rule(entry) for entry in self.allowed_origins]


class PageConfig(WebChatLimits):
    """A public chat page at ``/chat/{slug}`` (the slug is the channel's ``slug``)."""

    title: Title = Field(default="", description="Shown at the top; default: the business's name.")
    greeting: Greeting = Field(default="", description="Shown when the chat opens; default: the agent's greeting.")
    color: Color = DEFAULT_COLOR
    embed_origins: list[EmbedOrigin] = Field(
        default_factory=list,
        max_length=50,
        description="Sites allowed to show the page in an iframe, as https origins, e.g. https://shop.example.com "
        "(http only for localhost and 127.0.0.1). Empty: none.",
    )
