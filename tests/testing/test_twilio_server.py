"""The fake Twilio behaves like Twilio for the real ``twilio`` client (sync and async)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import httpx
import pytest
import requests
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from callable_agents.testing.twilio_server import FakeTwilio
from callable_agents.testing.twilio_signing import compute_signature, inbound_params, new_message_sid, signed_headers

ACCOUNT = "AC" + "a1" * 16
TOKEN = "fake-auth-token-0001"
OTHER_ACCOUNT = "AC" + "b2" * 16
OTHER_TOKEN = "fake-auth-token-0002"
KEY_SID = "SK" + "c3" * 16
KEY_SECRET = "fake-key-secret-0003"
SENDER = "whatsapp:+14155238886"
USER = "whatsapp:+15551234567"


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        server.add_account(ACCOUNT, TOKEN)
        server.add_account(OTHER_ACCOUNT, OTHER_TOKEN)
        server.add_api_key(ACCOUNT, KEY_SID, KEY_SECRET)
        yield server


def sync_client(fake: FakeTwilio, username: str = ACCOUNT, password: str = TOKEN, account_sid: str | None = None) -> Client:
    client = Client(username, password, account_sid, environment={"isolated": "1"})
    client.api.base_url = fake.base_url
    client.messaging.base_url = fake.base_url
    return client


@pytest.fixture
async def async_http() -> AsyncIterator[AsyncTwilioHttpClient]:
    http = AsyncTwilioHttpClient(timeout=5)
    yield http
    await http.close()


def async_client(fake: FakeTwilio, http: AsyncTwilioHttpClient, username: str = ACCOUNT, password: str = TOKEN) -> Client:
    client = Client(username, password, http_client=http, environment={"isolated": "1"})
    client.api.base_url = fake.base_url
    client.messaging.base_url = fake.base_url
    return client


# --- messages with the real clients ---------------------------------------------------------


def test_sync_client_sends_and_fetches_a_message(fake: FakeTwilio) -> None:
    client = sync_client(fake)
    sent = client.messages.create(to=USER, from_=SENDER, body="hello", status_callback="https://cb.example.com/s")
    assert sent.sid.startswith("SM") and len(sent.sid) == 34
    assert sent.status == "queued"
    assert sent.direction == "outbound-api"
    assert sent.to == USER and sent.from_ == SENDER and sent.body == "hello"

    fetched = client.messages(sent.sid).fetch()
    assert fetched.sid == sent.sid and fetched.status == "queued"

    [record] = fake.sent_messages
    assert record == {
        **record,
        "sid": sent.sid, "to": USER, "from_": SENDER, "body": "hello", "media_urls": [],
        "content_sid": None, "content_variables": None, "status_callback": "https://cb.example.com/s",
        "account_sid": ACCOUNT, "auth_username": ACCOUNT,
    }


async def test_async_client_sends_media_template_and_typing(fake: FakeTwilio, async_http: AsyncTwilioHttpClient) -> None:
    client = async_client(fake, async_http)
    media = await client.messages.create_async(
        to=USER, from_=SENDER, body="a photo", media_url=["https://x.example.com/1.png", "https://x.example.com/2.png"]
    )
    assert media.sid.startswith("MM") and media.num_media == "2"
    template = await client.messages.create_async(
        to=USER, messaging_service_sid="MG" + "0" * 32, content_sid="HX" + "1" * 32,
        content_variables=json.dumps({"1": "Ana"}),
    )
    assert template.status == "accepted"  # a Messaging Service answers "accepted", not "queued"
    assert template.from_ is None
    typing = await client.messaging.v2.typing_indicator.create_async(channel="whatsapp", message_id=media.sid)
    assert typing.success is True

    first, second = fake.sent_messages
    assert first["media_urls"] == ["https://x.example.com/1.png", "https://x.example.com/2.png"]
    assert second["content_sid"] == "HX" + "1" * 32
    assert json.loads(second["content_variables"]) == {"1": "Ana"}
    assert second["messaging_service_sid"] == "MG" + "0" * 32
    assert fake.typing_indicators[0]["message_id"] == media.sid
    assert fake.typing_indicators[0]["channel"] == "whatsapp"
    typing_request = [r for r in fake.requests if r.path == "/v2/Indicators/Typing.json"][0]
    assert typing_request.form == {"channel": ["whatsapp"], "messageId": [media.sid]}


def test_wait_for_sent_wakes_when_the_count_is_reached_and_times_out_otherwise(fake: FakeTwilio) -> None:
    client = sync_client(fake)
    assert fake.wait_for_sent(0, timeout=0)
    assert not fake.wait_for_sent(1, timeout=0.05)

    def send_two_later() -> None:
        time.sleep(0.2)
        client.messages.create(to=USER, from_=SENDER, body="one")
        client.messages.create(to=USER, from_=SENDER, body="two")

    sender = threading.Thread(target=send_two_later)
    started = time.monotonic()
    sender.start()
    try:
        assert fake.wait_for_sent(2, timeout=10)
        waited = time.monotonic() - started
    finally:
        sender.join()
    assert 0.2 <= waited < 5  # woken by the second create, not at the timeout
    assert [m["body"] for m in fake.sent_messages] == ["one", "two"]
    fake.reset()
    assert not fake.wait_for_sent(1, timeout=0.01)  # counted since the reset


def test_messages_are_listed_newest_first(fake: FakeTwilio) -> None:
    client = sync_client(fake)
    first = client.messages.create(to=USER, from_=SENDER, body="one")
    second = client.messages.create(to=USER, from_=SENDER, body="two")
    assert [m.sid for m in client.messages.list()] == [second.sid, first.sid]


def test_the_list_filters_by_to_from_and_the_date_sent_as_twilio_documents(fake: FakeTwilio) -> None:
    from datetime import UTC, datetime, timedelta

    client = sync_client(fake)
    other_user, other_sender = "whatsapp:+15550001111", "whatsapp:+14150009999"
    ours = client.messages.create(to=USER, from_=SENDER, body="ours")
    client.messages.create(to=other_user, from_=SENDER, body="someone else's")
    client.messages.create(to=USER, from_=other_sender, body="another sender's")
    [found] = client.messages.list(to=USER, from_=SENDER)
    assert found.sid == ours.sid and found.body == "ours" and found.date_sent is not None
    assert len(client.messages.list(to=USER)) == 2
    today = datetime.now(UTC)
    # The client sends a datetime (YYYY-MM-DDTHH:MM:SSZ); Twilio documents a GMT date: both work.
    assert [m.sid for m in client.messages.list(to=USER, from_=SENDER, date_sent_after=today)] == [ours.sid]
    assert client.messages.list(to=USER, date_sent_after=today + timedelta(days=1)) == []
    assert len(client.messages.list(to=USER, date_sent_before=today)) == 2
    assert len(client.messages.list(to=USER, date_sent=today.date().isoformat())) == 2
    request = [r for r in fake.requests if r.method == "GET"][-1]
    assert request.query["DateSent"] == [today.date().isoformat()]


def test_the_list_pages_as_the_client_expects(fake: FakeTwilio) -> None:
    client = sync_client(fake)
    sids = [client.messages.create(to=USER, from_=SENDER, body=f"n{n}").sid for n in range(5)]
    assert [m.sid for m in client.messages.list(to=USER, page_size=2)] == sids[::-1]  # three pages, followed
    assert [m.sid for m in client.messages.list(to=USER, limit=3)] == sids[::-1][:3]
    pages = [r for r in fake.requests if r.method == "GET"]
    assert [r.query.get("Page", ["0"])[0] for r in pages[:3]] == ["0", "1", "2"]
    assert all(r.query["To"] == [USER] for r in pages)  # the filters carry over to the next pages


@pytest.mark.parametrize(
    ("query", "field"),
    [("DateSent%3E=yesterday", "DateSent>"), ("DateSent=2024-02-30", "DateSent"), ("PageSize=0", "PageSize"),
     ("PageSize=5000", "PageSize"), ("Page=-1", "Page")],
)
def test_a_bad_list_filter_is_refused_naming_it(fake: FakeTwilio, query: str, field: str) -> None:
    response = httpx.get(f"{fake.base_url}/2010-04-01/Accounts/{ACCOUNT}/Messages.json?{query}", auth=(ACCOUNT, TOKEN))
    assert response.status_code == 400
    assert response.json()["code"] == 20001 and f"Invalid {field}:" in response.json()["message"]


def test_creates_can_be_held_and_are_counted_per_message(fake: FakeTwilio) -> None:
    client = sync_client(fake)
    fake.answer_creates_after(0.5)
    started = time.monotonic()
    client.messages.create(to=USER, from_=SENDER, body="slow")
    assert time.monotonic() - started >= 0.5
    started = time.monotonic()
    client.messages.list(to=USER)  # only creates are held
    assert time.monotonic() - started < 0.4
    fake.answer_creates_after(0)
    client.messages.create(to=USER, from_=SENDER, body="slow")
    client.messages.create(to=USER, from_=SENDER, media_url=["https://x.example/a.jpg"])
    assert fake.create_counts == {
        (USER, "slow", ()): 2,
        (USER, "", ("https://x.example/a.jpg",)): 1,
    }
    with pytest.raises(ValueError, match="seconds must be 0 or more"):
        fake.answer_creates_after(-1)


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"From": SENDER, "Body": "hi"}, 21604),
        ({"To": USER, "Body": "hi"}, 21603),
        ({"To": USER, "From": SENDER}, 21602),
        ({"To": USER, "From": SENDER, "Body": "x" * 1601}, 21617),
        ({"To": "whatsapp:12345", "From": SENDER, "Body": "hi"}, 21211),
        ({"To": USER, "From": SENDER, "ContentSid": "HX" + "1" * 32, "ContentVariables": "{not json"}, 21656),
        ({"To": USER, "From": SENDER, "ContentSid": "HX" + "1" * 32, "ContentVariables": json.dumps({"1": "y" * 1601})}, 21658),
    ],
)
def test_message_validation_matches_twilio(fake: FakeTwilio, form: dict[str, str], code: int) -> None:
    response = httpx.post(f"{fake.base_url}/2010-04-01/Accounts/{ACCOUNT}/Messages.json", data=form, auth=(ACCOUNT, TOKEN))
    assert response.status_code == 400
    payload = response.json()
    assert payload["code"] == code and payload["status"] == 400
    assert payload["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert payload["message"]
    assert fake.sent_messages == []


def test_body_of_exactly_1600_chars_is_accepted(fake: FakeTwilio) -> None:
    sent = sync_client(fake).messages.create(to=USER, from_=SENDER, body="x" * 1600)
    assert sent.status == "queued"


def test_real_client_raises_twilio_error_for_validation(fake: FakeTwilio) -> None:
    with pytest.raises(TwilioRestException) as info:
        sync_client(fake).messages.create(to=USER, from_=SENDER, body="x" * 1601)
    assert info.value.status == 400 and info.value.code == 21617


# --- auth ---------------------------------------------------------------------------------------


def test_wrong_token_gets_401_with_twilio_error_body(fake: FakeTwilio) -> None:
    with pytest.raises(TwilioRestException) as info:
        sync_client(fake, password="wrong").messages.create(to=USER, from_=SENDER, body="hi")
    assert info.value.status == 401 and info.value.code == 20003
    assert fake.sent_messages == []
    assert fake.requests[-1].status == 401 and fake.requests[-1].auth_username == ACCOUNT

    raw = httpx.get(f"{fake.base_url}/2010-04-01/Accounts/{ACCOUNT}.json")  # no credentials at all
    assert raw.status_code == 401
    assert raw.json() == {
        "code": 20003, "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401,
    }
    assert raw.headers["WWW-Authenticate"].startswith("Basic")


def test_one_accounts_token_does_not_open_another_account(fake: FakeTwilio) -> None:
    client = sync_client(fake, OTHER_ACCOUNT, OTHER_TOKEN)
    with pytest.raises(TwilioRestException) as info:
        client.api.accounts(ACCOUNT).fetch()
    assert info.value.status == 404 and info.value.code == 20404
    with pytest.raises(TwilioRestException):
        sync_client(fake, ACCOUNT, OTHER_TOKEN).api.accounts(ACCOUNT).fetch()


def test_api_key_authenticates_as_its_account(fake: FakeTwilio) -> None:
    client = sync_client(fake, KEY_SID, KEY_SECRET, ACCOUNT)
    assert client.api.accounts(ACCOUNT).fetch().sid == ACCOUNT
    client.messages.create(to=USER, from_=SENDER, body="via key")
    assert fake.sent_messages[0]["auth_username"] == KEY_SID
    assert fake.sent_messages[0]["account_sid"] == ACCOUNT
    with pytest.raises(TwilioRestException) as info:
        sync_client(fake, KEY_SID, "wrong-secret", ACCOUNT).messages.create(to=USER, from_=SENDER, body="x")
    assert info.value.status == 401


def test_account_fetch_and_unknown_account(fake: FakeTwilio) -> None:
    account = sync_client(fake).api.accounts(ACCOUNT).fetch()
    assert account.sid == ACCOUNT and account.status == "active"
    unknown = "AC" + "9" * 32
    response = httpx.get(f"{fake.base_url}/2010-04-01/Accounts/{unknown}.json", auth=(ACCOUNT, TOKEN))
    assert response.status_code == 404 and response.json()["code"] == 20404


def test_recorded_requests_never_keep_the_authorization_header(fake: FakeTwilio) -> None:
    sync_client(fake).messages.create(to=USER, from_=SENDER, body="hi")
    request = fake.requests[0]
    assert request.method == "POST" and request.path.endswith("/Messages.json")
    assert request.form["Body"] == ["hi"] and request.first("To") == USER
    assert all(name.lower() != "authorization" for name in request.headers)
    assert TOKEN not in repr(fake.requests)


def test_unknown_path_is_twilio_404(fake: FakeTwilio) -> None:
    response = httpx.get(f"{fake.base_url}/2010-04-01/Nope.json", auth=(ACCOUNT, TOKEN))
    assert response.status_code == 404 and response.json()["code"] == 20404


# --- programmable failures ----------------------------------------------------------------------


def test_fail_next_counts_down_then_recovers(fake: FakeTwilio) -> None:
    client = sync_client(fake)
    fake.fail_next(2, status=500)
    for _ in range(2):
        with pytest.raises(TwilioRestException) as info:
            client.messages.create(to=USER, from_=SENDER, body="hi")
        assert info.value.status == 500 and info.value.code == 20500
    assert client.messages.create(to=USER, from_=SENDER, body="hi").status == "queued"
    assert [r.status for r in fake.requests] == [500, 500, 201]
    assert len(fake.sent_messages) == 1


def test_429_carries_retry_after_and_code_20429(fake: FakeTwilio) -> None:
    fake.fail_next(1, status=429)
    response = httpx.post(f"{fake.base_url}/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
                          data={"To": USER, "From": SENDER, "Body": "hi"}, auth=(ACCOUNT, TOKEN))
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert response.json()["code"] == 20429
    fake.fail_next(1, status=429, retry_after=None)
    response = httpx.get(f"{fake.base_url}/2010-04-01/Accounts/{ACCOUNT}.json", auth=(ACCOUNT, TOKEN))
    assert response.status_code == 429 and "Retry-After" not in response.headers


@pytest.mark.parametrize("code", [63016, 21610, 63018])
def test_twilio_error_codes_reach_the_client(fake: FakeTwilio, code: int) -> None:
    fake.fail_next(1, code=code, message="custom text")
    with pytest.raises(TwilioRestException) as info:
        sync_client(fake).messages.create(to=USER, from_=SENDER, body="hi")
    assert info.value.status == 400 and info.value.code == code
    assert "custom text" in info.value.msg


def test_failures_can_be_scoped_to_one_endpoint(fake: FakeTwilio) -> None:
    client = sync_client(fake)
    fake.fail_next(1, status=503, scope="typing")
    sent = client.messages.create(to=USER, from_=SENDER, body="unaffected")
    with pytest.raises(TwilioRestException) as info:
        client.messaging.v2.typing_indicator.create(channel="whatsapp", message_id=sent.sid)
    assert info.value.status == 503
    assert client.messaging.v2.typing_indicator.create(channel="whatsapp", message_id=sent.sid).success


def test_rfc9457_errors_raise_twilio_service_exception(fake: FakeTwilio) -> None:
    fake.fail_next(1, status=400, code=63016, rfc9457=True)
    with pytest.raises(TwilioServiceException) as info:
        sync_client(fake).messages.create(to=USER, from_=SENDER, body="hi")
    assert info.value.status == 400 and info.value.code == 63016


async def test_disconnect_drops_the_connection(fake: FakeTwilio, async_http: AsyncTwilioHttpClient) -> None:
    fake.fail_next(1, disconnect=True, scope="messages")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await async_client(fake, async_http).messages.create_async(to=USER, from_=SENDER, body="hi")
    assert fake.requests[-1].status == 0


def test_delay_makes_answers_slow(fake: FakeTwilio) -> None:
    fake.delay_next(1, 0.3)
    started = time.monotonic()
    assert sync_client(fake).api.accounts(ACCOUNT).fetch().sid == ACCOUNT
    assert time.monotonic() - started >= 0.3
    fake.fail_next(1, status=500, delay=2.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(f"{fake.base_url}/2010-04-01/Accounts/{ACCOUNT}.json", auth=(ACCOUNT, TOKEN), timeout=0.2)


def test_fail_next_rejects_bad_arguments(fake: FakeTwilio) -> None:
    with pytest.raises(ValueError, match="n must be at least 1"):
        fake.fail_next(0)
    with pytest.raises(ValueError, match="scope"):
        fake.fail_next(1, scope="voice")  # type: ignore[arg-type]


def test_typing_indicator_rejects_bad_fields(fake: FakeTwilio) -> None:
    url = f"{fake.base_url}/v2/Indicators/Typing.json"
    bad_channel = httpx.post(url, data={"channel": "sms", "messageId": new_message_sid()}, auth=(ACCOUNT, TOKEN))
    bad_id = httpx.post(url, data={"channel": "whatsapp", "messageId": "nope"}, auth=(ACCOUNT, TOKEN))
    assert bad_channel.status_code == bad_id.status_code == 400
    assert fake.typing_indicators == []


# --- media --------------------------------------------------------------------------------------


def test_media_needs_the_accounts_credentials_and_redirects_to_the_cdn(fake: FakeTwilio) -> None:
    url = fake.add_media(ACCOUNT, b"\x89PNG fake image", "image/png")
    assert url.startswith(f"{fake.base_url}/2010-04-01/Accounts/{ACCOUNT}/Messages/MM")
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, auth=(OTHER_ACCOUNT, OTHER_TOKEN)).status_code == 404
    redirect = httpx.get(url, auth=(ACCOUNT, TOKEN))
    assert redirect.status_code == 307 and "/cdn/media/ME" in redirect.headers["Location"]
    media = httpx.get(url, auth=(KEY_SID, KEY_SECRET), follow_redirects=True)
    assert media.status_code == 200
    assert media.content == b"\x89PNG fake image" and media.headers["Content-Type"] == "image/png"
    tampered = redirect.headers["Location"].split("?")[0] + "?Token=guess"
    assert httpx.get(tampered).status_code == 403


# --- status callbacks ---------------------------------------------------------------------------


def test_status_callback_params_look_like_twilios_and_move_the_status(fake: FakeTwilio) -> None:
    client = sync_client(fake)
    sent = client.messages.create(to=USER, from_=SENDER, body="hi")
    delivered = fake.status_callback_params(sent.sid, "delivered")
    assert delivered == {
        "AccountSid": ACCOUNT, "ApiVersion": "2010-04-01", "ChannelPrefix": "whatsapp",
        "ChannelInstallSid": delivered["ChannelInstallSid"], "From": SENDER, "To": USER,
        "MessageSid": sent.sid, "MessageStatus": "delivered", "SmsSid": sent.sid, "SmsStatus": "delivered",
    }
    assert client.messages(sent.sid).fetch().status == "delivered"
    failed = fake.status_callback_params(sent.sid, "undelivered", error_code=63016)
    assert failed["ErrorCode"] == "63016" and failed["ChannelStatusMessage"]
    assert client.messages(sent.sid).fetch().error_code == 63016
    with pytest.raises(KeyError):
        fake.status_callback_params(new_message_sid(), "sent")


async def test_push_status_callback_posts_a_signed_request(fake: FakeTwilio, async_http: AsyncTwilioHttpClient) -> None:
    callback_url = "https://ours.example.com/channels/whatsapp/status/abc"
    received: list[dict[str, str]] = []

    async def status(request: Request) -> Response:
        form = await request.form()
        ok = RequestValidator(TOKEN).validate(str(request.url), form, request.headers.get("X-Twilio-Signature", ""))
        received.append({k: str(v) for k, v in form.items()})
        return Response(status_code=200 if ok else 403)

    app = Starlette(routes=[Route("/channels/whatsapp/status/abc", status, methods=["POST"])])
    sent = await async_client(fake, async_http).messages.create_async(to=USER, from_=SENDER, body="hi", status_callback=callback_url)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        response = await fake.push_status_callback(sent.sid, "read", http=http)
    assert response.status_code == 200
    assert received[0]["MessageStatus"] == "read" and received[0]["EventType"] == "READ"


# --- signing helper -----------------------------------------------------------------------------


def test_signing_reproduces_twilios_worked_example() -> None:
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675310", "Digits": "1234",
              "From": "+14158675310", "To": "+18005551212"}
    url = "https://example.com/myapp.php?foo=1&bar=2"
    assert compute_signature("12345", url, params) == "L/OH5YylLD5NRKLltdqwSvS0BnU="
    headers = signed_headers("12345", url, params)
    assert RequestValidator("12345").validate(url, params, headers["X-Twilio-Signature"])


def test_signed_inbound_form_validates_and_tampering_does_not() -> None:
    url = "https://ours.example.com:8443/channels/whatsapp/inbound/7f3c?x=1"
    params = inbound_params(ACCOUNT, USER, SENDER, "Hola, ¿abren mañana?")
    signature = signed_headers(TOKEN, url, params)["X-Twilio-Signature"]
    validator = RequestValidator(TOKEN)
    assert validator.validate(url, params, signature)
    assert not validator.validate(url, {**params, "Body": "Hola"}, signature)
    assert not validator.validate(url.replace(":8443", ""), params, signature)  # a non-default port counts
    assert not RequestValidator(OTHER_TOKEN).validate(url, params, signature)


def test_signing_covers_every_value_of_a_repeated_field() -> None:
    url = "https://ours.example.com/hook"
    params = {"Body": "hi", "MediaUrl": ["https://a/1", "https://a/2"]}
    signature = compute_signature(TOKEN, url, params)
    starlette_like = _MultiDict([("Body", "hi"), ("MediaUrl", "https://a/1"), ("MediaUrl", "https://a/2")])
    assert RequestValidator(TOKEN).validate(url, starlette_like, signature)
    dropped = _MultiDict([("Body", "hi"), ("MediaUrl", "https://a/1")])
    assert not RequestValidator(TOKEN).validate(url, dropped, signature)


def test_inbound_params_are_a_realistic_whatsapp_form() -> None:
    params = inbound_params(ACCOUNT, USER, SENDER, "hi", media=[("https://m/1", "image/jpeg")], ButtonPayload="yes")
    sid = params["MessageSid"]
    assert sid.startswith("MM") and len(sid) == 34
    assert params["SmsSid"] == params["SmsMessageSid"] == sid
    assert params["AccountSid"] == ACCOUNT and params["From"] == USER and params["To"] == SENDER
    assert params["WaId"] == "15551234567" and params["SmsStatus"] == "received"
    assert params["NumMedia"] == "1" and params["MediaUrl0"] == "https://m/1"
    assert params["MediaContentType0"] == "image/jpeg" and params["ApiVersion"] == "2010-04-01"
    assert params["ButtonPayload"] == "yes"
    text = inbound_params(ACCOUNT, USER, SENDER, "hi", message_sid="SM" + "0" * 32)
    assert text["MessageSid"] == "SM" + "0" * 32 and text["MessageType"] == "text" and text["NumMedia"] == "0"


class _MultiDict:
    """A form with repeated keys, shaped like Starlette's FormData for RequestValidator."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self._items))

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self._items if key == name]


