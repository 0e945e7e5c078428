"""The ``handoff`` tool: pass the conversation to a person, optionally notifying a signed webhook.

- :mod:`.webhook`  the webhook job (kind ``webhook``): signing, delivery with retries

The tool only describes the handoff: it returns a ``HandOff`` effect (and, with a webhook,
a ``QueueJob`` for it). After the turn, core sets the conversation's status to ``human``,
records the reason, fires ``conversation_handed_off``, sends the customer
``customer_message`` and commits the webhook job, which POSTs a signed JSON payload to
``webhook_url``. Offline mode calls the tool when the customer asks for a person
(:func:`wants_a_person`, this tool type's ``offline_route``).

A webhook needs a signing secret (``webhook_secret``, a reference to an integration's secret
field): the payload carries a customer's words and the receiver acts on it, so it must be
able to tell it came from us. It is signed as :mod:`.webhook` describes
(``X-Callable-Signature``, Stripe's scheme); receivers check it with
:func:`callable_agents.plugins.handoff.webhook.verify_signature`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from callable_agents.plugin import (
    Effect,
    HandOff,
    INTEGRATION_NAME_PATTERN as NAME_PATTERN,
    JobKind,
    QueueJob,
    ToolContext,
    ToolType,
    check_http_url,
    effect_tool,
    hookimpl,
)
from callable_agents.plugins.handoff.webhook import WEBHOOK_JOB, deliver_webhook, webhook_lane

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


def handoff_effects(context: ToolContext, config: HandoffConfig, reason: str) -> list[Effect]:
    """The effects core applies after the turn: the handoff, and the webhook's job if configured."""
    effects: list[Effect] = [HandOff(reason=reason, customer_message=config.customer_message)]
    if config.webhook_url is not None and config.webhook_secret is not None:
        webhook = {"url": config.webhook_url, "secret": config.webhook_secret.model_dump()}
        payload = {"conversation_id": context.conversation_id, "webhook": webhook, "reason": reason}
        effects.append(QueueJob(kind=WEBHOOK_JOB, payload=payload, lane=webhook_lane(context.conversation_id)))
    return effects


_PERSON_REQUEST = re.compile(
    r"\b(talk|speak|chat|connect|transfer|put)\b.{0,30}\b(person|human|someone|somebody|agent|representative|staff|manager|operator|real)\b"
    r"|\b(real|live)\s+(person|human|agent)\b|\bhuman\b|\brepresentative\b",
    re.IGNORECASE,
)
OFFLINE_REASON = "The customer asked to talk to a person."


def wants_a_person(text: str) -> bool:
    return bool(_PERSON_REQUEST.search(text))


def offline_route(text: str) -> dict[str, Any] | None:
    """Offline mode hands off when the customer asks for a person."""
    return {"reason": OFFLINE_REASON} if wants_a_person(text) else None


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


def hand_off(
    context: ToolContext, config: HandoffConfig, arguments: dict[str, Any], turn_effects: Sequence[Effect]
) -> tuple[str, list[Effect]]:
    """The handoff, once per turn: what the model is told and the effects to apply."""
    unknown = sorted(name for name in arguments if name != "reason")
    if unknown:
        return f"Unknown argument {unknown[0][:40]!r}: this tool takes only 'reason'.", []
    reason = arguments.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        return "Missing argument 'reason': say in one short sentence why a person is needed, then call again.", []
    reason = " ".join(reason.split())[:MAX_REASON_CHARS]
    if any(isinstance(effect, HandOff) for effect in turn_effects):
        return "The conversation was already handed off in this turn. Tell the customer briefly that a person will reply.", []
    told = f"Handed off to a person: {reason}. The customer is told a person will reply; add nothing."
    return told, handoff_effects(context, config, reason)


def build_handoff_tool(context: ToolContext) -> BaseTool:
    config = context.config
    if not isinstance(config, HandoffConfig):
        raise TypeError(f"handoff tool {context.tool_name!r}: expected a HandoffConfig, got {type(config).__name__}")

    def run(arguments: dict[str, Any], turn_effects: Sequence[Effect]) -> tuple[str, list[Effect]]:
        return hand_off(context, config, arguments, turn_effects)

    return effect_tool(
        name=context.tool_name,
        description=config.description or DEFAULT_DESCRIPTION,
        args_schema=ARGUMENTS_SCHEMA,
        run=run,
    )


@hookimpl
def register_tools() -> list[ToolType]:
    return [
        ToolType(
            name="handoff",
            description="Hand the conversation to a person on your team, optionally notifying a signed webhook.",
            config_schema=HandoffConfig,
            factory=build_handoff_tool,
            offline_route=offline_route,
        )
    ]


@hookimpl
def register_job_kinds() -> list[JobKind]:
    return [JobKind(name=WEBHOOK_JOB, handler=deliver_webhook)]
