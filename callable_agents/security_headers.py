"""Security headers on every response the server sends, whoever built it.

Every response gets ``X-Content-Type-Options: nosniff`` and a ``Referrer-Policy``. Every
response is also refused to frames (``frame-ancestors 'none'`` and ``X-Frame-Options:
DENY``) unless it says itself who may frame it: a route that sets a Content-Security-Policy
with ``frame-ancestors`` (the public chat page, for the sites its channel allows) keeps its
own. Headers a route set are never overwritten.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULTS = (
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
)
NO_FRAMES = "frame-ancestors 'none'"


class SecurityHeaders:
    """ASGI middleware adding :data:`DEFAULTS` and the frame refusal to HTTP responses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_security_headers(MutableHeaders(scope=message))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def add_security_headers(headers: MutableHeaders) -> None:
    for name, value in DEFAULTS:
        if name not in headers:
            headers[name] = value
    policy = headers.get("content-security-policy")
    if policy is None:
        headers["content-security-policy"] = NO_FRAMES
    elif "frame-ancestors" not in policy:
        headers["content-security-policy"] = f"{policy.rstrip('; ')}; {NO_FRAMES}"
    framed_by_policy = "frame-ancestors 'none'" not in headers["content-security-policy"]
    if "x-frame-options" not in headers and not framed_by_policy:
        headers["x-frame-options"] = "DENY"
