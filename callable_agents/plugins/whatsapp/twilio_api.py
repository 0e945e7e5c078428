"""Our thin layer over the ``twilio`` client: per-tenant clients, sends, typing, media.

The WhatsApp channel talks to Twilio only through these functions, so the facts the rest
of the code relies on live here:

* One ``twilio.rest.Client`` per tenant's credentials, all sharing one
  :class:`BoundedAsyncTwilioHttpClient` (auth travels per request, so sharing is safe).
* A send whose outcome is unknown (the process died during the create) is looked up with
  :func:`list_sent_messages` before it is sent again (see ``send.py``).
* Failures become :class:`~callable_agents.core.contracts.channels.SendError`, ``transient`` or final,
  with Twilio's error code, ``retry_after`` and ``opted_out`` filled in.
* No secret (Auth Token, API key secret, ``Authorization`` header) is ever logged or put in
  an exception message, and twilio's request logging stays quiet.
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import httpx
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client

from callable_agents.plugin import CallableError, InvalidInput, SendError, SendResult

logger = logging.getLogger(__name__)

# twilio logs every request's URL and headers at INFO; that is noise at best, so it stays off
# unless an operator has chosen a level for these loggers explicitly.
for _name in ("twilio.http_client", "twilio.async_http_client"):
    _twilio_logger = logging.getLogger(_name)
    if _twilio_logger.level == logging.NOTSET:
        _twilio_logger.setLevel(logging.WARNING)

DEFAULT_TIMEOUT_SECONDS = 10.0

_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_API_KEY_SID = re.compile(r"^SK[0-9a-fA-F]{32}$")

# Codes Twilio documents as "back off and retry": REST concurrency limit, WhatsApp rate limit.
_RATE_LIMIT_CODES = frozenset({20429, 63018})
OPTED_OUT_CODE = 21610
OUTSIDE_WINDOW_CODE = 63016

# Why a send failed, in words a workspace admin can act on (Twilio's own text follows).
_CODE_EXPLANATIONS: dict[int, str] = {
    20003: "Twilio rejected the account credentials",
    20429: "too many concurrent requests to Twilio",
    21211: "the 'to' address is not a valid WhatsApp number",
    21408: "the account may not send to this region",
    21602: "the message has no body, media or template",
    21603: "no 'from' sender or Messaging Service was given",
    21604: "no 'to' address was given",
    21610: "the recipient has opted out (sent STOP) and must send START first",
    21617: "the message body is longer than 1600 characters",
    21656: "the template variables are not a valid JSON object",
    21658: "a template variable is longer than 1600 characters",
    63015: "the sandbox recipient has not joined the sandbox (or joined over 3 days ago)",
    63016: "outside WhatsApp's 24-hour customer service window: only an approved template can be sent",
    63018: "WhatsApp rate limit reached for this sender or recipient",
}

# Headers of the last Twilio response in the current task: twilio's exceptions drop them,
# and Retry-After lives there. A ContextVar keeps concurrent tasks sharing one http client apart.
_last_response_headers: ContextVar[Mapping[str, str] | None] = ContextVar(
    "twilio_last_response_headers", default=None
)


class TwilioUnavailable(CallableError):
    """Twilio could not be reached or failed on its side; trying again later may work."""

    status_code = 502


class MediaFetchError(CallableError):
    """A message's media could not be downloaded (auth, missing, too large, transport)."""

    status_code = 502


class BoundedAsyncTwilioHttpClient(AsyncTwilioHttpClient):
    """``AsyncTwilioHttpClient`` that really applies its timeout and keeps response headers.

    twilio 9.13's ``AsyncTwilioHttpClient`` stores ``timeout`` but passes the per-request
    ``timeout`` (``None``) to aiohttp, which reads ``None`` as *no timeout at all*; this
    subclass passes the client's timeout instead. It also records the last response's headers
    for the calling task, so a 429's ``Retry-After`` survives twilio's exception. And it sends
    a JSON request (the Content API's) as JSON: twilio's async client hands the dict to aiohttp,
    which form-encodes it under the ``application/json`` header (the sync client does not).
    """

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        _last_response_headers.set(None)
        body: Any = data
        if data is not None and headers and headers.get("Content-Type") in ("application/json", "application/scim+json"):
            body = json.dumps(data)
        response = await super().request(
            method,
            url,
            params=params,
            data=body,
            headers=headers,
            auth=auth,
            timeout=timeout if timeout is not None else self.timeout,
            allow_redirects=allow_redirects,
        )
        _last_response_headers.set(dict(response.headers))
        return response


