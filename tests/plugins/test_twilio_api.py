"""``twilio_api`` against the loopback fake Twilio, through the real ``twilio`` async client."""

from __future__ import annotations

import email.utils
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from callable_agents.core.contracts.channels import SendError
from callable_agents.core.errors import InvalidInput
from callable_agents.plugins.whatsapp.twilio_api import (
    BoundedAsyncTwilioHttpClient,
    MediaFetchError,
    TwilioUnavailable,
    fetch_media,
    make_client,
    make_http_client,
    send_typing_indicator,
    send_whatsapp,
    verify_credentials,
)
from callable_agents.testing.twilio_server import FakeTwilio

ACCOUNT = "AC" + "1f" * 16
TOKEN = "tenant-auth-token-s3cr3t"
OTHER_ACCOUNT = "AC" + "2e" * 16
KEY_SID = "SK" + "3d" * 16
KEY_SECRET = "tenant-key-secret-s3cr3t"
SENDER = "whatsapp:+14155238886"
USER = "whatsapp:+15551234567"
TEMPLATE = "HX" + "4c" * 16
SERVICE = "MG" + "5b" * 16


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        server.add_account(ACCOUNT, TOKEN)
        server.add_account(OTHER_ACCOUNT, "other-token", status="suspended")
        server.add_api_key(ACCOUNT, KEY_SID, KEY_SECRET)
        yield server


@pytest.fixture
async def http_client() -> AsyncIterator[BoundedAsyncTwilioHttpClient]:
    http = make_http_client(timeout=2.0)
    yield http
    await http.close()


@pytest.fixture
def client(fake: FakeTwilio, http_client: BoundedAsyncTwilioHttpClient) -> Client:
    return tenant_client(fake, http_client)


def tenant_client(
    fake: FakeTwilio, http_client: BoundedAsyncTwilioHttpClient, account_sid: str = ACCOUNT, auth_token: str = TOKEN, **kwargs: str
) -> Client:
    return make_client(
        account_sid, auth_token, api_base_url=fake.base_url, messaging_base_url=fake.base_url,
        http_client=http_client, **kwargs,
    )


