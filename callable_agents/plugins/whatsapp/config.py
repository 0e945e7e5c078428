"""A WhatsApp channel's configuration and the webhook URLs Twilio must be given.

Twilio signs each webhook with the exact URL it was configured with, so the URLs shown to
the admin (to paste into Twilio) and the URLs signatures are checked against come from
the same place: :func:`channel_urls`. They are built from the public base URL (or an
explicit override), never from the ``Host`` header of the request, which a TLS proxy or
tunnel rewrites.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from callable_agents.plugin import ChannelRecord, Settings

KIND = "whatsapp"
DEFAULT_MAX_MEDIA_BYTES = 5_000_000  # WhatsApp's own cap for images
MAX_MEDIA_BYTES = 16_000_000  # WhatsApp's cap for a whole message
MAX_TEMPLATE_VARIABLES = 10

_SENDER = re.compile(r"^whatsapp:\+[1-9]\d{6,14}$")
_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
_CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")
_VARIABLE_NAME = re.compile(r"^[A-Za-z0-9_]{1,40}$")
_TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:_[A-Z]{2})?$")


def _check_sender(value: str) -> str:
    if not _SENDER.match(value):
        raise ValueError("expected a WhatsApp sender like 'whatsapp:+14155238886' (E.164 with the 'whatsapp:' prefix)")
    return value


def _check_service_sid(value: str) -> str:
    if not _SERVICE_SID.match(value):
        raise ValueError("expected a Messaging Service SID: 'MG' followed by 32 hex characters")
    return value


def _check_content_sid(value: str) -> str:
    if not _CONTENT_SID.match(value):
        raise ValueError("expected a Content SID: 'HX' followed by 32 hex characters")
    return value


def _check_public_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an absolute http:// or https:// URL")
    if "_" in parts.hostname:
        # Twilio refuses callback hosts with underscores (error 21609).
        raise ValueError("expected a host name without underscores (Twilio refuses them)")
    if parts.username or parts.password:
        raise ValueError("expected a URL without a user name or password")
    return value


def _check_variables(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_TEMPLATE_VARIABLES:
        raise ValueError(f"expected at most {MAX_TEMPLATE_VARIABLES} variables")
    for name, text in value.items():
        if not _VARIABLE_NAME.match(name):
            raise ValueError(f"variable name {name[:40]!r}: expected letters, digits or '_' (e.g. '1')")
        if len(text) > 1600:
            raise ValueError(f"variable {name!r}: expected at most 1600 characters")
    return value


Sender = Annotated[str, AfterValidator(_check_sender)]
ServiceSid = Annotated[str, AfterValidator(_check_service_sid)]
ContentSid = Annotated[str, AfterValidator(_check_content_sid)]


def _check_template_name(value: str) -> str:
    if not _TEMPLATE_NAME.match(value):
        raise ValueError("expected a WhatsApp template name: lowercase letters, digits and '_'")
    return value


def _check_language(value: str) -> str:
    if not _LANGUAGE.match(value):
        raise ValueError("expected a language code like 'en' or 'pt_BR'")
    return value


TemplateName = Annotated[str, AfterValidator(_check_template_name)]
Language = Annotated[str, AfterValidator(_check_language)]
PublicUrl = Annotated[str, Field(max_length=2000), AfterValidator(_check_public_url)]


class TemplateConfig(BaseModel):
    """An approved WhatsApp template (Content API), sent when the 24-hour window is closed.

    Name it by ``name`` (and ``language``), one of the account's approved templates as the
    Content API lists them, or by ``content_sid``. Variable values may contain ``{reply}`` (the
    reply that could not be sent as free text, cut to fit), ``{name}`` (the customer's
    WhatsApp profile name) and ``{business}`` (the business's name from the agent's business info).
    """

    model_config = ConfigDict(extra="forbid")

    content_sid: ContentSid | None = Field(default=None, title="Content SID", description="The template's Content SID (HX...).")
    name: TemplateName | None = Field(
        default=None, description="The approved template's name, e.g. 'order_update' (instead of content_sid)."
    )
    language: Language | None = Field(default=None, description="With name: the template's language, e.g. 'en'.")
    variables: Annotated[dict[str, str], AfterValidator(_check_variables)] = Field(
        default_factory=dict, description='Template variables, e.g. {"1": "{name}"}.'
    )

    @model_validator(mode="after")
    def _one_way_to_name_it(self) -> TemplateConfig:
        if (self.content_sid is None) == (self.name is None):
            raise ValueError("template: give either content_sid (HX...) or name (an approved template's name)")
        if self.language is not None and self.name is None:
            raise ValueError("template.language: only used with name")
        return self


class WhatsAppConfig(BaseModel):
    """A WhatsApp channel: which sender replies, where Twilio calls us, what to do outside the window."""

    model_config = ConfigDict(extra="forbid")

    sender: Sender | None = Field(
        default=None, description="The WhatsApp sender replies come from, e.g. 'whatsapp:+14155238886'."
    )
    messaging_service_sid: ServiceSid | None = Field(
        default=None, title="Messaging Service SID",
        description="A Messaging Service (MG...) to send through, instead of a sender.",
    )
    public_inbound_url: PublicUrl | None = Field(
        default=None,
        title="Public inbound URL",
        json_schema_extra={"advanced": True},
        description="The exact inbound URL configured in Twilio, if not the public base URL + the channel path.",
    )
    public_status_url: PublicUrl | None = Field(
        default=None,
        title="Public status URL",
        json_schema_extra={"advanced": True},
        description="The exact status-callback URL, if not derived from the inbound URL.",
    )
    template: TemplateConfig | None = Field(
        default=None, description="An approved template for replies outside WhatsApp's 24-hour window."
    )
    max_media_bytes: int = Field(
        default=DEFAULT_MAX_MEDIA_BYTES, ge=1, le=MAX_MEDIA_BYTES, title="Largest media (bytes)",
        description="Largest inbound media downloaded."
    )
    transcribe_voice_notes: bool = Field(
        default=True, description="Transcribe voice notes with the workspace's OpenAI integration, when there is one."
    )
    transcription_model: Annotated[str, Field(min_length=1, max_length=100)] = Field(
        default="whisper-1",
        json_schema_extra={"advanced": True},
        description="The speech-to-text model used for voice notes.",
    )

    @model_validator(mode="after")
    def _one_sender(self) -> WhatsAppConfig:
        if (self.sender is None) == (self.messaging_service_sid is None):
            raise ValueError(
                "sender: give exactly one of sender ('whatsapp:+E164') or messaging_service_sid ('MG...')"
            )
        return self


def channel_config(channel: ChannelRecord) -> WhatsAppConfig:
    """The channel's stored config, validated (it was validated when saved, too)."""
    return WhatsAppConfig.model_validate(channel.config or {})