def make_http_client(timeout: float = DEFAULT_TIMEOUT_SECONDS) -> BoundedAsyncTwilioHttpClient:
    """The shared async HTTP client for every tenant's ``Client``; create it inside the event loop.

    Close it with ``await http_client.close()`` at shutdown.
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return BoundedAsyncTwilioHttpClient(timeout=timeout, logger=logging.getLogger("twilio.async_http_client"))


def make_client(
    account_sid: str,
    auth_token: str,
    *,
    api_base_url: str | None = None,
    messaging_base_url: str | None = None,
    content_base_url: str | None = None,
    http_client: AsyncTwilioHttpClient,
    api_key_sid: str | None = None,
    api_key_secret: str | None = None,
) -> Client:
    """A Twilio client acting for one tenant's account.

    Authenticates with the API key (``api_key_sid`` + ``api_key_secret``) when given, else
    with the Account SID + Auth Token. Empty credentials are refused: twilio would otherwise
    fall back to the process's ``TWILIO_*`` environment variables and run one tenant's
    traffic on another account. ``api_base_url``/``messaging_base_url`` point the client at
    another server (tests use a loopback fake). ``http_client`` must be the shared
    :class:`BoundedAsyncTwilioHttpClient` from :func:`make_http_client`.
    """
    if not isinstance(http_client, BoundedAsyncTwilioHttpClient):
        raise TypeError(
            "http_client must come from make_http_client(): twilio's AsyncTwilioHttpClient "
            "ignores its timeout, so requests could hang forever"
        )
    if not isinstance(account_sid, str) or not _ACCOUNT_SID.match(account_sid):
        raise InvalidInput(
            f"account_sid: expected 'AC' followed by 32 hex digits, got {_describe(account_sid)}"
        )
    if (api_key_sid is None) != (api_key_secret is None) or api_key_sid == "" or api_key_secret == "":
        raise InvalidInput("api_key_sid and api_key_secret: give both (non-empty) or neither")
    if api_key_sid is not None and api_key_secret is not None:
        if not _API_KEY_SID.match(api_key_sid):
            raise InvalidInput(
                f"api_key_sid: expected 'SK' followed by 32 hex digits, got {_describe(api_key_sid)}"
            )
        if not api_key_secret.strip():
            raise InvalidInput("api_key_secret: must not be empty")
        username, password = api_key_sid, api_key_secret
    else:
        if not isinstance(auth_token, str) or not auth_token.strip():
            raise InvalidInput("auth_token: must not be empty (or give api_key_sid and api_key_secret)")
        username, password = account_sid, auth_token

    client = Client(
        username,
        password,
        account_sid,
        http_client=http_client,
        # A non-empty mapping keeps twilio from reading TWILIO_* (creds, edge, region) from
        # os.environ; an empty dict would not, as twilio does ``environment or os.environ``.
        environment={"CALLABLE_AGENTS_TWILIO_ENV": "isolated"},
    )
    if api_base_url is not None:
        client.api.base_url = _check_base_url("api_base_url", api_base_url)
    if messaging_base_url is not None:
        client.messaging.base_url = _check_base_url("messaging_base_url", messaging_base_url)
    if content_base_url is not None:
        client.content.base_url = _check_base_url("content_base_url", content_base_url)
    return client


async def verify_credentials(
    client: Client, account_sid: str, *, credentials: str = "the Account SID and Auth Token"
) -> dict[str, Any]:
    """Fetch the account to prove the credentials work; return its public facts.

    ``credentials`` names what the client authenticates with, for the message when Twilio
    refuses them (e.g. ``"the API key SID and secret"``).

    Returns ``{"sid", "friendly_name", "status", "type"}`` (never the token Twilio also
    returns). Raises :class:`InvalidInput` when Twilio rejects the credentials, does not know
    the account, or the account is not active; :class:`TwilioUnavailable` when Twilio cannot
    be reached or fails on its side.
    """
    try:
        account = await client.api.v2010.accounts(account_sid).fetch_async()
    except TwilioException as exc:
        status, code = status_and_code(exc)
        if status == 401 or code == 20003:
            raise InvalidInput(
                f"Twilio rejected the credentials for account {account_sid} (HTTP 401): "
                f"check {credentials}"
            ) from None
        if status == 404 or code == 20404:
            raise InvalidInput(
                f"Twilio has no account {account_sid} that these credentials can access (HTTP 404): "
                "check the Account SID"
            ) from None
        if status >= 500 or status == 429:
            raise TwilioUnavailable(
                f"Twilio could not check account {account_sid} right now (HTTP {status}); try again"
            ) from None
        raise InvalidInput(
            f"Twilio refused to show account {account_sid} (HTTP {status}, error {code})"
        ) from None
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise TwilioUnavailable(
            f"could not reach Twilio to check account {account_sid}: {type(exc).__name__} "
            "(offline or behind a proxy? CALLABLE_TWILIO_API_BASE_URL sets the address of Twilio's API)"
        ) from None
    if account.status not in (None, "active"):
        raise InvalidInput(f"Twilio account {account_sid} is {account.status}, not active")
    return {
        "sid": account.sid,
        "friendly_name": account.friendly_name,
        "status": account.status,
        "type": account.type,
    }


async def send_whatsapp(
    client: Client,
    *,
    to: str,
    from_: str | None = None,
    messaging_service_sid: str | None = None,
    body: str | None = None,
    media_urls: Sequence[str] | None = None,
    content_sid: str | None = None,
    content_variables: Mapping[str, str] | str | None = None,
    status_callback: str | None = None,
    persistent_action: Sequence[str] | None = None,
) -> SendResult:
    """Send one WhatsApp message (text, media, or a Content API template) through Twilio.

    ``persistent_action`` (``["geo:LAT,LON|label"]``) makes a text a location message.

    Raises :class:`SendError`: ``transient=True`` for Twilio 5xx, 429/20429/63018 (with
    ``retry_after`` from ``Retry-After`` when present) and transport failures; final with
    Twilio's ``code`` otherwise (``opted_out=True`` for 21610).

    A timeout or a connection lost *after the request was sent* is ambiguous: Twilio may have
    created the message. It is classified transient (code ``"timeout"``/``"connection_lost"``)
    so the send is retried; the caller (``send.py``) records each attempt first and looks it
    up with :func:`list_sent_messages` before sending again. Failures to connect at all (code
    ``"connect_failed"``) never sent anything.
    """
    if not to:
        raise ValueError("to: the recipient's WhatsApp address (whatsapp:+…) is required")
    if not from_ and not messaging_service_sid:
        raise ValueError("from_ or messaging_service_sid is required")
    if content_sid is not None and (body or media_urls):
        raise ValueError("content_sid: a template is sent without body or media_urls")
    if not body and not media_urls and not content_sid:
        raise ValueError("body, media_urls or content_sid: there is nothing to send")
    variables = (
        json.dumps(dict(content_variables), ensure_ascii=False)
        if isinstance(content_variables, Mapping)
        else content_variables
    )
    kwargs: dict[str, Any] = {
        "to": to,
        "from_": from_,
        "messaging_service_sid": messaging_service_sid,
        "body": body,
        "media_url": list(media_urls) if media_urls else None,
        "content_sid": content_sid,
        "content_variables": variables,
        "status_callback": status_callback,
        "persistent_action": list(persistent_action) if persistent_action else None,
    }
    try:
        message = await client.messages.create_async(**{k: v for k, v in kwargs.items() if v is not None})
    except TwilioException as exc:
        raise _send_error(exc) from exc
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
        raise SendError(
            f"could not connect to Twilio ({type(exc).__name__}); nothing was sent",
            transient=True,
            code="connect_failed",
        ) from None
    except TimeoutError as exc:
        raise SendError(
            f"Twilio did not answer in time ({type(exc).__name__}); the message may have been sent",
            transient=True,
            code="timeout",
        ) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise SendError(
            f"the connection to Twilio failed ({type(exc).__name__}); the message may have been sent",
            transient=True,
            code="connection_lost",
        ) from None
    logger.debug("Twilio accepted message %s (status %s)", message.sid, message.status)
    return SendResult(provider_message_id=message.sid, status=message.status or "queued")


@dataclass(frozen=True)
class SentMessage:
    """What Twilio's Messages list tells of one message we sent."""

    sid: str
    status: str
    body: str
    num_media: int
    date_created: datetime
    from_: str | None
    messaging_service_sid: str | None


