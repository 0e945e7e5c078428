"""Sign webhook requests exactly as Twilio does, build realistic WhatsApp webhook forms, and
post them.

The signature comes from twilio's own ``RequestValidator.compute_signature`` (HMAC-SHA1 of
the URL followed by every POST field name+value, sorted, keyed with the account Auth
Token), so a request signed here validates in our server only if our server validates the
way Twilio signs. Sign the exact URL Twilio was given (scheme, host, port, path, query).

    params = inbound_params(account_sid, "whatsapp:+15551234567", sender, "Are you open?")
    response = await post_signed_webhook(client, inbound_url, auth_token, params)
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from twilio.request_validator import RequestValidator

if TYPE_CHECKING:
    import httpx

ParamValue = str | Sequence[str]

SIGNATURE_HEADER = "X-Twilio-Signature"


class _MultiParams:
    """Exposes ``getlist`` so ``RequestValidator`` signs every value of a repeated field."""

    def __init__(self, params: Mapping[str, ParamValue]) -> None:
        self._params = {
            name: [value] if isinstance(value, str) else list(value) for name, value in params.items()
        }

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __bool__(self) -> bool:
        return bool(self._params)

    def getlist(self, name: str) -> list[str]:
        return self._params[name]


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: a two-letter prefix (``SM``, ``ME``, ``AC``…) + 32 lowercase hex digits."""
    return prefix + secrets.token_hex(16)


def new_message_sid(prefix: str = "SM") -> str:
    """A Twilio-shaped message SID: ``SM`` (or ``MM`` for media) + 32 hex digits."""
    return new_sid(prefix)


def compute_signature(auth_token: str, url: str, params: Mapping[str, ParamValue]) -> str:
    """The ``X-Twilio-Signature`` value Twilio would send for a POST of ``params`` to ``url``."""
    return RequestValidator(auth_token).compute_signature(url, _MultiParams(params))


def signed_headers(auth_token: str, url: str, params: Mapping[str, ParamValue]) -> dict[str, str]:
    """Headers of a Twilio webhook POST of ``params`` to ``url``, with a valid signature.

    Values may be strings or lists of strings (a repeated field). Send the form with the same
    values, e.g. ``httpx.post(url, data=params, headers=signed_headers(token, url, params))``.
    """
    return {
        SIGNATURE_HEADER: compute_signature(auth_token, url, params),
        "Content-Type": "application/x-www-form-urlencoded",
        "User-Agent": "TwilioProxy/1.1",
        "I-Twilio-Idempotency-Token": secrets.token_hex(16),
    }


def inbound_params(
    account_sid: str,
    from_: str,
    to: str,
    body: str,
    message_sid: str | None = None,
    *,
    profile_name: str = "Ana Test",
    media: Sequence[tuple[str, str]] = (),
    **extra: str,
) -> dict[str, str]:
    """The form Twilio posts to "A message comes in" for a WhatsApp message.

    ``from_``/``to`` are channel addresses (``whatsapp:+1…``). ``media`` is a list of
    ``(url, content_type)``; each becomes ``MediaUrl{N}``/``MediaContentType{N}``. ``extra``
    adds or overrides fields (e.g. ``ButtonPayload=...``, ``OriginalRepliedMessageSid=...``).
    """
    sid = message_sid or new_message_sid("MM" if media else "SM")
    wa_id = from_.removeprefix("whatsapp:").lstrip("+")
    params: dict[str, str] = {
        "SmsMessageSid": sid,
        "NumMedia": str(len(media)),
        "ProfileName": profile_name,
        "MessageType": "image" if media else "text",
        "SmsSid": sid,
        "WaId": wa_id,
        "SmsStatus": "received",
        "Body": body,
        "To": to,
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": from_,
        "ApiVersion": "2010-04-01",
    }
    for index, (url, content_type) in enumerate(media):
        params[f"MediaUrl{index}"] = url
        params[f"MediaContentType{index}"] = content_type
    params.update(extra)
    return params


def signed_form(auth_token: str, signed_url: str, params: Mapping[str, ParamValue]) -> dict[str, Any]:
    """``httpx`` keyword arguments (``data``, ``headers``) for a Twilio-signed form POST whose
    signature covers ``signed_url``: ``client.post(path, **signed_form(token, url, params))``."""
    return {"data": dict(params), "headers": signed_headers(auth_token, signed_url, params)}


async def post_signed_webhook(
    client: httpx.AsyncClient,
    url: str,
    auth_token: str,
    params: Mapping[str, ParamValue],
    *,
    signed_url: str | None = None,
) -> httpx.Response:
    """POST ``params`` to ``url`` as Twilio would, signed with the account's ``auth_token``.

    The signature covers ``signed_url`` (default ``url``): give it when the client reaches the
    server by another address than the public one Twilio was given, e.g. an in-process app
    behind ``httpx.ASGITransport`` (post to ``/channels/...``, sign ``https://bot.example.com/channels/...``).
    """
    return await client.post(url, **signed_form(auth_token, signed_url or url, params))
