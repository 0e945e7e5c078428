"""The built-in ``handoff`` tool: its effect, its config, and the webhook signatures it relies on."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ValidationError

from callable_agents.core.contracts.effects import Effect, HandOff, QueueJob
from callable_agents.core.contracts.tools import ToolContext, ToolType
from callable_agents.core.conversation.turn.tools import call_tool
from callable_agents.core.plugins import load_plugins
from callable_agents.core.runtime import Runtime
from callable_agents.plugins.handoff.webhook import sign_payload, verify_signature
from callable_agents.plugins.handoff import DEFAULT_CUSTOMER_MESSAGE, HandoffConfig, build_handoff_tool

WEBHOOK = {"webhook_url": "https://crm.example/hooks/handoff", "webhook_secret": {"integration": "crm", "field": "api_key"}}


class Turn:
    """One turn's calls of a tool, as the tools node makes them: each sees the effects asked before it."""

    def __init__(self, tool: BaseTool) -> None:
        self.tool = tool
        self.effects: list[Effect] = []

    async def call(self, arguments: dict[str, Any]) -> str:
        outcome = await call_tool(self.tool, arguments, effects=self.effects)
        self.effects.extend(outcome.effects)
        return outcome.text


def make_context(runtime: Runtime, config: dict[str, Any]) -> tuple[ToolType, ToolContext]:
    tool_type = runtime.plugins.tools.get("handoff")
    context = ToolContext(
        runtime=runtime,
        workspace_id="workspace-1",
        agent_id="agent-1",
        tool_name="talk_to_a_person",
        config=tool_type.config_schema.model_validate(config),
        conversation_id="conversation-1",
        channel_kind="whatsapp",
    )
    return tool_type, context


def test_registered_by_its_entry_point() -> None:
    plugins = load_plugins(autoload=False)
    assert plugins.tools.owners["handoff"] == "handoff"
    assert plugins.tools.get("handoff").factory is build_handoff_tool


async def test_handoff_effect_with_defaults(sqlite_runtime: Runtime) -> None:
    tool_type, context = make_context(sqlite_runtime, {})
    tool = tool_type.factory(context)
    function = convert_to_openai_tool(tool)["function"]
    assert function["name"] == "talk_to_a_person"
    assert "Hand the conversation to a person" in function["description"]
    assert function["parameters"]["required"] == ["reason"]

    turn = Turn(tool)
    result = await turn.call({"reason": "  Customer wants a refund\n for order 12 "})
    assert result == (
        "Handed off to a person: Customer wants a refund for order 12. "
        "The customer is told a person will reply; add nothing."
    )
    assert turn.effects == [HandOff(reason="Customer wants a refund for order 12", customer_message=DEFAULT_CUSTOMER_MESSAGE)]


async def test_handoff_effect_with_webhook_and_own_message(sqlite_runtime: Runtime) -> None:
    tool_type, context = make_context(
        sqlite_runtime, {**WEBHOOK, "customer_message": "Un momento, te atiende una persona.", "description": "Escalate."}
    )
    tool = tool_type.factory(context)
    assert tool.description == "Escalate."
    turn = Turn(tool)
    await turn.call({"reason": "Asked for a manager"})
    assert turn.effects == [
        HandOff(reason="Asked for a manager", customer_message="Un momento, te atiende una persona."),
        QueueJob(
            kind="webhook",
            payload={
                "conversation_id": "conversation-1",
                "webhook": {"url": "https://crm.example/hooks/handoff", "secret": {"integration": "crm", "field": "api_key"}},
                "reason": "Asked for a manager",
            },
            lane="webhook:conversation-1",
        ),
    ]


async def test_bad_arguments_and_repeats(sqlite_runtime: Runtime) -> None:
    tool_type, context = make_context(sqlite_runtime, {})
    turn = Turn(tool_type.factory(context))
    missing = "Missing argument 'reason': say in one short sentence why a person is needed, then call again."
    assert await turn.call({}) == missing
    assert await turn.call({"reason": "   "}) == missing
    assert await turn.call({"reason": 7}) == missing
    assert await turn.call({"reason": "x", "urgent": True}) == "Unknown argument 'urgent': this tool takes only 'reason'."
    assert turn.effects == []

    await turn.call({"reason": "r" * 2000})
    assert len(turn.effects[0].reason) == 500
    again = await turn.call({"reason": "still wants a person"})
    assert again.startswith("The conversation was already handed off in this turn.")
    assert len(turn.effects) == 1


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"webhook_url": "https://crm.example/h"}, "webhook_secret: required when webhook_url is set"),
        ({"webhook_secret": {"integration": "crm", "field": "api_key"}}, "webhook_secret: only used with webhook_url"),
        ({**WEBHOOK, "webhook_url": "ftp://crm.example/h"}, "webhook_url\n  Value error, expected an http:// or https:// URL"),
        ({**WEBHOOK, "webhook_url": "https://u:p@crm.example/h"}, "webhook_url\n  Value error, credentials in the URL"),
        (
            {**WEBHOOK, "webhook_secret": {"integration": "crm main", "field": "api_key"}},
            "webhook_secret.integration\n  Value error, expected an integration name",
        ),
        (
            {**WEBHOOK, "webhook_secret": {"integration": "crm", "field": "api-key"}},
            "webhook_secret.field\n  Value error, expected a secret field name",
        ),
        (
            {**WEBHOOK, "webhook_secret": {"integration": "crm", "field": "api_key", "value": "s3cr3t"}},
            "webhook_secret.value\n  Extra inputs are not permitted",
        ),
        ({"customer_message": ""}, "customer_message\n  String should have at least 1 character"),
        ({"customer_message": "   "}, "customer_message\n  Value error, expected a non-empty message"),
        ({"customer_message": "x" * 1001}, "customer_message\n  String should have at most 1000 characters"),
        ({"webhook": "https://crm.example"}, "webhook\n  Extra inputs are not permitted"),
    ],
)
def test_config_errors_name_the_field(config: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        HandoffConfig.model_validate(config)
    assert expected in str(caught.value)


# -- webhook signatures ----------------------------------------------------------------------------------

SECRET = b"whsec_test_secret"
BODY = b'{"event":"handoff"}'
# Computed independently: printf '1700000000.{"event":"handoff"}' | openssl dgst -sha256 -hmac whsec_test_secret
KNOWN = "t=1700000000,v1=72e79f639d6af8b05e58e82b27629f0f81cdaa2a4c9ee21a65f7694c3820f7a5"


def test_sign_payload_matches_an_independent_hmac() -> None:
    assert sign_payload(SECRET, BODY, 1700000000) == KNOWN


def test_verify_signature() -> None:
    now = 1700000100
    assert verify_signature(SECRET, BODY, KNOWN, now=now)
    assert verify_signature(SECRET, BODY, f"t=1700000000,v1={'0' * 64},v1={KNOWN.split('v1=')[1]}", now=now)
    assert not verify_signature(SECRET, BODY + b" ", KNOWN, now=now)  # body changed
    assert not verify_signature(b"another secret", BODY, KNOWN, now=now)
    assert not verify_signature(SECRET, BODY, KNOWN.replace("t=1700000000", "t=1700000001"), now=now)
    assert not verify_signature(SECRET, BODY, KNOWN, now=1700000000 + 301)  # too old: a replay
    assert verify_signature(SECRET, BODY, KNOWN, now=1700000000 + 3600, tolerance_seconds=3600)
    for malformed in ("", "v1=abc", "t=1700000000", "t=abc,v1=00", "garbage", "t=1700000000,v1=é"):
        assert not verify_signature(SECRET, BODY, malformed, now=now), malformed