async def list_sent_messages(client: Client, *, to: str, from_: str | None, since: datetime) -> list[SentMessage]:
    """The outbound messages to ``to`` (from ``from_``, when given) sent on or after ``since``'s
    GMT date, newest first: Twilio's ``DateSent>=`` filter has the granularity of a day, so
    the caller compares ``date_created`` itself.

    Raises a transient :class:`SendError` (code ``"lookup_failed"``) when Twilio cannot answer:
    a send whose outcome is unknown must not go out again blind.
    """
    filters: dict[str, Any] = {"to": to, "date_sent_after": since.astimezone(UTC).strftime("%Y-%m-%d")}
    if from_:
        filters["from_"] = from_
    try:
        records = await client.messages.list_async(**filters, page_size=100)
    except TwilioException as exc:
        error = _send_error(exc)
        raise SendError(
            f"could not look up earlier sends at Twilio: {error}", transient=True, code="lookup_failed",
            retry_after=error.retry_after,
        ) from None
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise SendError(
            f"could not look up earlier sends at Twilio ({type(exc).__name__}); nothing was sent",
            transient=True,
            code="lookup_failed",
        ) from None
    found = []
    for record in records:
        if not str(record.direction or "outbound-api").startswith("outbound") or not record.sid or not record.date_created:
            continue
        found.append(SentMessage(
            sid=record.sid,
            status=str(record.status or "queued"),
            body=record.body or "",
            num_media=int(record.num_media or 0),
            date_created=record.date_created,
            from_=record.from_,
            messaging_service_sid=record.messaging_service_sid,
        ))
    return found


