"""What the inbox shows about a WhatsApp channel: its templates and Twilio's error codes in words.

WhatsApp lets free text reach a customer only within 24 hours of their latest message
(``reply_window_hours`` in the channel's capabilities); outside it a person sends the
channel's configured template, or one of the Twilio account's approved templates (listed
from the Content API, kept a few minutes) with the variables they fill in. A failed
delivery's Twilio code is explained in plain words.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from callable_agents.plugin import ChannelTemplatesError, ReplyTemplate, Runtime, SendError
from callable_agents.plugins.whatsapp.accounts import NotAWhatsAppChannel, WhatsAppServices, load_channel_account
from callable_agents.plugins.whatsapp.config import TemplateConfig, WhatsAppConfig
from callable_agents.plugins.whatsapp.content_api import Template
from callable_agents.plugins.whatsapp.send import approved_templates

WINDOW_HOURS = 24

ERROR_WORDS: dict[str, str] = {
    "63016": "outside the 24-hour window: only an approved template can reach the customer now",
    "21610": "the customer opted out (they sent STOP; they must send START to hear from you again)",
    "63018": "too many messages too fast (WhatsApp's rate limit); it will be retried later",
    "63038": "the Twilio account's daily message limit is reached",
    "63015": "the sandbox recipient hasn't joined the sandbox, or joined more than 3 days ago",
    "63007": "the sender is not enabled for WhatsApp on this Twilio account",
    "63003": "the number is not on WhatsApp, or can't receive messages",
    "63024": "WhatsApp refused the message for this recipient",
    "63032": "WhatsApp couldn't deliver to this user (their settings or device)",
    "21211": "the customer's number is not a valid phone number",
    "21617": "the message is longer than 1,600 characters",
    "21658": "a template variable is longer than allowed",
    "20429": "too many requests to Twilio; it will be retried later",
    "30003": "the phone is unreachable or off",
    "30005": "the number is unknown or no longer exists",
    "30006": "the number can't receive this message (a landline or unreachable carrier)",
    "30007": "the carrier filtered the message as spam",
    "30008": "the message could not be delivered (an unknown error at the carrier)",
}


def describe_error(code: str) -> str | None:
    """A Twilio error code in words, or None when it isn't one we know."""
    return ERROR_WORDS.get(code.strip())


def reply_templates(config: dict[str, Any]) -> list[ReplyTemplate]:
    """The channel's configured template, with its variables (none when it has none or its config is bad)."""
    try:
        template = WhatsAppConfig.model_validate(config or {}).template
    except ValidationError:
        return []
    return [] if template is None else [_configured(template, None)]


def _configured(template: TemplateConfig, approved: Template | None) -> ReplyTemplate:
    takes_text = any("{reply}" in value for value in template.variables.values())
    # Named by its Content SID or by its approved name (resolved through the Content API at send time).
    template_id = template.content_sid or f"{template.name}" + (f" ({template.language})" if template.language else "")
    return ReplyTemplate(
        id=template_id, label=f"Approved template {template_id}", variables=dict(template.variables), takes_text=takes_text,
        configured=True, name=approved.name if approved else template.name or "",
        language=approved.language if approved else template.language or "",
        category=approved.category if approved else "", status="approved" if approved else "",
    )


def _is_configured(template: TemplateConfig, approved: Template) -> bool:
    if template.content_sid is not None:
        return template.content_sid == approved.content_sid
    return template.name == approved.name and template.language in (None, approved.language)


async def channel_templates(runtime: Runtime, channel_id: str) -> list[ReplyTemplate]:
    """The channel's configured template first, then the Twilio account's other approved templates."""
    try:
        account = await load_channel_account(runtime, channel_id)
        client = WhatsAppServices.of(runtime).client(runtime, account.integration, account.credentials)
    except NotAWhatsAppChannel:
        raise ChannelTemplatesError("the channel is disabled or has no Twilio integration") from None
    try:
        approved = await approved_templates(runtime, client)
    except SendError as exc:
        raise ChannelTemplatesError(f"could not list the Twilio account's approved templates: {exc}") from None
    configured = account.config.template
    mine = next((t for t in approved if configured is not None and _is_configured(configured, t)), None)
    found = [] if configured is None else [_configured(configured, mine)]
    for template in approved:
        if template is mine:
            continue
        label = f"{template.name} ({template.language})" if template.language else template.name
        found.append(ReplyTemplate(
            id=template.content_sid, label=label, variables=dict(template.variables), configured=False,
            name=template.name, language=template.language, category=template.category, status="approved",
        ))
    return found
