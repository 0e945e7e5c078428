"""What every admin API endpoint shares: the bearer API key check and the JSON body.

Endpoint modules (:mod:`.routes`, :mod:`.conversations`) import these; nothing here imports
an endpoint module, so the API's imports run one way.
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


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object (an empty body is ``{}``), or a 422 naming the problem."""
    body = parse_json(await request.body() or b"{}")
    if not isinstance(body, dict):
        raise InvalidInput("body: expected a JSON object", field="body")
    return body