async def send_typing_indicator(client: Client, message_sid: str) -> None:
    """Show "typing…" (and mark ``message_sid`` read) on WhatsApp. Best effort: never raises."""
    try:
        await client.messaging.v2.typing_indicator.create_async(channel="whatsapp", message_id=message_sid)
    except TwilioException as exc:
        status, code = status_and_code(exc)
        logger.warning("typing indicator for %s failed: HTTP %s, Twilio error %s", message_sid, status, code)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        logger.warning("typing indicator for %s failed: %s", message_sid, type(exc).__name__)


async def fetch_media(
    url: str,
    account_sid: str,
    auth_token: str,
    *,
    max_bytes: int,
    http: httpx.AsyncClient,
) -> tuple[bytes, str]:
    """Download a message's media with the account's credentials; return ``(content, content_type)``.

    ``account_sid``/``auth_token`` may also be an API key SID and secret. Twilio answers with
    a redirect to a short-lived CDN URL, which is followed (httpx drops the credentials when
    the redirect leaves the origin). Reading stops, with :class:`MediaFetchError`, as soon as
    more than ``max_bytes`` arrive. Only pass URLs from a validated Twilio webhook: the
    credentials are sent to ``url``'s host.
    """
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, got {max_bytes!r}")
    if not url.startswith(("https://", "http://")):
        raise MediaFetchError(f"media url: expected an http(s) URL, got {url[:40]!r}")
    if not account_sid or not auth_token:
        raise MediaFetchError("media download needs the account's credentials; none were given")
    try:
        async with http.stream("GET", url, auth=(account_sid, auth_token), follow_redirects=True) as response:
            if response.status_code in (401, 403):
                raise MediaFetchError(
                    f"Twilio refused the media download (HTTP {response.status_code}): "
                    f"check the credentials of account {account_sid}"
                )
            if response.status_code == 404:
                raise MediaFetchError("the media no longer exists at Twilio (HTTP 404)")
            if response.status_code >= 400:
                raise MediaFetchError(f"media download failed with HTTP {response.status_code}")
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise MediaFetchError(f"media is {int(declared)} bytes, over the {max_bytes}-byte limit")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise MediaFetchError(f"media is over the {max_bytes}-byte limit")
                chunks.append(chunk)
            content_type = response.headers.get("Content-Type", "application/octet-stream")
    except httpx.HTTPError as exc:
        raise MediaFetchError(f"media download failed: {type(exc).__name__}") from None
    return b"".join(chunks), content_type.split(";")[0].strip() or "application/octet-stream"


