"""What the inbox shows about a WhatsApp channel: its reply template and Twilio's error codes in words.

WhatsApp lets free text reach a customer only within 24 hours of their latest message
(``reply_window_hours`` in the channel's capabilities); outside it a person sends the
channel's approved template. A failed delivery's Twilio code is explained in plain words.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from callable_agents.plugin import ReplyTemplate
from callable_agents.plugins.whatsapp.config import WhatsAppConfig

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
    """The channel's approved template, with its variables (none when it has none or its config is bad)."""
    try:
        template = WhatsAppConfig.model_validate(config or {}).template
    except ValidationError:
        return []
    if template is None:
        return []
    takes_text = any("{reply}" in value for value in template.variables.values())
    # Named by its Content SID or by its approved name (resolved through the Content API at send time).
    template_id = template.content_sid or f"{template.name}" + (f" ({template.language})" if template.language else "")
    return [ReplyTemplate(id=template_id, label=f"Approved template {template_id}", variables=dict(template.variables), takes_text=takes_text)]
