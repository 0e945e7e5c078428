"""Twilio's webhooks for a WhatsApp channel: inbound messages and delivery statuses.

``POST /channels/whatsapp/{channel_id}/inbound`` and ``.../status``. Every request goes
through the same gate, in this order, and nothing is stored unless it passes:

1. the channel id names an enabled WhatsApp channel (else 404);
2. the body is a form of reasonable size (else 413, 415 or 400 with the reason);
3. ``X-Twilio-Signature`` is Twilio's signature of the channel's *configured* public URL
   and every field, with the account's Auth Token (else 403, logged without the body);
4. ``AccountSid`` is the channel's account (else 403).

An inbound message is then made durable in the inbound queue (one append,
:func:`callable_agents.core.conversation.inbound.queue_inbound`) and Twilio gets an empty TwiML
``<Response/>`` at once, also for a repeated delivery. The worker files it: its
conversation, the dedupe on ``MessageSid`` (a unique constraint), the opt-out keywords,
its turn job. The model is never called here.
"""

from __future__ import annotations

import base64
import hmac
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from twilio.request_validator import RequestValidator

from callable_agents.plugin import InboundMessage, count_provider_error, count_webhook, describe_pick, queue_inbound, runtime_of
from callable_agents.plugins.whatsapp.accounts import (
    ChannelAccount,
    NotAWhatsAppChannel,
    load_channel_account,
)
from callable_agents.plugins.whatsapp.config import signed_url
from callable_agents.plugins.whatsapp.opt_out import opt_out_change
from callable_agents.plugins.whatsapp.settings import twilio_settings
from callable_agents.plugins.whatsapp.status import StatusUpdate, apply_status

log = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
SIGNATURE_HEADER = "x-twilio-signature"
SIGNATURE_SETTINGS_HEADER = "x-twilio-webhooks-signature-settings"
# Twilio's webhooks are small (a 1600-character body plus metadata); anything much larger
# is not from Twilio and is refused before it is parsed.
MAX_WEBHOOK_BYTES = 128 * 1024
MAX_FIELDS = 500
MAX_USER_ID_CHARS = 200  # Conversation.external_user_id
_MESSAGE_SID = re.compile(r"^[A-Za-z]{2}[0-9A-Za-z]{1,62}$")
_MEDIA_URL_FIELD = re.compile(r"^MediaUrl(\d{1,3})$")


class WebhookRejected(Exception):
    """A request refused before anything was stored: ``status`` and a reason for the caller."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class FormParams:
    """A parsed form: every field kept, in order, repeated fields as several values.

    Offers ``getlist`` so twilio's ``RequestValidator`` signs every value, as Twilio does.
    """

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            self._values.setdefault(name, []).append(value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __bool__(self) -> bool:
        return bool(self._values)

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def getlist(self, name: str) -> list[str]:
        return self._values[name]

    def get(self, name: str) -> str | None:
        """The first value of ``name``, or None."""
        values = self._values.get(name)
        return values[0] if values else None

    def sorted_fields(self) -> list[tuple[str, list[str]]]:
        """(name, values) for every field, names sorted."""
        return sorted(self._values.items())

    def as_meta(self) -> dict[str, Any]:
        """Every field as sent: one value as a string, a repeated field as a list."""
        return {name: values[0] if len(values) == 1 else list(values) for name, values in self._values.items()}


@dataclass(frozen=True)
class VerifiedRequest:
    account: ChannelAccount
    form: FormParams


# --- the gate --------------------------------------------------------------------------


async def _read_body(request: Request) -> bytes:
    limit = min(MAX_WEBHOOK_BYTES, runtime_of(request).settings.max_request_bytes)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise WebhookRejected(413, f"request body too large: a Twilio webhook is at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise WebhookRejected(413, f"request body too large: a Twilio webhook is at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_form(content_type: str | None, body: bytes) -> FormParams:
    """Parse a Twilio webhook body strictly; raise :class:`WebhookRejected` (415/400) saying why."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise WebhookRejected(
            415, f"Content-Type: expected application/x-www-form-urlencoded, got {media_type[:60] or 'none'!r}"
        )
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise WebhookRejected(400, "malformed form body: expected URL-encoded ASCII") from None
    if not text:
        return FormParams([])
    try:
        pairs = _strict_pairs(text)
    except UnicodeDecodeError:
        raise WebhookRejected(400, "malformed form body: a percent-encoded value is not valid UTF-8") from None
    except ValueError as exc:
        reason = (
            f"more than {MAX_FIELDS} fields" if "Max number of fields" in str(exc) else "a field without '=' or an empty field"
        )
        raise WebhookRejected(400, f"malformed form body: {reason}") from None
    return FormParams(pairs)