# --- helpers -------------------------------------------------------------------------------


def _send_error(exc: TwilioException) -> SendError:
    """Classify a Twilio API error from ``messages.create``."""
    status, code = status_and_code(exc)
    detail = _twilio_text(exc)
    explanation = _CODE_EXPLANATIONS.get(code, "Twilio refused the message")
    message = f"Twilio error {code} (HTTP {status}): {explanation}"
    if detail:
        message += f" [{detail}]"
    transient = status >= 500 or status == 429 or code in _RATE_LIMIT_CODES
    retry_after = _retry_after() if transient else None
    return SendError(
        message,
        transient=transient,
        code=str(code),
        retry_after=retry_after,
        opted_out=code == OPTED_OUT_CODE,
    )


def status_and_code(exc: TwilioException) -> tuple[int, int]:
    """(HTTP status, Twilio error code) of a twilio exception.

    Besides its two typed exceptions, twilio raises a bare ``TwilioException("Unable to fetch
    page", response)`` when a *list* request fails (``Page.process_response``, twilio 9.13):
    the status and code are then read from that response.
    """
    if isinstance(exc, TwilioRestException | TwilioServiceException):
        status = int(exc.status or 0)
        code = int(exc.code) if exc.code is not None else status
        return status, code
    response = exc.args[1] if len(exc.args) > 1 else None
    if isinstance(response, TwilioResponse):
        status = int(response.status_code or 0)
        try:
            body = json.loads(response.text or "")
            code = int(body["code"]) if isinstance(body, dict) and body.get("code") is not None else status
        except (ValueError, TypeError):
            code = status
        return status, code
    return 0, 0


def _twilio_text(exc: TwilioException) -> str:
    """Twilio's own wording of the error (it never contains credentials)."""
    if isinstance(exc, TwilioRestException):
        return str(exc.msg or "").removeprefix("Unable to create record: ")
    if isinstance(exc, TwilioServiceException):
        return str(exc.detail or exc.title or "")
    return ""


def _retry_after() -> float | None:
    """Seconds from the last response's ``Retry-After`` (delta-seconds or HTTP-date), if any."""
    headers = _last_response_headers.get()
    if not headers:
        return None
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _check_base_url(field: str, value: str) -> str:
    if not re.match(r"^https?://[^/\s]+/?$", value):
        raise InvalidInput(f"{field}: expected a base URL like https://api.twilio.com, got {value!r}")
    return value.rstrip("/")


def _describe(value: object) -> str:
    """Name a bad identifier without echoing it (a pasted token must not land in an error)."""
    if not isinstance(value, str):
        return f"a {type(value).__name__}"
    if not value:
        return "an empty value"
    return f"a {len(value)}-character value starting with {value[:2]!r}"


__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "BoundedAsyncTwilioHttpClient",
    "MediaFetchError",
    "TwilioUnavailable",
    "fetch_media",
    "make_client",
    "make_http_client",
    "send_typing_indicator",
    "send_whatsapp",
    "status_and_code",
    "verify_credentials",
]