# --- the server itself --------------------------------------------------------------------------


def test_concurrent_sends_are_all_recorded(fake: FakeTwilio) -> None:
    errors: list[BaseException] = []

    def send(n: int) -> None:
        try:
            sync_client(fake).messages.create(to=USER, from_=SENDER, body=f"message {n}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    sent = fake.sent_messages
    assert sorted(m["body"] for m in sent) == sorted(f"message {n}" for n in range(20))
    assert len({m["sid"] for m in sent}) == 20


def test_another_process_can_reach_the_fake(fake: FakeTwilio) -> None:
    code = (
        "import urllib.request, urllib.error, sys\n"
        f"try: urllib.request.urlopen('{fake.base_url}/2010-04-01/Accounts/{ACCOUNT}.json')\n"
        "except urllib.error.HTTPError as e: print(e.code)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "401"


def test_close_frees_the_port_and_cuts_delays_short() -> None:
    fake = FakeTwilio().start()
    fake.add_account(ACCOUNT, TOKEN)
    fake.delay_next(1, 30)
    thread = threading.Thread(
        target=lambda: httpx.get(f"{fake.base_url}/2010-04-01/Accounts/{ACCOUNT}.json", auth=(ACCOUNT, TOKEN), timeout=10),
        daemon=True,
    )
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    fake.close()
    thread.join(timeout=10)
    assert time.monotonic() - started < 5
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{fake.base_url}/2010-04-01/Accounts/{ACCOUNT}.json", timeout=2)


# --- numbers, Messaging Services and WhatsApp senders (setting a sender up) -------------------


async def test_phone_numbers_are_listed_per_account_filtered_and_paged(fake: FakeTwilio, async_http: AsyncTwilioHttpClient) -> None:
    front = fake.add_phone_number(ACCOUNT, "+14155550100", friendly_name="Front desk", whatsapp=True)
    fake.add_phone_number(ACCOUNT, "+14155550111")
    fake.add_phone_number(ACCOUNT, "+442071838750")
    fake.add_phone_number(OTHER_ACCOUNT, "+14155550199")
    client = async_client(fake, async_http)

    every = await client.incoming_phone_numbers.list_async(page_size=2)  # two pages, followed by the client
    assert [n.phone_number for n in every] == ["+14155550100", "+14155550111", "+442071838750"]
    assert [r.query.get("Page") for r in fake.requests] == [None, ["1"]]
    [exact] = await client.incoming_phone_numbers.list_async(phone_number="+14155550100")
    assert exact.sid == front and exact.friendly_name == "Front desk" and exact.capabilities["sms"] is True
    assert [n.phone_number for n in await client.incoming_phone_numbers.list_async(phone_number="415555011*")] == [
        "+14155550111"
    ]
    assert await client.incoming_phone_numbers.list_async(phone_number="+14155550199") == []  # another account's


async def test_a_number_update_sets_its_urls_and_is_recorded(fake: FakeTwilio, async_http: AsyncTwilioHttpClient) -> None:
    sid = fake.add_phone_number(ACCOUNT, "+14155550100", sms_url="https://old.example.com/sms")
    client = async_client(fake, async_http, KEY_SID, KEY_SECRET)
    client.account_sid = ACCOUNT
    updated = await client.incoming_phone_numbers(sid).update_async(
        sms_url="https://bot.example.com/in", sms_method="POST", status_callback="https://bot.example.com/st"
    )
    assert updated.sms_url == "https://bot.example.com/in" and updated.status_callback == "https://bot.example.com/st"
    assert fake.phone_number("+14155550100")["sms_url"] == "https://bot.example.com/in"
    [update] = fake.configuration_updates
    assert update == {
        "resource": "phone_number", "sid": sid, "account_sid": ACCOUNT, "auth_username": KEY_SID,
        "fields": {"SmsUrl": "https://bot.example.com/in", "SmsMethod": "POST", "StatusCallback": "https://bot.example.com/st"},
    }
    fetched = await client.incoming_phone_numbers(sid).fetch_async()
    assert fetched.sms_url == "https://bot.example.com/in"


async def test_bad_number_updates_and_foreign_numbers_are_refused(fake: FakeTwilio, async_http: AsyncTwilioHttpClient) -> None:
    sid = fake.add_phone_number(ACCOUNT, "+14155550100")
    foreign = fake.add_phone_number(OTHER_ACCOUNT, "+14155550199")
    client = async_client(fake, async_http)
    with pytest.raises(TwilioRestException) as bad_url:
        await client.incoming_phone_numbers(sid).update_async(sms_url="ftp://nope")
    assert (bad_url.value.status, bad_url.value.code) == (400, 21502)
    with pytest.raises(TwilioRestException) as underscore:
        await client.incoming_phone_numbers(sid).update_async(sms_url="https://my_host.example.com/in")
    assert underscore.value.code == 21502
    with pytest.raises(TwilioRestException) as bad_method:
        await client.incoming_phone_numbers(sid).update_async(sms_method="PUT")
    assert bad_method.value.code == 20001
    with pytest.raises(TwilioRestException) as not_ours:
        await client.incoming_phone_numbers(foreign).update_async(sms_url="https://bot.example.com/in")
    assert (not_ours.value.status, not_ours.value.code) == (404, 20404)
    wrong = async_client(fake, async_http, ACCOUNT, "not-the-token")
    with pytest.raises(TwilioException) as refused:  # twilio raises lists' failures untyped, with the response
        await wrong.incoming_phone_numbers.list_async()
    assert refused.value.args[1].status_code == 401 and json.loads(refused.value.args[1].text)["code"] == 20003
    assert fake.configuration_updates == []
    assert fake.phone_number(sid)["sms_url"] == "" and fake.phone_number(foreign)["sms_url"] == ""


async def test_messaging_services_are_listed_fetched_and_updated(fake: FakeTwilio, async_http: AsyncTwilioHttpClient) -> None:
    first = fake.add_messaging_service(ACCOUNT, "Support")
    second = fake.add_messaging_service(ACCOUNT, "Sales", use_inbound_webhook_on_number=True)
    foreign = fake.add_messaging_service(OTHER_ACCOUNT, "Theirs")
    client = async_client(fake, async_http)

    listed = await client.messaging.v1.services.list_async(page_size=1)  # meta.next_page_url, followed
    assert [(s.sid, s.friendly_name) for s in listed] == [(first, "Support"), (second, "Sales")]
    fetched = await client.messaging.v1.services(second).fetch_async()
    assert fetched.use_inbound_webhook_on_number is True and fetched.inbound_request_url is None
    updated = await client.messaging.v1.services(first).update_async(
        inbound_request_url="https://bot.example.com/in", inbound_method="POST",
        status_callback="https://bot.example.com/st", use_inbound_webhook_on_number=False,
    )
    assert updated.inbound_request_url == "https://bot.example.com/in"
    assert updated.status_callback == "https://bot.example.com/st" and updated.use_inbound_webhook_on_number is False
    [update] = fake.configuration_updates
    assert update["resource"] == "messaging_service" and update["sid"] == first
    assert update["fields"]["InboundRequestUrl"] == "https://bot.example.com/in"
    with pytest.raises(TwilioRestException) as not_ours:
        await client.messaging.v1.services(foreign).fetch_async()
    assert not_ours.value.status == 404
    with pytest.raises(TwilioRestException) as bad:
        await client.messaging.v1.services(first).update_async(status_callback="not a url")
    assert bad.value.code == 21502


async def test_whatsapp_senders_are_listed_per_account(fake: FakeTwilio, async_http: AsyncTwilioHttpClient) -> None:
    fake.add_phone_number(ACCOUNT, "+14155550100", whatsapp=True)
    fake.add_phone_number(ACCOUNT, "+14155550111")  # an SMS number only
    fake.add_whatsapp_sender(OTHER_ACCOUNT, "whatsapp:+14155550199")
    client = async_client(fake, async_http)
    [sender] = await client.messaging.v2.channels_senders.list_async(channel="whatsapp")
    assert sender.sender_id == "whatsapp:+14155550100" and sender.status == "ONLINE"
    fake.fail_next(1, 500, scope="senders")
    with pytest.raises(TwilioException, match="Unable to fetch page"):
        await client.messaging.v2.channels_senders.list_async(channel="whatsapp")