def _path_url(settings: Settings, channel_id: str, endpoint: str) -> str:
    return f"{settings.base_url}/channels/{KIND}/{channel_id}/{endpoint}"


def channel_urls(settings: Settings, channel: ChannelRecord, config: WhatsAppConfig | None = None) -> dict[str, str]:
    """The URLs to paste into Twilio: ``{"inbound": ..., "status": ...}``.

    ``inbound`` goes in "A message comes in" (POST) of the sender or Messaging Service;
    ``status`` is sent with every reply as its ``StatusCallback`` (and may also be set as
    the service's "Status callback URL"). An override in the channel config wins; a status
    URL is otherwise derived from an overridden inbound URL ending in ``/inbound``.
    """
    config = config or channel_config(channel)
    inbound = config.public_inbound_url or _path_url(settings, channel.id, "inbound")
    if config.public_status_url:
        status = config.public_status_url
    elif config.public_inbound_url:
        parts = urlsplit(config.public_inbound_url)
        if parts.path.endswith("/inbound"):
            status = urlunsplit(parts._replace(path=parts.path[: -len("inbound")] + "status"))
        else:
            status = _path_url(settings, channel.id, "status")
    else:
        status = _path_url(settings, channel.id, "status")
    return {"inbound": inbound, "status": status}


@functools.lru_cache(maxsize=1024)  # asked on every webhook, nearly always with the same few URLs
def signed_url(configured_url: str, query_string: str) -> str:
    """The URL Twilio signed: the configured URL without its fragment (``#rc=...`` connection
    overrides never reach us) and with the query string the request actually carried."""
    parts = urlsplit(configured_url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query_string, ""))


def describe_config(channel: ChannelRecord, settings: Settings) -> dict[str, Any]:
    """What an admin needs to finish the Twilio side: the sender and the two URLs."""
    config = channel_config(channel)
    return {
        "sender": config.sender,
        "messaging_service_sid": config.messaging_service_sid,
        "template": (config.template.content_sid or config.template.name) if config.template else None,
        "urls": channel_urls(settings, channel, config),
    }
