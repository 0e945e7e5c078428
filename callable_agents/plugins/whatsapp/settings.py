"""The WhatsApp plugin's settings: Twilio's webhook checks, API addresses and send look-ups.

Read like every setting, from ``CALLABLE_*`` variables, ``.env`` and the overrides given to
``Settings(...)``, but declared here so core knows nothing about Twilio. Reach them with
:func:`twilio_settings` (read once per process).
"""

from __future__ import annotations

from pydantic import Field

from callable_agents.plugin import PluginSettings, Settings


class TwilioSettings(PluginSettings):
    twilio_validate_signatures: bool = Field(
        default=True, description="Development switch: False lets unsigned Twilio webhooks through, with a warning."
    )
    twilio_api_base_url: str | None = Field(default=None, description="Override api.twilio.com (tests, proxies).")
    twilio_messaging_base_url: str | None = Field(default=None, description="Override messaging.twilio.com.")
    twilio_content_base_url: str | None = Field(default=None, description="Override content.twilio.com (the Content API).")
    twilio_send_settle_seconds: float = Field(
        default=20.0,
        ge=0,
        le=600,
        description=(
            "After a crash during a send: how long after the attempt began to wait before Twilio's "
            "Messages list is trusted to show it (a create may take up to the client's 10 s timeout)."
        ),
    )
    twilio_sender_sends_per_second: float | None = Field(
        default=80.0,
        gt=0,
        le=10_000,
        description=(
            "Pace creates from one WhatsApp sender to this many a second (Twilio's default sender "
            "throughput is 80; text-only senders can be raised to 400). Empty: no pacing per sender. "
            "Sends through a Messaging Service are queued by Twilio and not paced per sender."
        ),
    )
    twilio_account_sends_per_second: float | None = Field(
        default=None,
        gt=0,
        le=10_000,
        description="Pace every create of one Twilio account to this many a second (empty: not paced per account).",
    )


def twilio_settings(settings: Settings) -> TwilioSettings:
    """This process's Twilio settings (CALLABLE_TWILIO_VALIDATE_SIGNATURES, ..._API_BASE_URL,
    ..._MESSAGING_BASE_URL, ..._SEND_SETTLE_SECONDS, ..._SENDER_SENDS_PER_SECOND,
    ..._ACCOUNT_SENDS_PER_SECOND)."""
    return settings.for_plugin(TwilioSettings)
