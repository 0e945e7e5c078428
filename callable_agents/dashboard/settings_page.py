"""``/dashboard/settings``: the workspace's members and invitations, and its API keys.

Everyone signed in sees who is in the workspace; owners invite (a one-time link, shown
once, to send yourself), change roles, remove members, and create (shown once) and revoke
API keys. The service functions are the ones the admin API and the CLI use.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from callable_agents.core.errors import CallableError
from callable_agents.core.runtime import runtime_of
from callable_agents.core.store.users import (
    ROLES,
    SignedIn,
    change_role,
    create_link,
    link_path,
    list_invitations,
    list_users,
    remove_user,
    revoke_invitation,
)
from callable_agents.core.store.workspaces import create_api_key, list_api_keys, revoke_api_key
from callable_agents.dashboard.forms import GENERAL, Form
from callable_agents.dashboard.guard import page
from callable_agents.dashboard.rendering import render


async def _settings_context(request: Request, viewer: SignedIn) -> dict[str, object]:
    async with runtime_of(request).db.sessions() as session:
        members = await list_users(session, viewer.workspace_id)
        invitations = await list_invitations(session, viewer.workspace_id)
        keys = await list_api_keys(session, viewer.workspace_id)
    return {"section": "settings", "members": members, "invitations": invitations, "keys": keys, "roles": ROLES}


def _settings(request: Request, context: dict[str, object], status_code: int = 200) -> Response:
    return render(request, "settings.html", context, status_code=status_code)


@page
async def settings_index(request: Request, viewer: SignedIn) -> Response:
    context = await _settings_context(request, viewer)
    context.update(invite_form=Form(values={"role": "member"}), key_form=Form())
    return _settings(request, context)


@page(owner_only=True)
async def invite(request: Request, viewer: SignedIn) -> Response:
    form = await Form.read(request)
    email = form.text("email", required=True, label="email", max_length=320)
    role = form.get("role", "member")
    link = ""
    if form.ok:
        try:
            async with runtime_of(request).db.session() as session:
                token = await create_link(session, viewer.workspace_id, purpose="invite", email=email, role=role, created_by=viewer.user_id)
            link = runtime_of(request).settings.base_url + link_path(token)
        except CallableError as exc:
            form.fail(exc)
    context = await _settings_context(request, viewer)
    context.update(invite_form=form if not link else Form(values={"role": "member"}), key_form=Form(), invite_link=link, invited=email)
    return _settings(request, context, status_code=200 if form.ok else 422)


@page(owner_only=True)
async def revoke_invite(request: Request, viewer: SignedIn) -> Response:
    async with runtime_of(request).db.session() as session:
        await revoke_invitation(session, viewer.workspace_id, request.path_params["link_id"])
    return RedirectResponse("/dashboard/settings", status_code=303)


@page(owner_only=True)
async def set_role(request: Request, viewer: SignedIn) -> Response:
    form = await Form.read(request)
    async with runtime_of(request).db.session() as session:
        await change_role(session, viewer.workspace_id, request.path_params["user_id"], form.get("role"))
    return RedirectResponse("/dashboard/settings", status_code=303)


@page(owner_only=True)
async def remove_member(request: Request, viewer: SignedIn) -> Response:
    async with runtime_of(request).db.session() as session:
        await remove_user(session, viewer.workspace_id, request.path_params["user_id"])
    if request.path_params["user_id"] == viewer.user_id:
        return RedirectResponse("/dashboard/sign-in", status_code=303)
    return RedirectResponse("/dashboard/settings", status_code=303)


@page(owner_only=True)
async def create_key(request: Request, viewer: SignedIn) -> Response:
    form = await Form.read(request)
    name = form.text("name", required=True, label="name", max_length=200)
    new_key = ""
    if form.ok:
        async with runtime_of(request).db.session() as session:
            _, new_key = await create_api_key(session, viewer.workspace_id, name)
    context = await _settings_context(request, viewer)
    context.update(invite_form=Form(values={"role": "member"}), key_form=form if not new_key else Form(), new_key=new_key, new_key_name=name)
    # The key is shown once, in this response only: never cached.
    response = _settings(request, context, status_code=200 if form.ok else 422)
    response.headers["Cache-Control"] = "no-store"
    return response


@page(owner_only=True)
async def revoke_key(request: Request, viewer: SignedIn) -> Response:
    async with runtime_of(request).db.session() as session:
        await revoke_api_key(session, viewer.workspace_id, request.path_params["key_id"])
    return RedirectResponse("/dashboard/settings", status_code=303)


def routes() -> list[BaseRoute]:
    return [
        Route("/settings", settings_index, methods=["GET"]),
        Route("/settings/invitations", invite, methods=["POST"]),
        Route("/settings/invitations/{link_id}/revoke", revoke_invite, methods=["POST"]),
        Route("/settings/members/{user_id}/role", set_role, methods=["POST"]),
        Route("/settings/members/{user_id}/remove", remove_member, methods=["POST"]),
        Route("/settings/keys", create_key, methods=["POST"]),
        Route("/settings/keys/{key_id}/revoke", revoke_key, methods=["POST"]),
    ]
