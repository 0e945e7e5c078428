"""Sign in, sign out, and one-time links: create a workspace's owner, accept an invitation.

Forms shown before anyone is signed in carry a CSRF token too: a random value in a
short-lived cookie and in the form (double submit), so another site cannot sign a visitor
in to an account of its choosing. Sign-in attempts are limited (:mod:`.limits`); a wrong
e-mail and a wrong password get the same answer in the same time.

:func:`owner_setup_links` gives ``callable serve`` and ``callable demo`` a one-time link for
every workspace that has no owner yet, which they print at start.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from callable_agents.core.errors import CallableError, TooManyRequests
from callable_agents.core.runtime import Runtime, runtime_of
from callable_agents.core.store.users import (
    create_link,
    link_path,
    end_session,
    find_sign_in,
    has_owner,
    hash_password,
    read_link,
    redeem_link,
    start_session,
)
from callable_agents.core.store.workspaces import list_workspaces
from callable_agents.dashboard.forms import GENERAL, Form
from callable_agents.dashboard.guard import SESSION_COOKIE, page, session_token, set_session_cookie, signed_in
from callable_agents.dashboard.limits import SignInLimiter
from callable_agents.dashboard.rendering import render
from callable_agents.core.store.users import SignedIn

FORM_COOKIE = "callable_form"
HOME = "/dashboard"


def _safe_next(value: str) -> str:
    """Only a path on this site: never an absolute URL (an open redirect)."""
    parts = urlsplit(value)
    if not value.startswith("/") or value.startswith("//") or parts.scheme or parts.netloc or "\\" in value:
        return HOME
    return value


def _form_token(request: Request) -> str:
    return request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(24)


def _with_form_cookie(response: Response, token: str) -> Response:
    response.set_cookie(FORM_COOKIE, token, max_age=3600, path="/dashboard", httponly=True, samesite="strict")
    return response


def _form_token_ok(request: Request, form: Form, sent: str) -> bool:
    cookie = request.cookies.get(FORM_COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), sent.encode())


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def sign_in(request: Request) -> Response:
    """GET: the sign-in form. POST: check the e-mail and password, start a session."""
    next_path = _safe_next(request.query_params.get("next", HOME))
    if request.method == "GET":
        if await signed_in(request) is not None:
            return RedirectResponse(next_path, status_code=303)
        token = _form_token(request)
        response = render(request, "sign_in.html", {"form": Form(), "form_token": token, "next": next_path})
        return _with_form_cookie(response, token)
    submitted = await request.form()
    form = Form.of(submitted)
    sent_token = submitted.get("csrf_token")
    token = _form_token(request)
    next_path = _safe_next(form.get("next", HOME))
    context: dict[str, object] = {"form": form.without(["password"]), "form_token": token, "next": next_path}
    if not isinstance(sent_token, str) or not _form_token_ok(request, form, sent_token):
        form.error(GENERAL, "This form has expired: sign in again.")
        context["form"] = form.without(["password"])
        return _with_form_cookie(render(request, "sign_in.html", context, status_code=403), token)
    email = form.text("email", required=True, label="email")
    password = form.get("password")
    if not password:
        form.error("password", "password: this field is required")
    if not form.ok:
        context["form"] = form.without(["password"])
        return _with_form_cookie(render(request, "sign_in.html", context, status_code=422), token)
    runtime = runtime_of(request)
    limiter = SignInLimiter.of(runtime)
    address = _client_address(request)
    try:
        await limiter.check(address, email)
    except TooManyRequests as exc:
        form.error(GENERAL, str(exc))
        context["form"] = form.without(["password"])
        response = render(request, "sign_in.html", context, status_code=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return _with_form_cookie(response, token)
    async with runtime.db.session() as session:
        user = await find_sign_in(session, email, password)
        session_token = await start_session(session, user) if user is not None else None
    if session_token is None:
        await limiter.failed(address, email)
        form.error(GENERAL, "The e-mail or the password is wrong.")
        context["form"] = form.without(["password"])
        return _with_form_cookie(render(request, "sign_in.html", context, status_code=401), token)
    await limiter.succeeded(email)
    redirect = RedirectResponse(next_path, status_code=303)
    set_session_cookie(request, redirect, session_token)
    redirect.delete_cookie(FORM_COOKIE, path="/dashboard")
    return redirect


@page
async def sign_out(request: Request, viewer: SignedIn) -> Response:
    async with runtime_of(request).db.session() as session:
        await end_session(session, session_token(request))
    response = RedirectResponse("/dashboard/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def welcome(request: Request) -> Response:
    """A one-time link's page: set a name and password, becoming the owner or a member."""
    token = request.path_params["token"]
    runtime = runtime_of(request)
    form_token = _form_token(request)
    try:
        async with runtime.db.sessions() as session:
            link = await read_link(session, token)
    except CallableError as exc:
        return render(request, "link_gone.html", {"message": str(exc)}, status_code=exc.status_code)
    if request.method == "GET":
        form = Form(values={"email": link.email})
        response = render(request, "welcome.html", {"link": link, "form": form, "form_token": form_token})
        return _with_form_cookie(response, form_token)
    submitted = await request.form()
    form = Form.of(submitted)
    sent = submitted.get("csrf_token")
    if not isinstance(sent, str) or not _form_token_ok(request, form, sent):
        form.error(GENERAL, "This form has expired: submit it again.")
    email = link.email if link.purpose == "invite" else form.text("email", required=True, label="email")
    name = form.text("name", label="name", max_length=200)
    password = form.get("password")
    if password != form.get("password_again"):
        form.error("password_again", "password_again: the two passwords differ")
    password_hash = ""
    if form.ok:
        try:
            password_hash = await asyncio.to_thread(hash_password, password)
        except CallableError as exc:
            form.fail(exc)
    if form.ok:
        try:
            async with runtime.db.session() as session:
                user = await redeem_link(session, token, email=email, name=name, password_hash=password_hash)
                session_token = await start_session(session, user)
        except CallableError as exc:
            form.fail(exc)
        else:
            redirect = RedirectResponse(HOME, status_code=303)
            set_session_cookie(request, redirect, session_token)
            redirect.delete_cookie(FORM_COOKIE, path="/dashboard")
            return redirect
    context = {"link": link, "form": form.without(["password", "password_again"]), "form_token": form_token}
    return _with_form_cookie(render(request, "welcome.html", context, status_code=422), form_token)


async def owner_setup_links(runtime: Runtime) -> list[tuple[str, str]]:
    """``(workspace name, path)`` of a new one-time link for each workspace without an owner."""
    links: list[tuple[str, str]] = []
    async with runtime.db.session() as session:
        for workspace in await list_workspaces(session):
            if not await has_owner(session, workspace.id):
                token = await create_link(session, workspace.id, purpose="owner")
                links.append((workspace.name, link_path(token)))
    return links


def routes() -> list[BaseRoute]:
    return [
        Route("/sign-in", sign_in, methods=["GET", "POST"]),
        Route("/sign-out", sign_out, methods=["POST"]),
        Route("/welcome/{token}", welcome, methods=["GET", "POST"]),
    ]
