"""A loopback fake of the Twilio REST API, for tests that drive the real ``twilio`` client.

``FakeTwilio`` is a real HTTP server on ``127.0.0.1`` (a random free port, a background
thread), so the real ``twilio`` client, ``httpx``, ``aiohttp`` or another process can talk to
it over a socket. It implements the parts of Twilio that Callable Agents uses, with Twilio's
own status codes and error JSON:

* HTTP Basic auth on every request: Account SID + Auth Token, or API Key SID + secret;
  wrong credentials get ``401`` with code ``20003``.
* ``GET /2010-04-01/Accounts/{AC}.json`` (unknown or foreign account: ``404``, code ``20404``).
* ``POST /2010-04-01/Accounts/{AC}/Messages.json``, validated like Twilio (``21604`` no To,
  ``21603`` no From/MessagingServiceSid, ``21602`` no Body/ContentSid/MediaUrl, ``21617`` Body
  over 1600 chars (in UTF-16 units), ``21211`` malformed To, ``21656`` bad ContentVariables JSON), answering
  ``201`` with a Message resource (``queued``; ``accepted`` with a Messaging Service).
  ``GET .../Messages.json`` lists, newest first, filtered as Twilio documents (``To``,
  ``From``, ``DateSent`` / ``DateSent<`` / ``DateSent>`` on the GMT date a message was sent,
  ``YYYY-MM-DD`` or the client's ``YYYY-MM-DDTHH:MM:SSZ``; a bad one gets ``400`` ``20001``),
  paged with ``PageSize`` (default 50, at most 1000) and ``Page``/``PageToken`` through
  ``next_page_uri``, as the ``twilio`` client follows it; ``GET .../Messages/{SM}.json`` fetches.
  The fake sends a message at once, so ``date_sent`` is its creation time.
* ``POST /v2/Indicators/Typing.json`` (the WhatsApp typing indicator) -> ``{"success": true}``.
* The Content API (``client.content.base_url``): ``POST /v1/Content`` (JSON, as the client's
  ``ContentCreateRequest``; quick replies 1-3 actions, list pickers 1-10 items, Twilio's length
  caps; a bad one gets ``400`` ``20001``), ``GET /v1/Content`` and ``GET /v1/ContentAndApprovals``
  (newest first, ``meta.key = "contents"``, WhatsApp ``approval_requests``), and
  ``POST /v1/Content/{HX}/ApprovalRequests/whatsapp``. ``add_content`` seeds templates made in
  the console, ``set_content_approval`` moves their approval, ``contents`` lists them.
* Setting a sender up (seed them with ``add_phone_number``/``add_messaging_service``):
  ``GET .../IncomingPhoneNumbers.json`` (``PhoneNumber`` filter: a partial number, ``*`` for any
  digit; ``FriendlyName``; paged like Messages), ``GET``/``POST .../IncomingPhoneNumbers/{PN}.json``
  (``SmsUrl``, ``SmsMethod``, ``StatusCallback``, ...); Messaging ``GET /v1/Services``,
  ``GET``/``POST /v1/Services/{MG}`` (``InboundRequestUrl``, ``InboundMethod``, ``StatusCallback``,
  ...), paged with ``meta`` as Twilio's v1 APIs are; ``GET /v2/Channels/Senders?Channel=whatsapp``
  (the account's WhatsApp senders). A bad URL or method gets ``400`` code ``21502``/``20001``; every
  accepted update is recorded in ``configuration_updates``.
* Media: ``add_media`` stores bytes behind ``GET .../Messages/{MM}/Media/{ME}``, which needs
  Basic auth and, like Twilio, answers with a ``307`` redirect to a short-lived CDN URL.
* Programmable failures (``fail_next``/``delay_next``), scoped to one endpoint if wanted, and
  a standing delay on every create (``answer_creates_after``: created after the delay;
  ``hold_create_answers``: created at once, answered after the delay), as when Twilio is slow.
* Every request is recorded (``requests``, ``sent_messages``, ``typing_indicators``), and
  ``create_counts`` counts the creates of each distinct message (to, body/template, media);
  ``wait_for_sent(n, timeout)`` blocks until ``n`` messages were accepted, woken by each.
* Throughput: ``limit_sends_per_second(n)`` refuses creates beyond ``n`` per sender in any
  second with ``429`` / ``20429`` (``throttled`` lists them), as a throttled account sees.

Pointing the real client at the fake (checked with twilio 9.13)::

    from twilio.http.async_http_client import AsyncTwilioHttpClient
    from twilio.rest import Client

    with FakeTwilio() as fake:
        fake.add_account("AC" + "0" * 32, "token")
        client = Client("AC" + "0" * 32, "token", http_client=AsyncTwilioHttpClient(timeout=5))
        client.api.base_url = fake.base_url        # Accounts, Messages (api.twilio.com)
        client.messaging.base_url = fake.base_url  # typing indicator (messaging.twilio.com)
        await client.messages.create_async(to="whatsapp:+15551230000",
                                           from_="whatsapp:+15557650000", body="hi")

``client.api`` and ``client.messaging`` are cached ``Domain`` objects whose ``absolute_url``
joins ``base_url`` with the resource path, so setting ``base_url`` once redirects every
request of that domain. The sync client (``Client(sid, token)`` with its default
``TwilioHttpClient``) works the same way. Do not set ``edge``/``region`` (or ``TWILIO_EDGE``/
``TWILIO_REGION``): they rewrite the hostname and would mangle ``127.0.0.1``.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hmac
import json
import re
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from .twilio_signing import new_sid, signed_headers

API_VERSION = "2010-04-01"
MAX_BODY_CHARS = 1600

Scope = Literal["accounts", "messages", "typing", "media", "content", "numbers", "services", "senders"]
SCOPES: tuple[str, ...] = ("accounts", "messages", "typing", "media", "content", "numbers", "services", "senders")

# Error texts, close to what Twilio puts in its error bodies (twilio.com/docs/api/errors).
ERROR_MESSAGES: dict[int, str] = {
    20001: "Invalid parameter",
    20003: "Authenticate",
    20004: "Method not allowed",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service is unavailable. Please try again",
    21211: "Invalid 'To' Phone Number",
    21502: "Invalid callback URL",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    21656: "The ContentVariables Parameter is invalid.",
    21658: "A Content Variable exceeds the 1600 character limit.",
    63015: "Channel Sandbox can only send messages to phone numbers that have joined the Sandbox",
    63016: (
        "Failed to send freeform message because you are outside the allowed window. "
        "If you are using WhatsApp, please use a Message Template."
    ),
    63018: "Rate limit exceeded for Channel",
}
_DEFAULT_CODE_FOR_STATUS = {401: 20003, 404: 20404, 405: 20004, 429: 20429, 500: 20500, 503: 20503}

_ACCOUNT_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)\.json$")
_MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")
_MESSAGE_PATH = re.compile(
    r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json$"
)
_MEDIA_PATH = re.compile(
    r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages/(?P<message>[^/]+)/Media/(?P<media>[^/.]+)$"
)
_TYPING_PATH = re.compile(r"^/v2/Indicators/Typing\.json$")
# The Content API (content.twilio.com): templates and rich content, JSON bodies.
_CONTENTS_PATH = re.compile(r"^/v1/Content$")
_CONTENT_APPROVALS_PATH = re.compile(r"^/v1/ContentAndApprovals$")
_APPROVAL_CREATE_PATH = re.compile(r"^/v1/Content/(?P<sid>HX[0-9a-f]{32})/ApprovalRequests/whatsapp$")
# Limits of the session (in-window) interactive types WhatsApp shows.
MAX_QUICK_REPLIES = 3
MAX_LIST_ITEMS = 10
_NUMBERS_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/IncomingPhoneNumbers\.json$")
_NUMBER_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/IncomingPhoneNumbers/(?P<sid>[^/]+)\.json$")
_SERVICES_PATH = re.compile(r"^/v1/Services$")
_SERVICE_PATH = re.compile(r"^/v1/Services/(?P<sid>[^/]+)$")
_SENDERS_PATH = re.compile(r"^/v2/Channels/Senders$")
_CDN_PATH = re.compile(r"^/cdn/media/(?P<media>[^/]+)$")
# WhatsApp (or plain) E.164 address, the shape Twilio accepts in To/From.
_ADDRESS = re.compile(r"^(?:whatsapp:)?\+[1-9]\d{6,14}$")
_MESSAGE_SID = re.compile(r"^(?:SM|MM)[0-9a-f]{32}$")
_SENT_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2}Z)?$")
_CHUNK_SIZE = 1024
_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("account", _ACCOUNT_PATH),
    ("messages", _MESSAGES_PATH),
    ("message", _MESSAGE_PATH),
    ("media", _MEDIA_PATH),
    ("typing", _TYPING_PATH),
    ("contents", _CONTENTS_PATH),
    ("content_approvals", _CONTENT_APPROVALS_PATH),
    ("approval_create", _APPROVAL_CREATE_PATH),
    ("numbers", _NUMBERS_PATH),
    ("number", _NUMBER_PATH),
    ("services", _SERVICES_PATH),
    ("service", _SERVICE_PATH),
    ("senders", _SENDERS_PATH),
)
# Which ``fail_next`` scope each route belongs to.
_ROUTE_SCOPES = {
    "account": "accounts", "messages": "messages", "message": "messages", "media": "media", "typing": "typing",
    "contents": "content", "content_approvals": "content", "approval_create": "content",
    "numbers": "numbers", "number": "numbers", "services": "services", "service": "services", "senders": "senders",
}
# Fields an update may set, Twilio's form name -> resource key; which of them are URLs or methods.
_NUMBER_FIELDS = {
    "FriendlyName": "friendly_name", "SmsUrl": "sms_url", "SmsMethod": "sms_method",
    "SmsFallbackUrl": "sms_fallback_url", "SmsFallbackMethod": "sms_fallback_method",
    "StatusCallback": "status_callback", "StatusCallbackMethod": "status_callback_method",
    "VoiceUrl": "voice_url", "VoiceMethod": "voice_method",
}
_SERVICE_FIELDS = {
    "FriendlyName": "friendly_name", "InboundRequestUrl": "inbound_request_url", "InboundMethod": "inbound_method",
    "FallbackUrl": "fallback_url", "FallbackMethod": "fallback_method", "StatusCallback": "status_callback",
    "UseInboundWebhookOnNumber": "use_inbound_webhook_on_number", "StickySender": "sticky_sender",
}
_URL_FIELDS = frozenset({"SmsUrl", "SmsFallbackUrl", "StatusCallback", "VoiceUrl", "InboundRequestUrl", "FallbackUrl"})
_METHOD_FIELDS = frozenset({"SmsMethod", "SmsFallbackMethod", "StatusCallbackMethod", "VoiceMethod", "InboundMethod", "FallbackMethod"})
_BOOLEAN_FIELDS = frozenset({"UseInboundWebhookOnNumber", "StickySender"})


def twilio_error_body(status: int, code: int | None = None, message: str | None = None) -> dict[str, Any]:
    """Twilio's REST error JSON: ``{"code", "message", "more_info", "status"}``."""
    code = code if code is not None else _DEFAULT_CODE_FOR_STATUS.get(status, 20500)
    return {
        "code": code,
        "message": message or ERROR_MESSAGES.get(code, f"Error {code}"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _rfc9457_error_body(status: int, code: int, message: str, path: str) -> dict[str, Any]:
    """The RFC 9457 problem-details shape newer Twilio APIs use (-> ``TwilioServiceException``)."""
    return {
        "type": f"https://www.twilio.com/docs/errors/{code}",
        "title": message,
        "status": status,
        "code": code,
        "detail": message,
        "instance": path,
    }


def _rfc2822_now() -> str:
    """Twilio's REST date format, e.g. ``Thu, 24 Aug 2023 05:01:45 +0000``."""
    return email.utils.formatdate(usegmt=False).replace("-0000", "+0000")


@dataclass
class RecordedRequest:
    """One request the fake received (recorded on arrival). ``headers`` never has ``Authorization``."""

    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    auth_username: str | None
    headers: dict[str, str]
    time: float
    scope: str | None
    status: int | None = None  # the status answered: None while pending, 0 if the connection was dropped

    def first(self, name: str) -> str | None:
        """The first value of form field ``name``, or ``None``."""
        values = self.form.get(name)
        return values[0] if values else None


@dataclass
class _Account:
    sid: str
    auth_token: str
    friendly_name: str
    status: str
    date_created: str


@dataclass
class _Media:
    account_sid: str
    message_sid: str
    content: bytes
    content_type: str
    cdn_token: str
    chunked: bool


@dataclass
class _FailureRule:
    remaining: int
    status: int | None  # None: answer normally after ``delay``
    code: int | None
    message: str | None
    retry_after: str | None
    delay: float
    scope: str | None
    rfc9457: bool
    disconnect: bool


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    disconnect: bool = False
    chunked: bool = False  # Transfer-Encoding: chunked, no Content-Length


def _json_reply(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> _Reply:
    return _Reply(status, json.dumps(payload).encode(), headers=dict(headers or {}))


def _error_reply(
    status: int,
    code: int | None = None,
    message: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
) -> _Reply:
    return _json_reply(status, twilio_error_body(status, code, message), headers)


class _Handler(BaseHTTPRequestHandler):
    """Turns each HTTP request into a call on the owning ``FakeTwilio``."""

    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections end on their own
    disable_nagle_algorithm = True  # headers and body go out as separate writes; no 40 ms stalls

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, open_=True)

    def finish(self) -> None:
        self.server.fake._track(self.connection, open_=False)
        super().finish()

    def _dispatch(self) -> None:
        self.server.fake._serve(self)

    do_GET = do_POST = do_PUT = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Stay quiet: test output is for the tests."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops bursts of connects (1 s SYN retry)

    def __init__(self, fake: FakeTwilio, address: tuple[str, int]) -> None:
        self.fake = fake
        super().__init__(address, _Handler)


class FakeTwilio:
    """A faithful loopback Twilio REST server; use as a context manager (see module docs)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        # A condition, so a waiter (wait_for_sent) is woken by each accepted message instead
        # of copying the records every millisecond under this lock, which held the fake's
        # handlers back by up to 200 ms once a run had sent a thousand messages.
        self._lock = threading.Condition(threading.Lock())
        self._closing = threading.Event()
        self._accounts: dict[str, _Account] = {}
        self._api_keys: dict[str, tuple[str, str]] = {}  # key sid -> (account sid, secret)
        self._media: dict[str, _Media] = {}
        self._messages: dict[str, dict[str, Any]] = {}
        self._failures: list[_FailureRule] = []
        self._requests: list[RecordedRequest] = []
        self._sent: list[dict[str, Any]] = []
        self._typing: list[dict[str, Any]] = []
        self._numbers: dict[str, dict[str, Any]] = {}  # PN sid -> IncomingPhoneNumber resource
        self._services: dict[str, dict[str, Any]] = {}  # MG sid -> Messaging Service resource
        self._wa_senders: dict[str, dict[str, Any]] = {}  # XE sid -> WhatsApp sender (Senders API)
        self._updates: list[dict[str, Any]] = []
        self._connections: set[socket.socket] = set()
        self._create_delay = 0.0
        self._create_answer_hold = 0.0
        self._sender_rate: int | None = None  # creates per second per From sender (limit_sends_per_second)
        self._sender_sends: dict[str, list[float]] = {}
        self._throttled: list[dict[str, Any]] = []
        self._contents: dict[str, dict[str, Any]] = {}  # Content API resources by HX sid
        self._server = _Server(self, (host, port))
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: set it as ``client.api.base_url`` and ``client.messaging.base_url``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeTwilio:
        """Serve in a background thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                name="fake-twilio", daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, free the port and drop open keep-alive connections; delays are cut short."""
        self._closing.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone

    def _track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- set-up ----------------------------------------------------------------------------

    def add_account(
        self, sid: str, auth_token: str, *, friendly_name: str | None = None, status: str = "active"
    ) -> None:
        """Register an account whose SID + Auth Token authenticate requests."""
        if not sid.startswith("AC"):
            raise ValueError(f"account sid must start with 'AC', got {sid!r}")
        with self._lock:
            self._accounts[sid] = _Account(
                sid=sid,
                auth_token=auth_token,
                friendly_name=friendly_name or f"Test account {sid[-6:]}",
                status=status,
                date_created=_rfc2822_now(),
            )

    def _require_account(self, account_sid: str, doing: str) -> None:
        """Refuse to seed something on an account the fake does not have (lock held)."""
        if account_sid not in self._accounts:
            raise ValueError(f"add_account({account_sid!r}) before {doing}")

    def add_api_key(self, account_sid: str, key_sid: str, secret: str) -> None:
        """Register an API key (``SK…`` + secret) that authenticates as ``account_sid``."""
        with self._lock:
            self._require_account(account_sid, "adding its API keys")
            self._api_keys[key_sid] = (account_sid, secret)

    def add_media(
        self,
        account_sid: str,
        content: bytes,
        content_type: str,
        *,
        message_sid: str | None = None,
        chunked: bool = False,
    ) -> str:
        """Store media of an (inbound) message and return its Twilio media URL (Basic auth needed).

        ``chunked=True`` serves it without ``Content-Length``, so a size cap must hold while streaming.
        """
        media_sid = new_sid("ME")
        message_sid = message_sid or new_sid("MM")
        with self._lock:
            self._require_account(account_sid, "adding media")
            self._media[media_sid] = _Media(
                account_sid, message_sid, content, content_type, secrets.token_urlsafe(16), chunked
            )
        return f"{self.base_url}/{API_VERSION}/Accounts/{account_sid}/Messages/{message_sid}/Media/{media_sid}"

    def add_phone_number(
        self,
        account_sid: str,
        phone_number: str,
        *,
        friendly_name: str | None = None,
        whatsapp: bool = False,
        sms_url: str = "",
    ) -> str:
        """Give ``account_sid`` the number ``phone_number`` (``+E164``); return its ``PN`` sid.

        ``whatsapp=True`` also registers it as an online WhatsApp sender (``whatsapp:+E164``).
        """
        if not re.match(r"^\+[1-9]\d{6,14}$", phone_number):
            raise ValueError(f"phone_number: expected +E164, got {phone_number!r}")
        sid = new_sid("PN")
        now = _rfc2822_now()
        with self._lock:
            self._require_account(account_sid, "adding its phone numbers")
            self._numbers[sid] = {
                "account_sid": account_sid,
                "address_requirements": "none",
                "api_version": API_VERSION,
                "beta": False,
                "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
                "date_created": now,
                "date_updated": now,
                "friendly_name": friendly_name or phone_number,
                "origin": "twilio",
                "phone_number": phone_number,
                "sid": sid,
                "sms_application_sid": "",
                "sms_fallback_method": "POST",
                "sms_fallback_url": "",
                "sms_method": "POST",
                "sms_url": sms_url,
                "status": "in-use",
                "status_callback": "",
                "status_callback_method": "POST",
                "uri": f"/{API_VERSION}/Accounts/{account_sid}/IncomingPhoneNumbers/{sid}.json",
                "voice_method": "POST",
                "voice_url": "",
            }
        if whatsapp:
            self.add_whatsapp_sender(account_sid, f"whatsapp:{phone_number}", friendly_name=friendly_name)
        return sid

    def add_whatsapp_sender(
        self, account_sid: str, sender_id: str, *, friendly_name: str | None = None, status: str = "ONLINE"
    ) -> str:
        """Register a WhatsApp sender (``whatsapp:+E164``) on the account; return its ``XE`` sid."""
        sid = new_sid("XE")
        with self._lock:
            self._require_account(account_sid, "adding its senders")
            self._wa_senders[sid] = {
                "sid": sid,
                "status": status,
                "sender_id": sender_id,
                "friendly_name": friendly_name,
                "configuration": {"waba_id": "1" + "0" * 14},
                "webhook": {
                    "callback_url": None, "callback_method": "POST", "fallback_url": None,
                    "fallback_method": "POST", "status_callback_url": None, "status_callback_method": "POST",
                },
                "profile": {"name": friendly_name or "Test business"},
                "url": f"{self.base_url}/v2/Channels/Senders/{sid}",
                "_account_sid": account_sid,
            }
        return sid

    def add_messaging_service(
        self,
        account_sid: str,
        friendly_name: str,
        *,
        inbound_request_url: str | None = None,
        use_inbound_webhook_on_number: bool = False,
    ) -> str:
        """Create a Messaging Service on the account; return its ``MG`` sid."""
        sid = new_sid("MG")
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._lock:
            self._require_account(account_sid, "adding its Messaging Services")
            self._services[sid] = {
                "account_sid": account_sid,
                "area_code_geomatch": True,
                "date_created": now,
                "date_updated": now,
                "fallback_method": "POST",
                "fallback_to_long_code": True,
                "fallback_url": None,
                "friendly_name": friendly_name,
                "inbound_method": "POST",
                "inbound_request_url": inbound_request_url,
                "links": {"phone_numbers": f"{self.base_url}/v1/Services/{sid}/PhoneNumbers"},
                "mms_converter": True,
                "scan_message_content": "inherit",
                "sid": sid,
                "smart_encoding": True,
                "status_callback": None,
                "sticky_sender": True,
                "synchronous_validation": False,
                "url": f"{self.base_url}/v1/Services/{sid}",
                "use_inbound_webhook_on_number": use_inbound_webhook_on_number,
                "usecase": "undeclared",
                "validity_period": 14400,
            }
        return sid

    def fail_next(
        self,
        n: int = 1,
        status: int | None = None,
        *,
        code: int | None = None,
        message: str | None = None,
        retry_after: float | str | None = "auto",
        delay: float = 0.0,
        scope: Scope | None = None,
        rfc9457: bool = False,
        disconnect: bool = False,
    ) -> None:
        """Make the next ``n`` authenticated requests (in ``scope``, or any) fail.

        ``status`` defaults to 400 when a ``code`` is given (429 for code 20429), else 500.
        ``retry_after="auto"`` sends ``Retry-After: 1`` on 429 only; a number sends that value;
        ``None`` sends no header. ``delay`` waits that many seconds before answering.
        ``rfc9457`` answers with the problem-details body (-> ``TwilioServiceException``);
        ``disconnect`` closes the connection without any answer.
        """
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        if scope is not None and scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES} or None, got {scope!r}")
        if status is None:
            status = (429 if code == 20429 else 400) if code is not None else 500
        if retry_after == "auto":
            retry_after_header = "1" if status == 429 else None
        elif retry_after is None:
            retry_after_header = None
        else:
            retry_after_header = f"{retry_after:g}" if isinstance(retry_after, float | int) else str(retry_after)
        with self._lock:
            self._failures.append(
                _FailureRule(n, status, code, message, retry_after_header, delay, scope, rfc9457, disconnect)
            )

    def delay_next(self, n: int, seconds: float, *, scope: Scope | None = None) -> None:
        """Answer the next ``n`` requests (in ``scope``) normally, but only after ``seconds``."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        if scope is not None and scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES} or None, got {scope!r}")
        with self._lock:
            self._failures.append(_FailureRule(n, None, None, None, None, seconds, scope, False, False))

    def answer_creates_after(self, seconds: float) -> None:
        """From now on answer every Messages create only after ``seconds`` (0 ends it).

        The message is created when the delay is over, whether or not the client still
        waits: as at Twilio, a create whose caller died on the way may still go out.
        """
        if seconds < 0:
            raise ValueError(f"seconds must be 0 or more, got {seconds!r}")
        with self._lock:
            self._create_delay = float(seconds)

    def hold_create_answers(self, seconds: float) -> None:
        """From now on create each message at once but hold the answer ``seconds`` (0 ends it).

        The message exists (``sent_messages``, ``status_callback_params``) while its creator
        still waits, as when Twilio's answer is slow and its status callbacks come first.
        """
        if seconds < 0:
            raise ValueError(f"seconds must be 0 or more, got {seconds!r}")
        with self._lock:
            self._create_answer_hold = float(seconds)

    def limit_sends_per_second(self, n: int | None) -> None:
        """From now on accept at most ``n`` creates per sender (``From``) in any second; beyond
        that answer ``429`` with code ``20429`` and ``Retry-After: 1`` (``None`` ends it).

        Creates through a Messaging Service (no ``From``) are not limited: Twilio queues them.
        Refused creates are in ``throttled``.
        """
        if n is not None and n < 1:
            raise ValueError(f"n must be at least 1 or None, got {n!r}")
        with self._lock:
            self._sender_rate = n
            self._sender_sends.clear()

    @property
    def throttled(self) -> list[dict[str, Any]]:
        """Creates refused by ``limit_sends_per_second``: to, from_, body, time."""
        with self._lock:
            return [dict(t) for t in self._throttled]

    def add_content(
        self,
        account_sid: str,
        friendly_name: str,
        types: dict[str, Any],
        *,
        language: str = "en",
        variables: dict[str, str] | None = None,
        approval: tuple[str, str, str] | None = None,
    ) -> str:
        """Store a Content API resource (a template made in the console) and return its HX sid.

        ``approval=(name, category, status)`` is its WhatsApp approval request, e.g.
        ``("order_update", "UTILITY", "approved")``.
        """
        problem = _content_problem(types)
        if problem is not None:
            raise ValueError(problem)
        with self._lock:
            if account_sid not in self._accounts:
                raise ValueError(f"add_account({account_sid!r}) before adding content")
        sid = self._store_content(account_sid, friendly_name, language, variables or {}, types)
        if approval is not None:
            self.set_content_approval(sid, *approval)
        return sid

    def set_content_approval(self, content_sid: str, name: str, category: str, status: str) -> None:
        """Set a content's WhatsApp approval request (``status``: received, pending, approved, rejected, ...)."""
        with self._lock:
            content = self._contents[content_sid]
            content["approval"] = {
                "name": name, "category": category, "content_type": next(iter(content["types"]), ""),
                "status": status, "rejection_reason": "", "allow_category_change": True, "type": "whatsapp",
            }

    @property
    def contents(self) -> list[dict[str, Any]]:
        """Content API resources, oldest first, as the API returns them (plus ``approval``)."""
        with self._lock:
            return [dict(c) for c in self._contents.values()]

    def set_message_status(self, message_sid: str, status: str, error_code: int | None = None) -> None:
        """Move a sent message to ``status`` (as Twilio would), so fetches reflect it."""
        with self._lock:
            message = self._messages[message_sid]
            message["status"] = status
            message["error_code"] = error_code
            message["error_message"] = ERROR_MESSAGES.get(error_code) if error_code else None
            message["date_updated"] = _rfc2822_now()

    # --- inspection ------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in order (snapshots: a pending one has ``status=None``)."""
        with self._lock:
            return [replace(r) for r in self._requests]

    @property
    def sent_messages(self) -> list[dict[str, Any]]:
        """Messages Twilio accepted (201), in order: to, from_, body, media_urls, content_sid, …"""
        with self._lock:
            return [dict(m) for m in self._sent]

    def wait_for_sent(self, count: int, timeout: float) -> bool:
        """Block until Twilio has accepted ``count`` messages in all (since the last
        :meth:`reset`), woken by each one as it is accepted; False if ``timeout`` seconds
        passed first. What a benchmark timing replies should use: polling ``sent_messages``
        copies every record each time."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._sent) >= count, timeout)

    @property
    def create_counts(self) -> Counter[tuple[str, str, tuple[str, ...]]]:
        """How many times each distinct message was created: ``(to, body or ContentSid, media URLs)``.

        A count above 1 is a duplicate the customer received.
        """
        with self._lock:
            return Counter(
                (m["to"], m["body"] or m["content_sid"] or "", tuple(m["media_urls"])) for m in self._sent
            )

    @property
    def typing_indicators(self) -> list[dict[str, Any]]:
        """Accepted typing indicators: message_id, channel, account_sid, auth_username, time."""
        with self._lock:
            return [dict(t) for t in self._typing]

    def phone_number(self, sid_or_number: str) -> dict[str, Any]:
        """The IncomingPhoneNumber resource, by ``PN`` sid or ``+E164`` number (KeyError if none)."""
        with self._lock:
            for number in self._numbers.values():
                if sid_or_number in (number["sid"], number["phone_number"]):
                    return dict(number)
        raise KeyError(f"no phone number {sid_or_number!r} in this fake")

    def messaging_service(self, sid: str) -> dict[str, Any]:
        """The Messaging Service resource ``MG...`` (KeyError if none)."""
        with self._lock:
            return dict(self._services[sid])

    @property
    def configuration_updates(self) -> list[dict[str, Any]]:
        """Accepted updates of numbers and services, in order: ``resource`` (``"phone_number"`` or
        ``"messaging_service"``), ``sid``, ``account_sid``, ``auth_username`` and ``fields`` (the
        form fields as sent, e.g. ``{"SmsUrl": ..., "SmsMethod": "POST"}``)."""
        with self._lock:
            return [dict(u, fields=dict(u["fields"])) for u in self._updates]

    def message(self, message_sid: str) -> dict[str, Any]:
        """The stored Message resource (as the REST API would return it)."""
        with self._lock:
            return dict(self._messages[message_sid])

    def status_callback_params(
        self, message_sid: str, status: str, error_code: int | None = None
    ) -> dict[str, str]:
        """The form fields Twilio posts to a message's StatusCallback for ``status``.

        Also records the new status on the message, as Twilio's own state moves with it.
        """
        with self._lock:
            message = self._messages.get(message_sid)
            if message is None:
                raise KeyError(f"no message {message_sid!r} was sent through this fake")
        params: dict[str, str] = {
            "AccountSid": message["account_sid"],
            "ApiVersion": API_VERSION,
            "ChannelPrefix": "whatsapp",
            "ChannelInstallSid": "XE" + message["account_sid"][2:],
            "From": message["from"] or "",
            "To": message["to"],
            "MessageSid": message_sid,
            "MessageStatus": status,
            "SmsSid": message_sid,
            "SmsStatus": status,
        }
        if message.get("messaging_service_sid"):
            params["MessagingServiceSid"] = message["messaging_service_sid"]
        if status == "read":
            params["EventType"] = "READ"
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
            params["ChannelStatusMessage"] = ERROR_MESSAGES.get(error_code, f"Error {error_code}")
        self.set_message_status(message_sid, status, error_code)
        return params

    async def push_status_callback(
        self,
        message_sid: str,
        status: str,
        error_code: int | None = None,
        *,
        http: httpx.AsyncClient,
        url: str | None = None,
    ) -> httpx.Response:
        """POST a signed status callback (as Twilio does) to the message's StatusCallback or ``url``."""
        with self._lock:
            message = self._messages[message_sid]
            target = url or message.get("status_callback")
            auth_token = self._accounts[message["account_sid"]].auth_token
        if not target:
            raise ValueError(f"message {message_sid!r} has no StatusCallback; pass url=")
        params = self.status_callback_params(message_sid, status, error_code)
        return await http.post(target, data=params, headers=signed_headers(auth_token, target, params))

    def reset(self) -> None:
        """Forget recorded requests, messages, updates and pending failures (accounts, their
        numbers, services and senders stay, with what was set on them)."""
        with self._lock:
            self._requests.clear()
            self._sent.clear()
            self._typing.clear()
            self._messages.clear()
            self._failures.clear()
            self._throttled.clear()
            self._sender_sends.clear()
            self._updates.clear()

    # --- serving ---------------------------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        """Read one request, answer it and record it."""
        split = urlsplit(handler.path)
        path = split.path
        length = int(handler.headers.get("Content-Length") or 0)
        raw_body = handler.rfile.read(length) if length else b""
        form: dict[str, list[str]] = {}
        json_body: Any = None
        content_type = handler.headers.get("Content-Type") or ""
        if raw_body and "application/x-www-form-urlencoded" in content_type:
            form = parse_qs(raw_body.decode("utf-8"), keep_blank_values=True)
        elif raw_body and "application/json" in content_type:
            try:
                json_body = json.loads(raw_body)
            except ValueError:
                json_body = _BAD_JSON
        query = parse_qs(split.query, keep_blank_values=True)
        username, password = _basic_auth(handler.headers.get("Authorization"))
        route = _route(path)
        scope = _ROUTE_SCOPES[route[0]] if route else None
        recorded = RecordedRequest(
            method=handler.command, path=path, query=query, form=form, auth_username=username,
            headers={k: v for k, v in handler.headers.items() if k.lower() != "authorization"},
            time=time.time(), scope=scope,
        )
        with self._lock:
            self._requests.append(recorded)

        reply = self._answer(handler.command, path, query, form, username, password, json_body)

        with self._lock:
            recorded.status = 0 if reply.disconnect else reply.status
        _write(handler, reply)

    def _answer(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        form: dict[str, list[str]],
        username: str | None,
        password: str | None,
        json_body: Any = None,
    ) -> _Reply:
        cdn = _CDN_PATH.match(path)
        if cdn:  # pre-signed CDN URL: no Basic auth, a token instead
            return self._serve_cdn(cdn["media"], query)
        route = _route(path)
        if route is None:
            return _error_reply(404, 20404, f"The requested resource {path} was not found")
        owner = self._authenticate(username, password)
        if owner is None:
            return _error_reply(401, 20003, headers={"WWW-Authenticate": 'Basic realm="Twilio API"'})

        rule = self._take_failure(_ROUTE_SCOPES[route[0]])
        if rule is not None:
            if rule.delay:
                self._closing.wait(rule.delay)
            if rule.disconnect:
                return _Reply(0, disconnect=True)
            if rule.status is not None:
                return self._failure_reply(rule, path)

        name, match = route
        if name == "typing":
            return self._typing_indicator(method, form, owner, username)
        if name in ("contents", "content_approvals", "approval_create"):
            return self._content_api(name, method, match, query, json_body, owner)
        if name in ("services", "service"):
            return self._messaging_services(method, path, query, form, owner, username, match.groupdict().get("sid"))
        if name == "senders":
            return self._whatsapp_senders(method, path, query, owner)
        account_sid = match["account"]
        with self._lock:
            known = account_sid in self._accounts
        if account_sid != owner or not known:
            return _error_reply(404, 20404, f"The requested resource {path} was not found")
        if name == "account":
            return self._account(method, account_sid)
        if name == "messages":
            if method == "POST":
                with self._lock:
                    create_delay = self._create_delay
                if create_delay:
                    self._closing.wait(create_delay)
                created = self._create_message(account_sid, form, username)
                with self._lock:
                    hold = self._create_answer_hold
                if hold:
                    self._closing.wait(hold)
                return created
            if method == "GET":
                return self._list_messages(account_sid, path, query)
            return _error_reply(405)
        if name == "message":
            return self._fetch_message(method, account_sid, match["sid"], path)
        if name == "numbers":
            return self._list_numbers(method, account_sid, path, query)
        if name == "number":
            return self._number(method, account_sid, match["sid"], path, form, username)
        return self._serve_media(method, account_sid, match["message"], match["media"], path)

    def _authenticate(self, username: str | None, password: str | None) -> str | None:
        """The account SID the credentials act for, or ``None`` if they are wrong."""
        if username is None or password is None:
            return None
        with self._lock:
            account = self._accounts.get(username)
            if account is not None and hmac.compare_digest(account.auth_token, password):
                return account.sid
            key = self._api_keys.get(username)
            if key is not None and hmac.compare_digest(key[1], password):
                return key[0]
        return None

    def _take_failure(self, scope: str) -> _FailureRule | None:
        with self._lock:
            for rule in self._failures:
                if rule.scope is None or rule.scope == scope:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._failures.remove(rule)
                    return rule
        return None

    def _failure_reply(self, rule: _FailureRule, path: str) -> _Reply:
        assert rule.status is not None
        status = rule.status
        code = rule.code if rule.code is not None else _DEFAULT_CODE_FOR_STATUS.get(status, 20500)
        message = rule.message or ERROR_MESSAGES.get(code, f"Error {code}")
        headers = {"Retry-After": rule.retry_after} if rule.retry_after is not None else {}
        if rule.rfc9457:
            return _Reply(
                status, json.dumps(_rfc9457_error_body(status, code, message, path)).encode(),
                content_type="application/problem+json", headers=headers,
            )
        return _error_reply(status, code, message, headers=headers)

    def _account(self, method: str, account_sid: str) -> _Reply:
        if method != "GET":
            return _error_reply(405)
        with self._lock:
            account = self._accounts[account_sid]
        return _json_reply(200, {
            "auth_token": account.auth_token,  # Twilio returns it to its owner; never log this body
            "date_created": account.date_created,
            "date_updated": account.date_created,
            "friendly_name": account.friendly_name,
            "owner_account_sid": account.sid,
            "sid": account.sid,
            "status": account.status,
            "subresource_uris": {
                "messages": f"/{API_VERSION}/Accounts/{account.sid}/Messages.json",
            },
            "type": "Full",
            "uri": f"/{API_VERSION}/Accounts/{account.sid}.json",
        })

    def _create_message(
        self, account_sid: str, form: dict[str, list[str]], username: str | None
    ) -> _Reply:
        def one(name: str) -> str | None:
            values = form.get(name)
            return values[0] if values else None

        to, from_, service = one("To"), one("From"), one("MessagingServiceSid")
        body, content_sid, content_variables = one("Body"), one("ContentSid"), one("ContentVariables")
        media_urls = [u for u in form.get("MediaUrl", []) if u]
        if not to:
            return _error_reply(400, 21604)
        if not _ADDRESS.match(to):
            return _error_reply(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not from_ and not service:
            return _error_reply(400, 21603)
        if not body and not content_sid and not media_urls:
            return _error_reply(400, 21602)
        # Counted the stricter way (UTF-16 units: an emoji beyond the BMP is two), as Twilio may.
        if body is not None and len(body.encode("utf-16-le")) // 2 > MAX_BODY_CHARS:
            return _error_reply(400, 21617)
        if content_variables is not None:
            try:
                variables = json.loads(content_variables)
            except ValueError:
                return _error_reply(400, 21656)
            if not isinstance(variables, dict):
                return _error_reply(400, 21656)
            if any(len(str(v)) > MAX_BODY_CHARS for v in variables.values()):
                return _error_reply(400, 21658)

        if from_ and not service and self._over_sender_rate(from_, to, body):
            return _error_reply(429, 20429, headers={"Retry-After": "1"})

        sid = new_sid("MM" if media_urls else "SM")
        now = _rfc2822_now()
        sent_on = datetime.now(UTC).date()
        resource = {
            "account_sid": account_sid,
            "api_version": API_VERSION,
            "body": body or "",
            "date_created": now,
            "date_sent": now,  # the fake sends at once
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": from_,
            "messaging_service_sid": service,
            "num_media": str(len(media_urls)),
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if service else "queued",
            "subresource_uris": {"media": f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}/Media.json"},
            "to": to,
            "uri": f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json",
            # Not part of the REST resource; kept for callbacks and filters, stripped before answering.
            "status_callback": one("StatusCallback"),
            "sent_on": sent_on,
        }
        record = {
            "sid": sid,
            "to": to,
            "from_": from_,
            "messaging_service_sid": service,
            "body": body,
            "media_urls": media_urls,
            "content_sid": content_sid,
            "content_variables": content_variables,
            "persistent_action": list(form.get("PersistentAction", [])),
            "status_callback": one("StatusCallback"),
            "account_sid": account_sid,
            "auth_username": username,
            "time": time.time(),
        }
        with self._lock:
            self._messages[sid] = resource
            self._sent.append(record)
            self._lock.notify_all()
        return _json_reply(201, _public(resource))

    def _over_sender_rate(self, sender: str, to: str, body: str | None) -> bool:
        """Count a create from ``sender`` against ``limit_sends_per_second``; True: refuse it."""
        with self._lock:
            rate = self._sender_rate
            if rate is None:
                return False
            now = time.monotonic()
            recent = [t for t in self._sender_sends.get(sender, []) if t > now - 1.0]
            if len(recent) >= rate:
                self._sender_sends[sender] = recent
                self._throttled.append({"to": to, "from_": sender, "body": body, "time": time.time()})
                return True
            recent.append(now)
            self._sender_sends[sender] = recent
            return False

    def _list_messages(self, account_sid: str, path: str, query: dict[str, list[str]]) -> _Reply:
        """Twilio's Messages list: filters, newest first, one page (``PageSize``, ``Page``)."""

        def one(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        try:
            on, before, after = (_sent_date(name, one(name)) for name in ("DateSent", "DateSent<", "DateSent>"))
            page_size, page = _paging(query)
        except ValueError as exc:
            return _error_reply(400, 20001, str(exc))
        to, from_ = one("To"), one("From")

        def matches(m: dict[str, Any]) -> bool:
            sent_on: date = m["sent_on"]
            return (
                m["account_sid"] == account_sid
                and (to is None or m["to"] == to)
                and (from_ is None or m["from"] == from_)
                and (on is None or sent_on == on)
                and (before is None or sent_on <= before)
                and (after is None or sent_on >= after)
            )

        with self._lock:
            found = [_public(m) for m in self._messages.values() if matches(m)]
        found.reverse()  # Twilio lists newest first
        filters = ("To", "From", "DateSent", "DateSent<", "DateSent>")
        return _json_reply(200, _v2010_page("messages", found, path, query, page, page_size, filters))

    def _fetch_message(self, method: str, account_sid: str, sid: str, path: str) -> _Reply:
        if method != "GET":
            return _error_reply(405)
        with self._lock:
            message = self._messages.get(sid)
            payload = _public(message) if message is not None and message["account_sid"] == account_sid else None
        if payload is None:
            return _error_reply(404, 20404, f"The requested resource {path} was not found")
        return _json_reply(200, payload)

    def _list_numbers(self, method: str, account_sid: str, path: str, query: dict[str, list[str]]) -> _Reply:
        """IncomingPhoneNumbers: ``PhoneNumber`` (partial, ``*`` any digit), ``FriendlyName``, paged."""
        if method != "GET":
            return _error_reply(405)
        try:
            page_size, page = _paging(query)
        except ValueError as exc:
            return _error_reply(400, 20001, str(exc))
        wanted, friendly = _first(query, "PhoneNumber"), _first(query, "FriendlyName")
        # Twilio matches a partial number anywhere in it; '*' stands for any one digit.
        pattern = re.compile(re.escape(wanted).replace(r"\*", r"\d")) if wanted else None
        with self._lock:
            found = [
                dict(n) for n in self._numbers.values()
                if n["account_sid"] == account_sid
                and (pattern is None or pattern.search(n["phone_number"]))
                and (friendly is None or n["friendly_name"] == friendly)
            ]
        return _json_reply(200, _v2010_page("incoming_phone_numbers", found, path, query, page, page_size,
                                            ("PhoneNumber", "FriendlyName")))

    def _number(
        self, method: str, account_sid: str, sid: str, path: str, form: dict[str, list[str]], username: str | None
    ) -> _Reply:
        with self._lock:
            number = self._numbers.get(sid)
            if number is None or number["account_sid"] != account_sid:
                return _error_reply(404, 20404, f"The requested resource {path} was not found")
            return self._fetch_or_update(
                "phone_number", number, _NUMBER_FIELDS, method, form, username, _rfc2822_now()
            )

    def _fetch_or_update(
        self,
        resource: str,
        record: dict[str, Any],
        fields: Mapping[str, str],
        method: str,
        form: dict[str, list[str]],
        username: str | None,
        now: str,
    ) -> _Reply:
        """GET answers ``record``; POST checks and applies ``fields`` and records the update.
        Called with the lock held."""
        if method == "GET":
            return _json_reply(200, dict(record))
        if method != "POST":
            return _error_reply(405)
        problem = _check_update(form, fields)
        if problem is not None:
            return problem
        for name, key in fields.items():
            if name in form:
                value = form[name][0]
                record[key] = value == "true" if name in _BOOLEAN_FIELDS else value
        record["date_updated"] = now
        self._updates.append({
            "resource": resource, "sid": record["sid"], "account_sid": record["account_sid"],
            "auth_username": username, "fields": {k: v[0] for k, v in form.items()},
        })
        return _json_reply(200, dict(record))

    def _messaging_services(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        form: dict[str, list[str]],
        owner: str,
        username: str | None,
        sid: str | None,
    ) -> _Reply:
        """Messaging v1 Services of the authenticated account: list, fetch, update."""
        if sid is None:
            if method != "GET":
                return _error_reply(405)
            try:
                page_size, page = _paging(query)
            except ValueError as exc:
                return _error_reply(400, 20001, str(exc))
            with self._lock:
                found = [dict(s) for s in self._services.values() if s["account_sid"] == owner]
            return _json_reply(200, self._v1_page("services", found, path, page, page_size, {}))
        with self._lock:
            service = self._services.get(sid)
            if service is None or service["account_sid"] != owner:
                return _error_reply(404, 20404, f"The requested resource {path} was not found")
            return self._fetch_or_update(
                "messaging_service", service, _SERVICE_FIELDS, method, form, username,
                datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            )

    def _whatsapp_senders(self, method: str, path: str, query: dict[str, list[str]], owner: str) -> _Reply:
        """Senders API list (``Channel`` filter), paged with ``meta`` like Twilio's v2 APIs."""
        if method != "GET":
            return _error_reply(405)
        channel = _first(query, "Channel")
        if channel is not None and channel not in ("whatsapp", "rcs", "messenger"):
            return _error_reply(400, 20001, f"Invalid Channel {channel!r}")
        try:
            page_size, page = _paging(query)
        except ValueError as exc:
            return _error_reply(400, 20001, str(exc))
        with self._lock:
            found = [
                {k: v for k, v in s.items() if not k.startswith("_")}
                for s in self._wa_senders.values()
                if s["_account_sid"] == owner and (channel is None or s["sender_id"].startswith(channel + ":"))
            ]
        return _json_reply(200, self._v1_page("senders", found, path, page, page_size,
                                              {"Channel": channel} if channel else {}))

    def _v1_page(
        self, key: str, found: list[dict[str, Any]], path: str, page: int, page_size: int, filters: dict[str, str]
    ) -> dict[str, Any]:
        """A page of a newer Twilio API (v1/v2): records under ``key`` and a ``meta`` with absolute URLs."""
        start = page * page_size

        def url(number: int) -> str:
            return f"{self.base_url}{path}?{urlencode([*filters.items(), ('PageSize', page_size), ('Page', number)])}"

        more = start + page_size < len(found)
        return {
            key: found[start : start + page_size],
            "meta": {
                "page": page,
                "page_size": page_size,
                "first_page_url": url(0),
                "previous_page_url": url(page - 1) if page > 0 else None,
                "url": url(page),
                "next_page_url": f"{url(page + 1)}&PageToken=PA{page + 1}" if more else None,
                "key": key,
            },
        }

    def _typing_indicator(
        self, method: str, form: dict[str, list[str]], owner: str, username: str | None
    ) -> _Reply:
        if method != "POST":
            return _error_reply(405)
        message_id = (form.get("messageId") or [""])[0]
        channel = (form.get("channel") or [""])[0]
        if channel != "whatsapp":
            return _error_reply(400, 20001, f"Invalid channel {channel!r}: expected 'whatsapp'")
        if not _MESSAGE_SID.match(message_id):
            return _error_reply(400, 20001, f"Invalid messageId: {message_id!r}")
        with self._lock:
            self._typing.append({
                "message_id": message_id, "channel": channel, "account_sid": owner,
                "auth_username": username, "time": time.time(),
            })
        return _json_reply(200, {"success": True})

    def _store_content(
        self, account_sid: str, friendly_name: str, language: str, variables: dict[str, Any], types: dict[str, Any]
    ) -> str:
        sid = new_sid("HX")
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._lock:
            self._contents[sid] = {
                "sid": sid, "account_sid": account_sid, "friendly_name": friendly_name, "language": language,
                "variables": dict(variables), "types": dict(types), "date_created": now, "date_updated": now,
                "url": f"https://content.twilio.com/v1/Content/{sid}",
                "links": {
                    "approval_create": f"https://content.twilio.com/v1/Content/{sid}/ApprovalRequests/whatsapp",
                    "approval_fetch": f"https://content.twilio.com/v1/Content/{sid}/ApprovalRequests",
                },
                "approval": None,
            }
        return sid

    def _content_api(
        self, name: str, method: str, match: re.Match[str], query: dict[str, list[str]], body: Any, owner: str
    ) -> _Reply:
        """Content create and list, the list with approvals, and a WhatsApp approval request."""
        if name == "contents" and method == "POST":
            if not isinstance(body, dict):
                return _error_reply(400, 20001, "Invalid JSON body: expected a Content create request")
            friendly_name, language = body.get("friendly_name"), body.get("language")
            if not isinstance(language, str) or not language:
                return _error_reply(400, 20001, "language: required (e.g. en)")
            variables = body.get("variables") or {}
            if not isinstance(variables, dict):
                return _error_reply(400, 20001, "variables: expected an object")
            problem = _content_problem(body.get("types"))
            if problem is not None:
                return _error_reply(400, 20001, problem)
            sid = self._store_content(owner, str(friendly_name or ""), language, variables, body["types"])
            with self._lock:
                created = {k: v for k, v in self._contents[sid].items() if k != "approval"}
            return _json_reply(201, created)
        if name == "approval_create" and method == "POST":
            with self._lock:
                content = self._contents.get(match["sid"])
            if content is None or content["account_sid"] != owner:
                return _error_reply(404, 20404, f"Content {match['sid']} was not found")
            if not isinstance(body, dict) or not body.get("name") or body.get("category") not in _TEMPLATE_CATEGORIES:
                return _error_reply(400, 20001, f"name and category (one of {sorted(_TEMPLATE_CATEGORIES)}) are required")
            self.set_content_approval(match["sid"], str(body["name"]), str(body["category"]), "received")
            with self._lock:
                approval = dict(self._contents[match["sid"]]["approval"])
            return _json_reply(201, {**approval, "status": "received"})
        if method != "GET" or name == "approval_create":
            return _error_reply(405)
        try:
            page_size = _whole(next(iter(query.get("PageSize") or []), None), "PageSize", default=50, low=1, high=1000)
            page = _whole(next(iter(query.get("Page") or []), None), "Page", default=0, low=0, high=10**6)
        except ValueError as exc:
            return _error_reply(400, 20001, str(exc))
        with self._lock:
            owned = [dict(c) for c in self._contents.values() if c["account_sid"] == owner]
        owned.reverse()  # newest first
        records = []
        for content in owned[page * page_size : (page + 1) * page_size]:
            approval = content.pop("approval")
            if name == "content_approvals":
                content.pop("links", None)
                content.pop("url", None)
                content["approval_requests"] = approval or {}
            records.append(content)
        path = "/v1/Content" if name == "contents" else "/v1/ContentAndApprovals"
        base = f"https://content.twilio.com{path}?PageSize={page_size}"
        more = (page + 1) * page_size < len(owned)
        return _json_reply(200, {
            "contents": records,
            "meta": {
                "page": page, "page_size": page_size, "first_page_url": f"{base}&Page=0",
                "previous_page_url": f"{base}&Page={page - 1}" if page > 0 else None,
                "url": f"{base}&Page={page}",
                "next_page_url": f"{self.base_url}{path}?PageSize={page_size}&Page={page + 1}&PageToken=PA{page + 1}" if more else None,
                "key": "contents",
            },
        })

    def _serve_media(
        self, method: str, account_sid: str, message_sid: str, media_sid: str, path: str
    ) -> _Reply:
        if method != "GET":
            return _error_reply(405)
        with self._lock:
            media = self._media.get(media_sid)
        if media is None or media.account_sid != account_sid or media.message_sid != message_sid:
            return _error_reply(404, 20404, f"The requested resource {path} was not found")
        # Twilio answers with a temporary redirect to a pre-signed CDN location.
        location = f"{self.base_url}/cdn/media/{media_sid}?Token={media.cdn_token}"
        return _Reply(307, b"", content_type="text/plain", headers={"Location": location})

    def _serve_cdn(self, media_sid: str, query: dict[str, list[str]]) -> _Reply:
        with self._lock:
            media = self._media.get(media_sid)
        token = (query.get("Token") or [""])[0]
        if media is None or not hmac.compare_digest(media.cdn_token, token):
            return _Reply(403, b"<Error><Code>AccessDenied</Code></Error>", content_type="application/xml")
        return _Reply(200, media.content, content_type=media.content_type, chunked=media.chunked)


_BOOKKEEPING = frozenset({"status_callback", "sent_on"})
_BAD_JSON = object()  # a JSON body that did not parse
_CONTENT_TYPES = frozenset({
    "twilio/text", "twilio/media", "twilio/location", "twilio/list-picker", "twilio/call-to-action",
    "twilio/quick-reply", "twilio/card", "twilio/catalog", "twilio/carousel", "twilio/flows", "twilio/schedule",
    "whatsapp/card", "whatsapp/authentication", "whatsapp/flows",
})
_TEMPLATE_CATEGORIES = frozenset({"UTILITY", "MARKETING", "AUTHENTICATION"})


def _content_problem(types: Any) -> str | None:
    """Why a Content create's ``types`` would be refused, or None (what the fake checks)."""
    if not isinstance(types, dict) or not types:
        return "types: expected an object with at least one content type"
    for name, body in types.items():
        if name not in _CONTENT_TYPES:
            return f"types: unknown content type {name!r}"
        if not isinstance(body, dict):
            return f"types.{name}: expected an object"
    quick = types.get("twilio/quick-reply")
    if quick is not None:
        actions = quick.get("actions")
        if not quick.get("body") or not isinstance(actions, list) or not 1 <= len(actions) <= MAX_QUICK_REPLIES:
            return f"twilio/quick-reply: a body and 1 to {MAX_QUICK_REPLIES} actions are required"
        if any(not isinstance(a, dict) or not a.get("title") or len(str(a["title"])) > 20 for a in actions):
            return "twilio/quick-reply: every action needs a title of at most 20 characters"
    picker = types.get("twilio/list-picker")
    if picker is not None:
        items = picker.get("items")
        if not picker.get("body") or not picker.get("button") or len(str(picker["button"])) > 20:
            return "twilio/list-picker: a body and a button text of at most 20 characters are required"
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_LIST_ITEMS:
            return f"twilio/list-picker: 1 to {MAX_LIST_ITEMS} items are required"
        for item in items:
            if not isinstance(item, dict) or not item.get("item") or not item.get("id"):
                return "twilio/list-picker: every item needs an id and an item (its title)"
            if len(str(item["item"])) > 24 or len(str(item.get("description") or "")) > 72:
                return "twilio/list-picker: an item's title is at most 24 characters, its description 72"
    return None


def _public(resource: dict[str, Any]) -> dict[str, Any]:
    """The REST view of a stored message (without the fake's bookkeeping fields)."""
    return {k: v for k, v in resource.items() if k not in _BOOKKEEPING}


def _first(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _paging(query: Mapping[str, list[str]]) -> tuple[int, int]:
    """(PageSize, Page) of a list request; ValueError names a bad one."""
    return (
        _whole(_first(query, "PageSize"), "PageSize", default=50, low=1, high=1000),
        _whole(_first(query, "Page"), "Page", default=0, low=0, high=10**6),
    )


def _check_update(form: Mapping[str, list[str]], fields: Mapping[str, str]) -> _Reply | None:
    """Twilio's answer to a bad update of a number or service, or ``None`` if it is fine."""
    for name, values in form.items():
        value = values[0]
        if name not in fields:
            continue  # Twilio ignores parameters it does not know
        if name in _URL_FIELDS and value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname or "_" in parts.hostname:
                return _error_reply(400, 21502, f"{name} is not a valid URL: {value[:100]}")
        if name in _METHOD_FIELDS and value.upper() not in ("GET", "POST"):
            return _error_reply(400, 20001, f"Invalid {name}: expected GET or POST")
        if name in _BOOLEAN_FIELDS and value not in ("true", "false"):
            return _error_reply(400, 20001, f"Invalid {name}: expected true or false")
    return None


def _v2010_page(
    key: str,
    found: list[dict[str, Any]],
    path: str,
    query: Mapping[str, list[str]],
    page: int,
    page_size: int,
    filter_names: Sequence[str],
) -> dict[str, Any]:
    """A page of a 2010-04-01 list: records under ``key`` and relative ``*_page_uri`` links."""
    start = page * page_size
    records = found[start : start + page_size]
    filters = [(k, v[0]) for k, v in query.items() if k in filter_names]

    def page_uri(number: int) -> str:
        return f"{path}?{urlencode([*filters, ('PageSize', str(page_size)), ('Page', str(number))])}"

    more = start + page_size < len(found)
    return {
        key: records,
        "end": start + max(len(records) - 1, 0),
        "first_page_uri": page_uri(0),
        "next_page_uri": f"{page_uri(page + 1)}&PageToken=PA{page + 1}" if more else None,
        "page": page,
        "page_size": page_size,
        "previous_page_uri": page_uri(page - 1) if page > 0 else None,
        "start": start,
        "uri": page_uri(page),
    }


def _sent_date(name: str, value: str | None) -> date | None:
    """A ``DateSent`` filter: ``YYYY-MM-DD`` as Twilio documents, or the ``twilio`` client's
    ``YYYY-MM-DDTHH:MM:SSZ`` (read, like Twilio's date filters, by its GMT date)."""
    if value is None:
        return None
    if _SENT_DATE.match(value):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            pass  # the shape is right but not the date (2024-02-30)
    raise ValueError(f"Invalid {name}: expected YYYY-MM-DD, got {value!r}")


def _whole(value: str | None, name: str, *, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise ValueError(f"Invalid {name}: expected a whole number from {low} to {high}, got {value!r}")
    return int(value)


def _route(path: str) -> tuple[str, re.Match[str]] | None:
    """(route name, match) of an authenticated endpoint, or ``None`` if the fake has no such path."""
    for name, pattern in _ROUTES:
        match = pattern.match(path)
        if match:
            return name, match
    return None


def _basic_auth(header: str | None) -> tuple[str | None, str | None]:
    """(username, password) from an ``Authorization: Basic`` header, or (None, None)."""
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else (None, None)


def _write(handler: _Handler, reply: _Reply) -> None:
    """Send ``reply`` (or drop the connection) without letting a gone client crash the thread."""
    if reply.disconnect:
        handler.close_connection = True
        return
    try:
        handler.send_response(reply.status)
        handler.send_header("Content-Type", reply.content_type)
        if reply.chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        else:
            handler.send_header("Content-Length", str(len(reply.body)))
        handler.send_header("Twilio-Request-Id", new_sid("RQ"))
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        if reply.chunked:
            for start in range(0, len(reply.body), _CHUNK_SIZE):
                piece = reply.body[start : start + _CHUNK_SIZE]
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            handler.wfile.write(b"0\r\n\r\n")
        elif reply.body:
            handler.wfile.write(reply.body)
    except (BrokenPipeError, ConnectionResetError):
        handler.close_connection = True


__all__: Sequence[str] = [
    "API_VERSION",
    "ERROR_MESSAGES",
    "FakeTwilio",
    "RecordedRequest",
    "new_sid",
    "twilio_error_body",
]
