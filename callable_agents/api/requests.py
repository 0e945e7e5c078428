"""What every admin API endpoint shares: the bearer API key check, the JSON body and its fields.

Endpoint modules import these; nothing here imports an endpoint module, so the API's
imports run one way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from callable_agents.core.errors import CallableError, InvalidInput
from callable_agents.core.models import Workspace
from callable_agents.core.request_input import parse_json
from callable_agents.core.runtime import runtime_of
from callable_agents.core.store.workspaces import authenticate_api_key

Handler = Callable[[Request, Workspace], Awaitable[Response]]


class Unauthorized(CallableError):
    status_code = 401


def authenticated(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Resolve ``Authorization: Bearer <key>`` to its workspace, or answer 401."""

    async def endpoint(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization: expected 'Bearer <API key>' (create one with `callable apikey create`)")
        runtime = runtime_of(request)
        async with runtime.db.session() as session:
            key = await authenticate_api_key(session, token.strip())
            workspace = await session.get(Workspace, key.workspace_id) if key else None
        if workspace is None:
            raise Unauthorized("Authorization: the API key is unknown or revoked")
        return await handler(request, workspace)

    endpoint.__doc__ = handler.__doc__
    endpoint.__name__ = handler.__name__
    return endpoint


async def json_body(request: Request, *, allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The request's JSON object (an empty body is ``{}``), or a 422 naming the problem; with
    ``allowed``, a field outside it is refused (:func:`only_fields`)."""
    body = parse_json(await request.body() or b"{}")
    if not isinstance(body, dict):
        raise InvalidInput("body: expected a JSON object", field="body")
    if allowed is not None:
        only_fields(body, allowed)
    return body


def text_field(body: dict[str, Any], name: str, *, default: str | None = None, max_length: int = 100_000) -> str:
    """The body's string ``name`` (required unless a ``default`` is given), or a 422 naming it."""
    value = body.get(name, default)
    if not isinstance(value, str) or (default is None and not value.strip()):
        raise InvalidInput(f"{name}: expected a non-empty string", field=name)
    if len(value) > max_length:
        raise InvalidInput(f"{name}: expected at most {max_length:,} characters, got {len(value):,}", field=name)
    return value


def object_field(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The body's JSON object ``name`` (``{}`` when left out), or a 422 naming it."""
    value = body.get(name, {})
    if not isinstance(value, dict):
        raise InvalidInput(f"{name}: expected a JSON object", field=name)
    return value


def only_fields(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    """Refuse a field the endpoint does not know (a typo must not pass silently)."""
    for name in body:
        if name not in allowed:
            raise InvalidInput(f"{name}: unknown field; expected some of {', '.join(allowed)}", field=name)


def path_id(request: Request, name: str) -> str:
    """A path parameter (a name or id); the router guarantees it is there."""
    return str(request.path_params[name])
