"""The Content API through the real ``twilio`` client against the fake: choices become
quick-reply buttons (up to 3) or a list picker (up to 10); the account's approved templates
are listed with name, language, variables and category."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from twilio.rest import Client

from callable_agents.core.contracts.channels import SendError
from callable_agents.plugins.whatsapp.content_api import (
    Template,
    choices_request,
    create_choices_content,
    list_templates,
)
from callable_agents.plugins.whatsapp.twilio_api import BoundedAsyncTwilioHttpClient, make_client, make_http_client
from callable_agents.testing.twilio_server import FakeTwilio

ACCOUNT = "AC" + "1f" * 16
TOKEN = "tenant-auth-token-s3cr3t-value"
OTHER = "AC" + "2e" * 16


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        server.add_account(ACCOUNT, TOKEN)
        server.add_account(OTHER, "other-token")
        yield server


@pytest.fixture
async def client(fake: FakeTwilio) -> AsyncIterator[Client]:
    http = make_http_client(timeout=2.0)
    assert isinstance(http, BoundedAsyncTwilioHttpClient)
    yield make_client(ACCOUNT, TOKEN, api_base_url=fake.base_url, content_base_url=fake.base_url, http_client=http)
    await http.close()


def choices(n: int) -> list[dict[str, str]]:
    return [{"id": f"size-{k}", "title": f"Size {k}"} for k in range(n)]


async def test_three_choices_become_quick_reply_buttons(client: Client, fake: FakeTwilio) -> None:
    sid = await create_choices_content(client, "Which size?", choices(3), friendly_name="choices-1")
    [content] = fake.contents
    assert content["sid"] == sid and sid.startswith("HX") and content["account_sid"] == ACCOUNT
    assert content["types"] == {"twilio/quick-reply": {
        "body": "Which size?",
        "actions": [{"type": "QUICK_REPLY", "title": f"Size {k}", "id": f"size-{k}"} for k in range(3)],
    }}


async def test_four_to_ten_choices_become_a_list_picker(client: Client, fake: FakeTwilio) -> None:
    await create_choices_content(client, "Which cake?", choices(10), friendly_name="choices-2")
    picker = fake.contents[0]["types"]["twilio/list-picker"]
    assert picker["button"] and [item["id"] for item in picker["items"]] == [f"size-{k}" for k in range(10)]
    with pytest.raises(ValueError, match="choices: expected 1 to 10, got 11"):
        choices_request("x", choices(11), friendly_name="too-many")


async def test_content_twilio_refuses_is_a_final_send_error(client: Client, fake: FakeTwilio) -> None:
    long_titles = [{"id": "a", "title": "x" * 30}]  # over a list item's 24 characters, as sent raw
    request = {"friendly_name": "bad", "language": "en", "types": {"twilio/list-picker": {
        "body": "b", "button": "Choose", "items": [{"id": "a", "item": "x" * 30}]}}}
    response = await fake_post_json(fake, "/v1/Content", request)
    assert response[0] == 400 and "24 characters" in response[1]
    # Our request builder cuts list titles to fit, so Twilio accepts what we send.
    await create_choices_content(client, "b", long_titles * 4, friendly_name="fits")
    fake.fail_next(status=503, scope="content")
    with pytest.raises(SendError) as error:
        await create_choices_content(client, "b", choices(2), friendly_name="later")
    assert error.value.transient


async def fake_post_json(fake: FakeTwilio, path: str, body: object) -> tuple[int, str]:
    import httpx

    async with httpx.AsyncClient(auth=(ACCOUNT, TOKEN)) as http:
        response = await http.post(fake.base_url + path, json=body)
    return response.status_code, response.text


async def test_only_approved_templates_of_the_account_are_listed(client: Client, fake: FakeTwilio) -> None:
    approved = fake.add_content(
        ACCOUNT, "order_update", {"twilio/text": {"body": "Hi {{1}}, your order from {{2}} is ready."}},
        variables={"1": "Ana", "2": "Bella's Bakery"}, approval=("order_update", "UTILITY", "approved"), language="es",
    )
    fake.add_content(ACCOUNT, "promo", {"twilio/text": {"body": "Sale!"}}, approval=("promo", "MARKETING", "rejected"))
    fake.add_content(ACCOUNT, "draft", {"twilio/text": {"body": "Draft"}})  # never submitted
    fake.add_content(OTHER, "theirs", {"twilio/text": {"body": "x"}}, approval=("theirs", "UTILITY", "approved"))
    assert await list_templates(client) == [Template(
        content_sid=approved, name="order_update", language="es", category="UTILITY",
        variables={"1": "Ana", "2": "Bella's Bakery"}, content_type="twilio/text",
    )]
    fake.set_content_approval(approved, "order_update", "UTILITY", "paused")
    assert await list_templates(client) == []


def test_the_fake_refuses_content_it_would_not_accept() -> None:
    with FakeTwilio() as fake:
        fake.add_account(ACCOUNT, TOKEN)
        with pytest.raises(ValueError, match="1 to 3 actions"):
            fake.add_content(ACCOUNT, "x", {"twilio/quick-reply": {"body": "b", "actions": []}})
        with pytest.raises(ValueError, match="unknown content type"):
            fake.add_content(ACCOUNT, "x", {"twilio/nope": {}})