def closed_port_url() -> str:
    """A loopback URL nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- make_client ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("account_sid", "auth_token", "field"),
    [
        ("", TOKEN, "account_sid"),
        ("AC123", TOKEN, "account_sid"),
        (ACCOUNT, "", "auth_token"),
        (ACCOUNT, "   ", "auth_token"),
    ],
)
async def test_empty_or_malformed_credentials_are_refused(
    http_client: BoundedAsyncTwilioHttpClient, monkeypatch: pytest.MonkeyPatch, account_sid: str, auth_token: str, field: str
) -> None:
    # Platform creds in the environment must not stand in for a tenant's missing ones.
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "9" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "platform-token")
    with pytest.raises(InvalidInput, match=field):
        make_client(account_sid, auth_token, http_client=http_client)


async def test_a_token_pasted_as_the_sid_is_not_echoed(http_client: BoundedAsyncTwilioHttpClient) -> None:
    with pytest.raises(InvalidInput) as info:
        make_client(TOKEN, TOKEN, http_client=http_client)
    assert TOKEN not in str(info.value)
    assert "account_sid" in str(info.value)


async def test_half_an_api_key_is_refused(http_client: BoundedAsyncTwilioHttpClient) -> None:
    with pytest.raises(InvalidInput, match="api_key_sid and api_key_secret"):
        make_client(ACCOUNT, TOKEN, http_client=http_client, api_key_sid=KEY_SID)
    with pytest.raises(InvalidInput, match="api_key_sid"):
        make_client(ACCOUNT, TOKEN, http_client=http_client, api_key_sid="SKshort", api_key_secret=KEY_SECRET)


async def test_plain_async_twilio_http_client_is_refused_because_it_ignores_its_timeout() -> None:
    async with AsyncTwilioHttpClient(timeout=5) as plain:
        with pytest.raises(TypeError, match="make_http_client"):
            make_client(ACCOUNT, TOKEN, http_client=plain)


async def test_bad_base_url_is_refused(http_client: BoundedAsyncTwilioHttpClient) -> None:
    with pytest.raises(InvalidInput, match="api_base_url"):
        make_client(ACCOUNT, TOKEN, http_client=http_client, api_base_url="127.0.0.1:8000")


def test_make_http_client_needs_a_positive_timeout() -> None:
    with pytest.raises(ValueError, match="timeout"):
        make_http_client(timeout=0)


async def test_tenant_credentials_win_over_twilio_env_vars(
    fake: FakeTwilio, http_client: BoundedAsyncTwilioHttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "9" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "platform-token")
    monkeypatch.setenv("TWILIO_EDGE", "sydney")  # would rewrite the host if read
    client = tenant_client(fake, http_client)
    await send_whatsapp(client, to=USER, from_=SENDER, body="hi")
    assert fake.sent_messages[0]["auth_username"] == ACCOUNT


async def test_api_key_credentials_are_used_when_given(fake: FakeTwilio, http_client: BoundedAsyncTwilioHttpClient) -> None:
    client = tenant_client(fake, http_client, auth_token="", api_key_sid=KEY_SID, api_key_secret=KEY_SECRET)
    await send_whatsapp(client, to=USER, from_=SENDER, body="hi")
    [sent] = fake.sent_messages
    assert sent["auth_username"] == KEY_SID and sent["account_sid"] == ACCOUNT


# --- send_whatsapp ------------------------------------------------------------------------------


async def test_send_text(fake: FakeTwilio, client: Client) -> None:
    result = await send_whatsapp(client, to=USER, from_=SENDER, body="Hola 👋", status_callback="https://ours.example.com/s/1")
    [sent] = fake.sent_messages
    assert result.provider_message_id == sent["sid"] and sent["sid"].startswith("SM")
    assert result.status == "queued"
    assert sent["to"] == USER and sent["from_"] == SENDER and sent["body"] == "Hola 👋"
    assert sent["status_callback"] == "https://ours.example.com/s/1"
    assert sent["media_urls"] == [] and sent["content_sid"] is None


async def test_send_media(fake: FakeTwilio, client: Client) -> None:
    result = await send_whatsapp(client, to=USER, from_=SENDER, body="the menu", media_urls=["https://cdn.example.com/menu.pdf"])
    [sent] = fake.sent_messages
    assert result.provider_message_id == sent["sid"] and sent["sid"].startswith("MM")
    assert sent["media_urls"] == ["https://cdn.example.com/menu.pdf"]


async def test_send_template_through_a_messaging_service(fake: FakeTwilio, client: Client) -> None:
    result = await send_whatsapp(
        client, to=USER, messaging_service_sid=SERVICE, content_sid=TEMPLATE, content_variables={"1": "Ana", "2": "mañana"}
    )
    [sent] = fake.sent_messages
    assert result.status == "accepted"
    assert sent["content_sid"] == TEMPLATE and sent["body"] is None and sent["from_"] is None
    assert sent["messaging_service_sid"] == SERVICE
    assert json.loads(sent["content_variables"]) == {"1": "Ana", "2": "mañana"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"to": "", "from_": SENDER, "body": "hi"}, "to"),
        ({"to": USER, "body": "hi"}, "from_ or messaging_service_sid"),
        ({"to": USER, "from_": SENDER}, "nothing to send"),
        ({"to": USER, "from_": SENDER, "body": "hi", "content_sid": TEMPLATE}, "content_sid"),
    ],
)
async def test_send_argument_mistakes_are_clear(fake: FakeTwilio, client: Client, kwargs: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        await send_whatsapp(client, **kwargs)
    assert fake.requests == []


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_transient(fake: FakeTwilio, client: Client, status: int) -> None:
    fake.fail_next(1, status=status)
    with pytest.raises(SendError) as info:
        await send_whatsapp(client, to=USER, from_=SENDER, body="hi")
    assert info.value.transient is True
    assert info.value.code == str(20500 if status == 500 else 20503)
    assert info.value.retry_after is None


async def test_429_is_transient_and_honours_retry_after(fake: FakeTwilio, client: Client) -> None:
    fake.fail_next(1, status=429, retry_after=7)
    with pytest.raises(SendError) as info:
        await send_whatsapp(client, to=USER, from_=SENDER, body="hi")
    assert info.value.transient is True and info.value.code == "20429"
    assert info.value.retry_after == 7.0


async def test_retry_after_as_an_http_date(fake: FakeTwilio, client: Client) -> None:
    fake.fail_next(1, status=429, retry_after=email.utils.formatdate(time.time() + 30, usegmt=True))
    with pytest.raises(SendError) as info:
        await send_whatsapp(client, to=USER, from_=SENDER, body="hi")
    assert info.value.retry_after is not None and 25 <= info.value.retry_after <= 31


async def test_a_429_without_retry_after_leaves_it_to_the_caller(fake: FakeTwilio, client: Client) -> None:
    fake.fail_next(1, status=429, retry_after=None)
    with pytest.raises(SendError) as info:
        await send_whatsapp(client, to=USER, from_=SENDER, body="hi")
    assert info.value.transient is True and info.value.retry_after is None


async def test_retry_after_of_an_earlier_response_does_not_leak_into_the_next(fake: FakeTwilio, client: Client) -> None:
    fake.fail_next(1, status=429, retry_after=9)
    with pytest.raises(SendError):
        await send_whatsapp(client, to=USER, from_=SENDER, body="hi")
    fake.fail_next(1, status=500)
    with pytest.raises(SendError) as info:
        await send_whatsapp(client, to=USER, from_=SENDER, body="hi")
    assert info.value.retry_after is None


async def test_whatsapp_rate_limit_63018_is_transient(fake: FakeTwilio, client: Client) -> None:
    fake.fail_next(1, status=400, code=63018)
    with pytest.raises(SendError) as info:
        await send_whatsapp(client, to=USER, from_=SENDER, body="hi")
    assert info.value.transient is True and info.value.code == "63018"


async def test_outside_the_24h_window_is_final_with_code_63016(fake: FakeTwilio, client: Client) -> None:
    fake.fail_next(1, status=400, code=63016)
    with pytest.raises(SendError) as info:
        await send_whatsapp(client, to=USER, from_=SENDER, body="hi")
    error = info.value
    assert error.transient is False and error.code == "63016" and error.opted_out is False
    assert "24-hour" in str(error) and "template" in str(error)


async def test_opted_out_recipient_is_flagged(fake: FakeTwilio, client: Client) -> None:
    fake.fail_next(1, status=400, code=21610)
    with pytest.raises(SendError) as info:
        await send_whatsapp(client, to=USER, from_=SENDER, body="hi")
    assert info.value.transient is False and info.value.code == "21610" and info.value.opted_out is True


async def test_too_long_body_is_rejected_by_twilio_with_21617(fake: FakeTwilio, client: Client) -> None:
    with pytest.raises(SendError) as info:
        await send_whatsapp(client, to=USER, from_=SENDER, body="x" * 1601)
    assert info.value.transient is False and info.value.code == "21617"
    assert "1600" in str(info.value)
    assert fake.sent_messages == []


async def test_invalid_recipient_is_final_with_21211(client: Client) -> None:
    with pytest.raises(SendError) as info:
        await send_whatsapp(client, to="whatsapp:0000", from_=SENDER, body="hi")
    assert info.value.transient is False and info.value.code == "21211"


async def test_problem_details_errors_are_classified_too(fake: FakeTwilio, client: Client) -> None:
    fake.fail_next(1, status=400, code=63015, rfc9457=True)
    with pytest.raises(SendError) as info:
        await send_whatsapp(client, to=USER, from_=SENDER, body="hi")
    assert info.value.transient is False and info.value.code == "63015"
    fake.fail_next(1, status=503, rfc9457=True)
    with pytest.raises(SendError) as info:
        await send_whatsapp(client, to=USER, from_=SENDER, body="hi")
    assert info.value.transient is True


async def test_connection_lost_is_transient_and_may_have_sent(fake: FakeTwilio, client: Client) -> None:
    fake.fail_next(1, disconnect=True)
    with pytest.raises(SendError) as info:
        await send_whatsapp(client, to=USER, from_=SENDER, body="hi")
    assert info.value.transient is True and info.value.code == "connection_lost"
    assert "may have been sent" in str(info.value)


async def test_slow_twilio_times_out_as_transient(fake: FakeTwilio) -> None:
    """The client's own timeout applies (twilio's AsyncTwilioHttpClient would wait forever)."""
    http = make_http_client(timeout=0.3)
    try:
        fake.delay_next(1, 3.0, scope="messages")
        started = time.monotonic()
        with pytest.raises(SendError) as info:
            await send_whatsapp(tenant_client(fake, http), to=USER, from_=SENDER, body="hi")
        assert time.monotonic() - started < 2.0
    finally:
        await http.close()
    assert info.value.transient is True and info.value.code == "timeout"
    assert fake.requests[0].path.endswith("/Messages.json")  # it reached Twilio: the send is ambiguous


async def test_unreachable_twilio_is_transient_and_nothing_was_sent(http_client: BoundedAsyncTwilioHttpClient) -> None:
    client = make_client(ACCOUNT, TOKEN, api_base_url=closed_port_url(), http_client=http_client)
    with pytest.raises(SendError) as info:
        await send_whatsapp(client, to=USER, from_=SENDER, body="hi")
    assert info.value.transient is True and info.value.code == "connect_failed"


async def test_wrong_token_is_a_final_send_error(fake: FakeTwilio, http_client: BoundedAsyncTwilioHttpClient) -> None:
    client = tenant_client(fake, http_client, auth_token="not-the-token")
    with pytest.raises(SendError) as info:
        await send_whatsapp(client, to=USER, from_=SENDER, body="hi")
    assert info.value.transient is False and info.value.code == "20003"


async def test_no_secret_reaches_logs_or_errors(
    fake: FakeTwilio, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.fail_next(1, status=400, code=63016)
    with pytest.raises(SendError) as info:
        await send_whatsapp(client, to=USER, from_=SENDER, body="hi")
    await send_whatsapp(client, to=USER, from_=SENDER, body="hi")
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value.__cause__)
    assert TOKEN not in caplog.text
    assert "BEGIN Twilio API Request" not in caplog.text  # twilio's request logging stays quiet
    assert TOKEN not in repr(client)


# --- verify_credentials -------------------------------------------------------------------------


async def test_verify_credentials_returns_public_account_facts(client: Client) -> None:
    account = await verify_credentials(client, ACCOUNT)
    assert account["sid"] == ACCOUNT and account["status"] == "active" and account["friendly_name"]
    assert TOKEN not in json.dumps(account)  # Twilio returns the token; we never pass it on


async def test_verify_credentials_wrong_token(fake: FakeTwilio, http_client: BoundedAsyncTwilioHttpClient) -> None:
    client = tenant_client(fake, http_client, auth_token="wrong-token-value")
    with pytest.raises(InvalidInput) as info:
        await verify_credentials(client, ACCOUNT)
    message = str(info.value)
    assert message == (
        f"Twilio rejected the credentials for account {ACCOUNT} (HTTP 401): check the Account SID and Auth Token"
    )
    assert "wrong-token-value" not in message


async def test_verify_credentials_unknown_account(fake: FakeTwilio, http_client: BoundedAsyncTwilioHttpClient) -> None:
    unknown = "AC" + "0" * 32
    client = tenant_client(fake, http_client, account_sid=unknown, auth_token="", api_key_sid=KEY_SID, api_key_secret=KEY_SECRET)
    with pytest.raises(InvalidInput, match=rf"no account {unknown} that these credentials can access \(HTTP 404\)"):
        await verify_credentials(client, unknown)


async def test_verify_credentials_inactive_account(fake: FakeTwilio, http_client: BoundedAsyncTwilioHttpClient) -> None:
    client = tenant_client(fake, http_client, account_sid=OTHER_ACCOUNT, auth_token="other-token")
    with pytest.raises(InvalidInput, match="suspended"):
        await verify_credentials(client, OTHER_ACCOUNT)


async def test_verify_credentials_when_twilio_is_down(fake: FakeTwilio, client: Client, http_client: BoundedAsyncTwilioHttpClient) -> None:
    fake.fail_next(1, status=500, scope="accounts")
    with pytest.raises(TwilioUnavailable, match="try again"):
        await verify_credentials(client, ACCOUNT)
    unreachable = make_client(ACCOUNT, TOKEN, api_base_url=closed_port_url(), http_client=http_client)
    with pytest.raises(TwilioUnavailable, match="could not reach Twilio"):
        await verify_credentials(unreachable, ACCOUNT)


# --- send_typing_indicator ----------------------------------------------------------------------


async def test_typing_indicator_is_sent(fake: FakeTwilio, client: Client) -> None:
    inbound_sid = "SM" + "6a" * 16
    await send_typing_indicator(client, inbound_sid)
    [typing] = fake.typing_indicators
    assert typing["message_id"] == inbound_sid and typing["channel"] == "whatsapp"
    assert typing["auth_username"] == ACCOUNT


async def test_typing_indicator_failures_are_logged_not_raised(
    fake: FakeTwilio, client: Client, http_client: BoundedAsyncTwilioHttpClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    fake.fail_next(1, status=500, scope="typing")
    await send_typing_indicator(client, "SM" + "6a" * 16)
    unreachable = make_client(ACCOUNT, TOKEN, messaging_base_url=closed_port_url(), http_client=http_client)
    await send_typing_indicator(unreachable, "SM" + "6a" * 16)
    assert fake.typing_indicators == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "HTTP 500" in warnings[0]
    assert TOKEN not in caplog.text


# --- fetch_media --------------------------------------------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


async def test_fetch_media_with_the_accounts_credentials(fake: FakeTwilio, http: httpx.AsyncClient) -> None:
    image = b"\xff\xd8\xff" + bytes(range(256)) * 40
    url = fake.add_media(ACCOUNT, image, "image/jpeg")
    content, content_type = await fetch_media(url, ACCOUNT, TOKEN, max_bytes=len(image), http=http)
    assert content == image and content_type == "image/jpeg"
    assert [r.status for r in fake.requests] == [307, 200]  # followed Twilio's redirect to the CDN
    assert fake.requests[0].auth_username == ACCOUNT


async def test_fetch_media_with_an_api_key(fake: FakeTwilio, http: httpx.AsyncClient) -> None:
    url = fake.add_media(ACCOUNT, b"%PDF-1.7", "application/pdf")
    assert await fetch_media(url, KEY_SID, KEY_SECRET, max_bytes=1000, http=http) == (b"%PDF-1.7", "application/pdf")


async def test_fetch_media_with_wrong_credentials_fails_clearly(fake: FakeTwilio, http: httpx.AsyncClient) -> None:
    url = fake.add_media(ACCOUNT, b"data", "image/png")
    with pytest.raises(MediaFetchError, match="HTTP 401") as info:
        await fetch_media(url, ACCOUNT, "stale-token", max_bytes=1000, http=http)
    assert "stale-token" not in str(info.value)


async def test_fetch_media_without_credentials_is_refused_before_any_request(fake: FakeTwilio, http: httpx.AsyncClient) -> None:
    url = fake.add_media(ACCOUNT, b"data", "image/png")
    with pytest.raises(MediaFetchError, match="credentials"):
        await fetch_media(url, ACCOUNT, "", max_bytes=1000, http=http)
    assert fake.requests == []


async def test_fetch_media_over_the_cap_stops(fake: FakeTwilio, http: httpx.AsyncClient) -> None:
    url = fake.add_media(ACCOUNT, b"x" * 5001, "video/mp4")
    with pytest.raises(MediaFetchError, match="5000-byte limit"):
        await fetch_media(url, ACCOUNT, TOKEN, max_bytes=5000, http=http)


async def test_fetch_media_cap_also_holds_without_content_length(fake: FakeTwilio, http: httpx.AsyncClient) -> None:
    """A chunked answer (no Content-Length) is cut off while streaming."""
    url = fake.add_media(ACCOUNT, b"y" * 100_000, "audio/ogg", chunked=True)
    with pytest.raises(MediaFetchError, match="2500-byte limit"):
        await fetch_media(url, ACCOUNT, TOKEN, max_bytes=2500, http=http)
    content, _ = await fetch_media(url, ACCOUNT, TOKEN, max_bytes=100_000, http=http)
    assert len(content) == 100_000


async def test_fetch_media_missing_and_bad_urls(fake: FakeTwilio, http: httpx.AsyncClient) -> None:
    url = fake.add_media(ACCOUNT, b"data", "image/png")
    gone = url.rsplit("/", 1)[0] + "/ME" + "0" * 32
    with pytest.raises(MediaFetchError, match="404"):
        await fetch_media(gone, ACCOUNT, TOKEN, max_bytes=1000, http=http)
    with pytest.raises(MediaFetchError, match="http"):
        await fetch_media("file:///etc/passwd", ACCOUNT, TOKEN, max_bytes=1000, http=http)
    with pytest.raises(MediaFetchError, match="failed"):
        await fetch_media(closed_port_url() + "/m", ACCOUNT, TOKEN, max_bytes=1000, http=http)
    with pytest.raises(ValueError, match="max_bytes"):
        await fetch_media(url, ACCOUNT, TOKEN, max_bytes=0, http=http)
