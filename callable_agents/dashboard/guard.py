"""Who is signed in, and the checks every dashboard page passes through.

:func:`page` wraps a page handler: it reads the session cookie (a random token, signed with
HMAC-SHA256 under a key derived from the master key, so a forged or altered cookie is refused
before the database is asked; the session row is stored under the token's SHA-256, so sessions
can be listed, expire and end at sign-out), sends a visitor with none to the sign-in page, checks the
CSRF token on every unsafe method (the form field ``csrf_token`` or HTMX's
``X-CSRF-Token`` header, compared in constant time with the session's), refuses members on
owner-only pages, and hands the handler the :class:`SignedIn` viewer. Every query a page
makes is scoped by ``viewer.workspace_id``: ids in a URL or a form that belong to another
workspace are simply not found.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import overload
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from callable_agents.core.errors import Forbidden
from callable_agents.core.runtime import runtime_of
from callable_agents.core.store.users import SESSION_TTL, SignedIn, read_session

SESSION_COOKIE = "callable_session"
SESSION_KEY_PURPOSE = "dashboard-session-cookies"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SIGN_IN_PATH = "/dashboard/sign-in"

PageHandler = Callable[[Request, SignedIn], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


class CsrfRefused(Forbidden):
    """A form or HTMX request without this session's CSRF token."""


def _signature(request: Request, token: str) -> str:
    key = runtime_of(request).vault.derive_subkey(SESSION_KEY_PURPOSE)
    digest = hmac.new(key, token.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def session_token(request: Request) -> str:
    """The session token the request's cookie carries, or "" when there is none or its
    signature does not match (forged, altered, or signed under another master key)."""
    token, dot, signature = request.cookies.get(SESSION_COOKIE, "").rpartition(".")
    if not dot or not token or len(token) > 200:
        return ""
    if not hmac.compare_digest(signature.encode(), _signature(request, token).encode()):
        return ""
    return token


async def signed_in(request: Request) -> SignedIn | None:
    token = session_token(request)
    if not token:
        return None
    async with runtime_of(request).db.sessions() as session:
        return await read_session(session, token)


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    """The signed token; HttpOnly (scripts can't read it), SameSite=Lax (other sites' forms
    don't carry it), Secure when the dashboard is served over https."""
    response.set_cookie(
        SESSION_COOKIE,
        f"{token}.{_signature(request, token)}",
        max_age=int(SESSION_TTL.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https",
    )


async def check_csrf(request: Request, viewer: SignedIn) -> None:
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()  # Starlette keeps it for the handler
            value = form.get("csrf_token")
            sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent.encode(), viewer.csrf_token.encode()):
        raise CsrfRefused("csrf_token: this form has expired or came from another site; reload the page and try again")


def sign_in_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = f"{SIGN_IN_PATH}?next={quote(target, safe='')}"
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": location})
    return RedirectResponse(location, status_code=303)


@overload
def page(handler: PageHandler, *, owner_only: bool = False) -> Endpoint: ...
@overload
def page(handler: None = None, *, owner_only: bool = False) -> Callable[[PageHandler], Endpoint]: ...
def page(handler: PageHandler | None = None, *, owner_only: bool = False) -> Endpoint | Callable[[PageHandler], Endpoint]:
    """Make ``handler(request, viewer)`` a dashboard endpoint (see the module's docstring)."""

    def wrap(handler: PageHandler) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            viewer = await signed_in(request)
            if viewer is None:
                return sign_in_redirect(request)
            request.state.viewer = viewer
            if request.method in UNSAFE_METHODS:
                await check_csrf(request, viewer)
            if owner_only and not viewer.is_owner:
                raise Forbidden("only the workspace's owners can do this; ask an owner")
            return await handler(request, viewer)

        endpoint.__name__ = handler.__name__
        endpoint.__doc__ = handler.__doc__
        return endpoint

    return wrap(handler) if handler is not None else wrap
