"""Security headers on every response the server sends, whoever built it.

Every response gets ``X-Content-Type-Options: nosniff`` and a ``Referrer-Policy``. Every
response is also refused to frames (``frame-ancestors 'none'`` and ``X-Frame-Options:
DENY``) unless it says itself who may frame it: a route that sets a Content-Security-Policy
with ``frame-ancestors`` (the public chat page, for the sites its channel allows) keeps its
own. Headers a route set are never overwritten.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULTS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
)
NO_FRAMES = b"frame-ancestors 'none'"
# A response that sets none of these gets them all: built once, appended as they are.
_ALL = (*DEFAULTS, (b"content-security-policy", NO_FRAMES), (b"x-frame-options", b"DENY"))
_NAMES = frozenset(name for name, _ in _ALL)


class SecurityHeaders:
    """ASGI middleware adding :data:`DEFAULTS` and the frame refusal to HTTP responses.

    It works on the raw header list (ASGI's lower-case byte names), since it runs on every
    response, webhooks included, and a parsed header object costs more than the check.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = add_security_headers(list(message.get("headers", ())))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def add_security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` (raw ASGI pairs) with the defaults and frame refusal a route did not set."""
    present = {name.lower() for name, _ in headers} & _NAMES
    if not present:
        headers.extend(_ALL)
        return headers
    headers.extend(pair for pair in DEFAULTS if pair[0] not in present)
    if b"content-security-policy" not in present:
        headers.append((b"content-security-policy", NO_FRAMES))
        policy = NO_FRAMES
    else:
        index = next(i for i, (name, _) in enumerate(headers) if name.lower() == b"content-security-policy")
        policy = headers[index][1]
        if b"frame-ancestors" not in policy:
            policy = policy.rstrip(b"; ") + b"; " + NO_FRAMES
            headers[index] = (headers[index][0], policy)
    if b"x-frame-options" not in present and NO_FRAMES in policy:
        headers.append((b"x-frame-options", b"DENY"))
    return headers
