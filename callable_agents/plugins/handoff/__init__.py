"""The ``handoff`` tool: pass the conversation to a person, and the signing of the handoff webhook.

The tool only describes the handoff (a ``handoff`` effect); after the turn the pipeline sets
the conversation's status to ``human``, records the reason, fires ``conversation_handed_off``,
sends the customer ``customer_message`` and, if configured, POSTs a signed JSON payload to
``webhook_url``.

A webhook needs a signing secret (``webhook_secret``, a reference to an integration's secret
field): the payload carries a customer's words and the receiver acts on it, so it must be
able to tell it came from us. The pipeline delivers it, signed as
:mod:`callable_agents.core.conversation.outbound.webhooks` describes (``X-Callable-Signature``, Stripe's scheme);
receivers check it with ``core.webhooks.verify_signature``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from callable_agents.core.contracts.hookspecs import hookimpl
from callable_agents.core.store.integrations import NAME_PATTERN
from callable_agents.core.contracts.tools import ToolContext, ToolType
from callable_agents.core.http_safety import check_http_url

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

DEFAULT_CUSTOMER_MESSAGE = "Thanks for your patience. A person from our team will reply here shortly."
DEFAULT_DESCRIPTION = (
    "Hand the conversation to a person on the team. Use it when the customer asks for a person, "
    "is upset, or needs something you cannot do or answer from what you know."
)
MAX_REASON_CHARS = 500
FIELD_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class SecretReference(BaseModel):
    """Which integration secret signs the webhook (the secret itself never sits in config)."""

    model_config = ConfigDict(extra="forbid")

    integration: str = Field(description="Name of the workspace's integration holding the secret.")
    field: str = Field(description="Name of the secret field of that integration.")

    @field_validator("integration")
    @classmethod
    def _check_integration(cls, name: str) -> str:
        if not NAME_PATTERN.match(name):
            raise ValueError("expected an integration name (letters, digits, '-', '_' or '.')")
        return name

    @field_validator("field")
    @classmethod
    def _check_field(cls, name: str) -> str:
        if not FIELD_PATTERN.match(name):
            raise ValueError("expected a secret field name (letters, digits and '_')")
        return name


class HandoffConfig(BaseModel):
    """What the customer is told, and where (if anywhere) the team is notified."""

    model_config = ConfigDict(extra="forbid")

    customer_message: str = Field(
        default=DEFAULT_CUSTOMER_MESSAGE,
        min_length=1,
        max_length=1000,
        description="Sent to the customer when the conversation is handed off.",
    )
    webhook_url: str | None = Field(
        default=None, max_length=2000, description="An http(s) URL that receives a signed JSON POST on each handoff."
    )
    webhook_secret: SecretReference | None = Field(
        default=None, description="The integration secret that signs the webhook; required with webhook_url."
    )
    description: str | None = Field(
        default=None, max_length=1000, description="When the model should hand off (default: a generic sentence)."
    )

    @field_validator("customer_message")
    @classmethod
    def _check_message(cls, message: str) -> str:
        if not message.strip():
            raise ValueError("expected a non-empty message")
        return message

    @field_validator("webhook_url")
    @classmethod
    def _check_webhook_url(cls, url: str | None) -> str | None:
        return None if url is None else check_http_url(url)

    @model_validator(mode="after")
    def _secret_with_url(self) -> HandoffConfig:
        if self.webhook_url is not None and self.webhook_secret is None:
            raise ValueError(
                "webhook_secret: required when webhook_url is set, so the receiver can verify the payload "
                '(e.g. {"integration": "crm", "field": "webhook_secret"})'
            )
        if self.webhook_secret is not None and self.webhook_url is None:
            raise ValueError("webhook_secret: only used with webhook_url, which is not set")
        return self


def handoff_effect(config: HandoffConfig, reason: str) -> dict[str, Any]:
    """The ``handoff`` effect the pipeline applies after the turn."""
    webhook = None
    if config.webhook_url is not None and config.webhook_secret is not None:
        webhook = {"url": config.webhook_url, "secret": config.webhook_secret.model_dump()}
    return {"type": "handoff", "reason": reason, "customer_message": config.customer_message, "webhook": webhook}


ARGUMENTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reason": {
            "type": "string",
            "description": "Why a person is needed, in one short sentence for the team.",
            "maxLength": MAX_REASON_CHARS,
        }
    },
    "required": ["reason"],
}


def hand_off(context: ToolContext, config: HandoffConfig, arguments: dict[str, Any]) -> str:
    """Record the handoff once per turn; return what the model is told."""
    unknown = sorted(name for name in arguments if name != "reason")
    if unknown:
        return f"Unknown argument {unknown[0][:40]!r}: this tool takes only 'reason'."
    reason = arguments.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        return "Missing argument 'reason': say in one short sentence why a person is needed, then call again."
    reason = " ".join(reason.split())[:MAX_REASON_CHARS]
    if any(effect.get("type") == "handoff" for effect in context.effects):
        return "The conversation was already handed off in this turn. Tell the customer briefly that a person will reply."
    context.effects.append(handoff_effect(config, reason))
    return f"Handed off to a person: {reason}. The customer is told a person will reply; add nothing."


def build_handoff_tool(context: ToolContext) -> BaseTool:
    # Imported here: loading plugins (every CLI command) should not pay for importing LangChain.
    from langchain_core.tools import StructuredTool

    config = context.config
    if not isinstance(config, HandoffConfig):
        raise TypeError(f"handoff tool {context.tool_name!r}: expected a HandoffConfig, got {type(config).__name__}")

    async def handoff(**arguments: Any) -> str:
        return hand_off(context, config, arguments)

    return StructuredTool.from_function(
        coroutine=handoff,
        name=context.tool_name,
        description=config.description or DEFAULT_DESCRIPTION,
        args_schema=ARGUMENTS_SCHEMA,
    )


@hookimpl
def register_tools() -> list[ToolType]:
    return [
        ToolType(
            name="handoff",
            description="Hand the conversation to a person on your team, optionally notifying a signed webhook.",
            config_schema=HandoffConfig,
            factory=build_handoff_tool,
        )
    ]