def twilio_signature(auth_token: str, url: str, form: FormParams) -> bytes:
    """Twilio's ``X-Twilio-Signature`` for a form POST to ``url``, as ASCII bytes.

    The algorithm of twilio's ``RequestValidator.compute_signature``: the URL followed by
    every field name and value, names sorted, each name's distinct values sorted, signed
    with HMAC-SHA1 under the Auth Token, base64-encoded. Written out here because the
    library's generic version costs a few times more, on every webhook.
    """
    signed = url + "".join(
        name + values[0] if len(values) == 1 else "".join(name + value for value in sorted(set(values)))
        for name, values in form.sorted_fields()
    )
    return base64.b64encode(hmac.digest(auth_token.encode("utf-8"), signed.encode("utf-8"), "sha1"))


def _strict_pairs(text: str) -> list[tuple[str, str]]:
    """``parse_qsl(text, keep_blank_values=True, strict_parsing=True, errors="strict",
    max_num_fields=MAX_FIELDS)``, with its errors, at a fraction of its cost per field."""
    if not text:
        return []
    if 1 + text.count("&") > MAX_FIELDS:
        raise ValueError("Max number of fields exceeded")
    pairs = []
    for field in text.split("&"):
        name, equals, value = field.partition("=")
        if not equals:
            raise ValueError(f"bad query field: {field[:40]!r}")
        pairs.append((_unquote_plus(name), _unquote_plus(value)))
    return pairs


def _unquote_plus(text: str) -> str:
    if "+" in text:
        text = text.replace("+", " ")
    # The body was checked to be ASCII, so unescaping bytes and decoding them as strict
    # UTF-8 is unquote(errors="strict"), at half its cost.
    return unquote_to_bytes(text).decode("utf-8") if "%" in text else text


def _signature_problem(request: Request, auth_token: str, configured_url: str, form: FormParams) -> str | None:
    """Why the request's signature is not Twilio's, or None when it is."""
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        return "missing X-Twilio-Signature header"
    if request.headers.get(SIGNATURE_SETTINGS_HEADER):
        return (
            "signed with a webhook SharedKey (X-Twilio-Webhooks-Signature-Settings), which is not supported: "
            "let Twilio sign with the account's Auth Token"
        )
    query = request.scope["query_string"].decode("latin-1")
    url = signed_url(configured_url, query)
    # Fast path: the configured URL as it is, one HMAC. The full check by twilio's own
    # validator (which also tries the URL with and without a default port) runs only when
    # that does not match.
    if "bodySHA256" not in query and hmac.compare_digest(twilio_signature(auth_token, url, form), signature.encode()):
        return None
    if not RequestValidator(auth_token).validate(url, form, signature):
        return f"X-Twilio-Signature does not match {url} signed with the account's Auth Token"
    return None


async def verify_request(request: Request, endpoint: str) -> VerifiedRequest:
    """Run the gate (see the module docs) for ``endpoint`` (``"inbound"`` or ``"status"``)."""
    runtime = runtime_of(request)
    channel_id = request.path_params["channel_id"]
    try:
        account = await load_channel_account(runtime, channel_id)
    except NotAWhatsAppChannel:
        raise WebhookRejected(404, "no such WhatsApp channel") from None
    body = await _read_body(request)
    form = parse_form(request.headers.get("content-type"), body)
    where = f"channel {channel_id} ({endpoint})"
    validate_signatures = twilio_settings(runtime.settings).twilio_validate_signatures
    if validate_signatures:
        problem = _signature_problem(request, account.credentials.auth_token, account.urls[endpoint], form)
        if problem is not None:
            log.warning("Twilio webhook refused (403) for %s from %s: %s", where, _client_host(request), problem)
            raise WebhookRejected(403, "invalid Twilio signature")
    account_sid = form.get("AccountSid")
    if account_sid != account.credentials.account_sid:
        log.warning(
            "Twilio webhook refused (403) for %s from %s: AccountSid %s is not the channel's account %s",
            where, _client_host(request), _short(account_sid), account.credentials.account_sid,
        )
        raise WebhookRejected(403, "AccountSid does not match this channel's Twilio account")
    if not validate_signatures:
        log.warning(
            "Twilio webhook for %s let through WITHOUT checking its signature "
            "(CALLABLE_TWILIO_VALIDATE_SIGNATURES=false is for development only)",
            where,
        )
    return VerifiedRequest(account, form)


