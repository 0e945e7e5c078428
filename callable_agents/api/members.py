"""Members (people who sign in to the dashboard) in the admin API: list, invite, change role, remove.

Built on :mod:`callable_agents.core.store.users`, as the dashboard's Settings page is. An
invitation answers with a one-time link (shown once; only its hash is stored) that lets the
invited address set a password and join with the role given. The workspace's last owner
can neither be removed nor made a member. Password hashes and session tokens never appear.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from callable_agents.api.requests import authenticated, json_body, path_id, text_field
from callable_agents.core.models import User, UserLink, Workspace
from callable_agents.core.runtime import runtime_of
from callable_agents.core.store.users import (
    change_role,
    check_email,
    check_role,
    create_link,
    link_path,
    list_invitations,
    list_users,
    remove_user,
    revoke_invitation,
)



def member_view(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "created_at": user.created_at.isoformat() if user.created_at else None,
        "last_signed_in_at": user.last_signed_in_at.isoformat() if user.last_signed_in_at else None,
    }


def invitation_view(link: UserLink) -> dict[str, Any]:
    return {
        "id": link.id,
        "email": link.email,
        "role": link.role,
        "created_at": link.created_at.isoformat() if link.created_at else None,
        "expires_at": link.expires_at.isoformat() if link.expires_at else None,
    }


async def list_members_endpoint(request: Request, workspace: Workspace) -> Response:
    """The workspace's members and open invitations.
    ---
    summary: The workspace's members (owners and members) and its open invitations.
    responses:
      200: {description: "{members, invitations}"}
    """
    async with runtime_of(request).db.sessions() as session:
        members = [member_view(user) for user in await list_users(session, workspace.id)]
        invitations = [invitation_view(link) for link in await list_invitations(session, workspace.id)]
    return JSONResponse({"members": members, "invitations": invitations})


async def invite_member_endpoint(request: Request, workspace: Workspace) -> Response:
    """Invite a person by e-mail; the answer carries the one-time invitation link.
    ---
    summary: Invite a person; the response holds a one-time link (shown once) for them to set a password and join.
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            required: [email]
            properties:
              email: {type: string}
              role: {type: string, enum: [owner, member], default: member}
    responses:
      201: {description: "the invitation with its one-time link"}
      409: {description: "that address is already a member"}
      422: {description: "email or role is malformed"}
    """
    runtime = runtime_of(request)
    body = await json_body(request, allowed=("email", "role"))
    email = text_field(body, "email", max_length=400)
    role = check_role(text_field(body, "role", default="member", max_length=20))
    async with runtime.db.session() as session:
        token = await create_link(session, workspace.id, purpose="invite", email=email, role=role)
        # The newest open invitation to this address is the one just made.
        invited = check_email(email)
        link = [item for item in await list_invitations(session, workspace.id) if item.email == invited][-1]
        view = invitation_view(link)
    return JSONResponse({**view, "link": runtime.settings.base_url + link_path(token)}, status_code=201)


async def change_role_endpoint(request: Request, workspace: Workspace) -> Response:
    """Make a member an owner, or an owner a member.
    ---
    summary: Change a member's role (the last owner stays an owner).
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            required: [role]
            properties:
              role: {type: string, enum: [owner, member]}
    responses:
      200: {description: "the member"}
      404: {description: "not in this workspace"}
      409: {description: "the workspace's last owner cannot become a member"}
      422: {description: "role is malformed"}
    """
    body = await json_body(request, allowed=("role",))
    role = text_field(body, "role", max_length=20)
    async with runtime_of(request).db.session() as session:
        user = await change_role(session, workspace.id, path_id(request, "member"), role)
        view = member_view(user)
    return JSONResponse(view)


async def remove_member_endpoint(request: Request, workspace: Workspace) -> Response:
    """Remove a person; their sessions end with them.
    ---
    summary: Remove a member (signed out at once); the workspace's last owner cannot be removed.
    responses:
      204: {description: "removed"}
      404: {description: "not in this workspace"}
      409: {description: "the workspace's last owner"}
    """
    async with runtime_of(request).db.session() as session:
        await remove_user(session, workspace.id, path_id(request, "member"))
    return Response(status_code=204)


async def revoke_invitation_endpoint(request: Request, workspace: Workspace) -> Response:
    """Withdraw an open invitation; its link stops working.
    ---
    summary: Withdraw an open invitation (its link stops working).
    responses:
      204: {description: "withdrawn"}
      404: {description: "no open invitation with that id in this workspace"}
    """
    async with runtime_of(request).db.session() as session:
        await revoke_invitation(session, workspace.id, path_id(request, "invitation"))
    return Response(status_code=204)


def member_routes() -> list[BaseRoute]:
    return [
        Route("/members", authenticated(list_members_endpoint), methods=["GET"]),
        Route("/members", authenticated(invite_member_endpoint), methods=["POST"]),
        Route("/members/{member}", authenticated(change_role_endpoint), methods=["PATCH"]),
        Route("/members/{member}", authenticated(remove_member_endpoint), methods=["DELETE"]),
        Route("/invitations/{invitation}", authenticated(revoke_invitation_endpoint), methods=["DELETE"]),
    ]
