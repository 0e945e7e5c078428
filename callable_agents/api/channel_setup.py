"""Setting a channel up at its provider through the admin API, as the dashboard does.

Through the channel type's ``ChannelSetup`` (core/contracts/channels.py): the senders an
integration's account can use, "configure for me" (the sender's webhooks pointed at the
channel, or the URLs to copy and why), and a test message. A provider's refusal keeps its
status (401 from the provider: 422; not in the account: 404; unreachable: 502) and says what
to do; nothing here names a channel type.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from callable_agents.api.requests import authenticated, json_body, path_id
from callable_agents.core.contracts.channels import ChannelSetupError
from callable_agents.core.errors import InvalidInput
from callable_agents.core.models import Workspace
from callable_agents.core.runtime import runtime_of
from callable_agents.core.store.channel_setup import channel_setup_target, integration_setup

DEFAULT_TEST_TEXT = "This is a test message from your agent's new channel."


def _refused(exc: ChannelSetupError) -> Response:
    # Said here rather than by the server's error handler, which hides a 5xx's message: an
    # unreachable provider is not the server's own failure, and the caller needs the reason.
    return JSONResponse({"error": {"message": str(exc), "type": "ChannelSetupError", "problem": exc.problem}}, exc.status_code)


def _plain(value: Any) -> Any:
    return {key: _plain(item) for key, item in value.items()} if isinstance(value, dict) else (
        [_plain(item) for item in value] if isinstance(value, (list, tuple)) else value
    )


async def list_senders_endpoint(request: Request, workspace: Workspace) -> Response:
    """What an integration's account can send from.
    ---
    summary: The senders an integration's account can use for a channel (e.g. its WhatsApp numbers and Messaging Services).
    responses:
      200: {description: "channel_kind, senders (value, config_field, label, kind, configurable, note) and notes"}
      404: {description: "no such integration, or no channel type is set up through its provider"}
      422: {description: "the provider refused the stored credentials"}
      502: {description: "the provider could not be reached"}
    """
    runtime = runtime_of(request)
    channel_type, integration = await integration_setup(runtime, workspace.id, path_id(request, "name"))
    assert channel_type.setup is not None
    try:
        found = await channel_type.setup.list_senders(runtime, integration)
    except ChannelSetupError as exc:
        return _refused(exc)
    return JSONResponse({"channel_kind": channel_type.name, **_plain(asdict(found))})


async def configure_endpoint(request: Request, workspace: Workspace) -> Response:
    """Point the channel's sender at the channel's URLs at its provider.
    ---
    summary: Configure the provider for a channel (its sender's webhooks), or get the URLs to set by hand and why.
    responses:
      200: {description: "configured, target, urls, settings, reason, notes"}
      404: {description: "no such channel, its type has no set-up, or the sender is not in the account"}
      422: {description: "the channel has no integration, or the provider refused"}
      502: {description: "the provider could not be reached"}
    """
    runtime = runtime_of(request)
    target = await channel_setup_target(runtime, workspace.id, path_id(request, "channel"))
    try:
        result = await target.setup.configure(runtime, target.integration, target.channel)
    except ChannelSetupError as exc:
        return _refused(exc)
    return JSONResponse(_plain(asdict(result)))


async def test_message_endpoint(request: Request, workspace: Workspace) -> Response:
    """Send a test message from the channel's sender. Body {to, text}.
    ---
    summary: Send a test message from a channel's sender to a number (body {to, text}).
    responses:
      200: {description: "to, provider_message_id, status"}
      404: {description: "no such channel, or its type has no set-up"}
      422: {description: "to or text is malformed, or the provider refused"}
      502: {description: "the provider could not be reached"}
    """
    runtime = runtime_of(request)
    body = await json_body(request)
    to, text = body.get("to"), body.get("text", DEFAULT_TEST_TEXT)
    if not isinstance(to, str) or not to.strip():
        raise InvalidInput("to: expected the recipient's number, e.g. +14155550100", field="to")
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("text: expected the message to send", field="text")
    target = await channel_setup_target(runtime, workspace.id, path_id(request, "channel"))
    try:
        result = await target.setup.send_test(runtime, target.integration, target.channel, to, text)
    except ChannelSetupError as exc:
        return _refused(exc)
    return JSONResponse(_plain(asdict(result)))


def channel_setup_routes() -> list[BaseRoute]:
    return [
        Route("/integrations/{name}/senders", authenticated(list_senders_endpoint), methods=["GET"]),
        Route("/channels/{channel}/configure", authenticated(configure_endpoint), methods=["POST"]),
        Route("/channels/{channel}/test-message", authenticated(test_message_endpoint), methods=["POST"]),
    ]