def _client_host(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _short(value: str | None) -> str:
    return "none" if value is None else repr(value[:40])


def _required(form: FormParams, name: str, limit: int, pattern: re.Pattern[str] | None = None) -> str:
    value = form.get(name)
    if not value:
        raise WebhookRejected(400, f"{name}: required")
    if len(value) > limit or (pattern is not None and not pattern.match(value)):
        raise WebhookRejected(400, f"{name}: malformed value")
    return value


# --- inbound ---------------------------------------------------------------------------


def inbound_media(form: FormParams) -> list[dict[str, Any]]:
    """``MediaUrl{N}``/``MediaContentType{N}`` pairs, in N order (zero-based)."""
    found: list[tuple[int, dict[str, Any]]] = []
    for name in form:
        match = _MEDIA_URL_FIELD.match(name)
        url = form.get(name) if match else None
        if match and url:
            index = int(match[1])
            content_type = form.get(f"MediaContentType{index}") or "application/octet-stream"
            found.append((index, {"url": url, "content_type": content_type}))
    return [item for _, item in sorted(found, key=lambda pair: pair[0])]


def inbound_text(form: FormParams) -> str:
    """The message text; a tapped button or list item (as core describes a pick, so the model
    and offline mode read it), or a shared location without text, is described."""
    body = form.get("Body") or ""
    choice_id = form.get("ButtonPayload") or form.get("ListId")
    if choice_id:
        title = form.get("ButtonText") or form.get("ListTitle") or body
        return describe_pick(title, {"id": choice_id, "title": title}, how="tapped")
    if body.strip():
        return body
    latitude, longitude = form.get("Latitude"), form.get("Longitude")
    if latitude and longitude:
        place = ", ".join(part for part in (form.get("Label"), form.get("Address")) if part)
        where = f"{place} " if place else ""
        return f"[The customer shared a location: {where}({latitude}, {longitude})]"
    return body


def inbound_profile(form: FormParams) -> dict[str, Any]:
    return {name: value for name in ("ProfileName", "WaId") if (value := form.get(name))}


async def inbound(request: Request) -> Response:
    """Queue a customer's WhatsApp message for filing; answer Twilio with empty TwiML."""
    try:
        verified = await verify_request(request, "inbound")
        form = verified.form
        message_sid = _required(form, "MessageSid", 64, _MESSAGE_SID)
        sender = _required(form, "From", MAX_USER_ID_CHARS)
    except WebhookRejected as rejected:
        count_webhook("whatsapp", "rejected")
        return PlainTextResponse(rejected.reason, rejected.status)
    await queue_inbound(
        runtime_of(request),
        verified.account.channel,
        InboundMessage(
            external_user_id=sender,
            text=inbound_text(form),
            provider_message_id=message_sid,
            media=inbound_media(form),
            profile=inbound_profile(form),
            meta=form.as_meta(),
            opted_out=opt_out_change(form.get("OptOutType"), form.get("Body")),
        ),
    )
    return Response(EMPTY_TWIML, media_type="text/xml")


# --- status callbacks ------------------------------------------------------------------


async def status(request: Request) -> Response:
    """Record a delivery status (only ever forward); answer 200 with an empty body."""
    try:
        verified = await verify_request(request, "status")
        form = verified.form
        message_sid = _required(form, "MessageSid", 64, _MESSAGE_SID)
        message_status = _required(form, "MessageStatus", 40)
    except WebhookRejected as rejected:
        count_webhook("whatsapp", "rejected")
        return PlainTextResponse(rejected.reason, rejected.status)
    if form.get("ErrorCode"):
        count_provider_error("whatsapp", form.get("ErrorCode") or "")
    await apply_status(
        runtime_of(request),
        verified.account.channel.id,
        StatusUpdate(
            message_sid=message_sid,
            status=message_status.lower(),
            error_code=form.get("ErrorCode") or None,
            error_message=form.get("ChannelStatusMessage") or form.get("ErrorMessage"),
        ),
    )
    return Response(b"", 200)


def routes() -> list[BaseRoute]:
    """Mounted by the server at ``/channels/whatsapp``."""
    return [
        Route("/{channel_id}/inbound", inbound, methods=["POST"], name="whatsapp_inbound"),
        Route("/{channel_id}/status", status, methods=["POST"], name="whatsapp_status"),
    ]
