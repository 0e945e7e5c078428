"""A person picks one of the Twilio account's approved templates in the inbox and fills its
variables: it goes out with that template's Content SID and their values, whatever the
channel's configured template; a missing or unknown variable is refused, named."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from callable_agents.core.contracts.channels import SendError
from callable_agents.core.conversation import people
from callable_agents.core.conversation.jobs import register_conversation_jobs
from callable_agents.core.conversation.templates import available_templates
from callable_agents.core.errors import InvalidInput
from callable_agents.core.jobs import Worker
from callable_agents.core.runtime import Runtime
from callable_agents.plugins.whatsapp.send import send
from callable_agents.testing.twilio_server import FakeTwilio
from tests.e2e.whatsapp_support import ACCOUNT, SENDER, TOKEN, Chat, make_chat, whatsapp_runtime

PERSON = people.Person(None, "Dana")


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        server.add_account(ACCOUNT, TOKEN)
        yield server


@pytest.fixture
async def runtime(tmp_path: Path, fake: FakeTwilio) -> AsyncIterator[Runtime]:
    async with whatsapp_runtime(tmp_path, fake.base_url) as opened:
        register_conversation_jobs(opened)  # the worker runs the person's send job
        yield opened


def seed(fake: FakeTwilio) -> tuple[str, str]:
    ready = fake.add_content(
        ACCOUNT, "order_ready", {"twilio/text": {"body": "Hi {{1}}, order {{2}} is ready"}},
        variables={"1": "Ana", "2": "A-17"}, approval=("order_ready", "UTILITY", "approved"),
    )
    later = fake.add_content(
        ACCOUNT, "reply_later", {"twilio/text": {"body": "About your question: {{1}}"}},
        variables={"1": "We open at 7."}, approval=("reply_later", "UTILITY", "approved"),
    )
    return ready, later


async def outside_window(runtime: Runtime) -> Chat:
    return await make_chat(
        runtime, config={"sender": SENDER, "template": {"name": "reply_later", "variables": {"1": "{reply}"}}},
        last_inbound_hours_ago=30,
    )


async def test_the_inbox_offers_the_configured_template_first_then_the_accounts(runtime: Runtime, fake: FakeTwilio) -> None:
    ready, later = seed(fake)
    chat = await outside_window(runtime)
    templates = await available_templates(runtime, chat.world.channel)
    assert [(t.name, t.configured, t.takes_text) for t in templates] == [("reply_later", True, True), ("order_ready", False, False)]
    assert templates[0].status == "approved" and templates[0].category == "UTILITY"  # matched to the approved one
    assert templates[1].id == ready and templates[1].variables == {"1": "Ana", "2": "A-17"}
    assert later not in [t.id for t in templates]


async def test_a_chosen_approved_template_goes_out_with_the_persons_variables(runtime: Runtime, fake: FakeTwilio) -> None:
    ready, _later = seed(fake)
    chat = await outside_window(runtime)
    workspace_id, conversation_id = chat.world.workspace.id, chat.conversation.id
    sent = await people.reply_as_person(
        runtime, workspace_id, conversation_id, PERSON, "", template_id=ready, variables={"1": "Ana", "2": " B-42 "},
    )
    await Worker(runtime).drain(timeout=10)
    [created] = fake.sent_messages
    assert created["content_sid"] == ready and created["body"] is None
    assert json.loads(created["content_variables"]) == {"1": "Ana", "2": "B-42"}
    assert sent.took_over
    # The configured template still carries the person's text in its {reply} variable.
    await people.reply_as_person(runtime, workspace_id, conversation_id, PERSON, "Your cake is ready.", template_id="reply_later")
    await Worker(runtime).drain(timeout=10)
    assert fake.sent_messages[-1]["content_sid"] != ready
    assert json.loads(fake.sent_messages[-1]["content_variables"]) == {"1": "Dana: Your cake is ready."}


async def test_missing_unknown_or_misplaced_variables_are_refused_naming_them(runtime: Runtime, fake: FakeTwilio) -> None:
    ready, _later = seed(fake)
    chat = await outside_window(runtime)
    workspace_id, conversation_id = chat.world.workspace.id, chat.conversation.id
    with pytest.raises(InvalidInput, match=r"variables\.2: template 'order_ready \(en\)' needs a value for variable 2 \(e\.g\. 'A-17'\)"):
        await people.reply_as_person(runtime, workspace_id, conversation_id, PERSON, "", template_id=ready, variables={"1": "Ana", "2": "  "})
    with pytest.raises(InvalidInput, match=r"variables\.9: template 'order_ready \(en\)' has no variable 9 \(it has: 1, 2\)"):
        await people.reply_as_person(runtime, workspace_id, conversation_id, PERSON, "", template_id=ready, variables={"1": "a", "2": "b", "9": "c"})
    with pytest.raises(InvalidInput, match=r"variables\.1: at most 1000 characters"):
        await people.reply_as_person(runtime, workspace_id, conversation_id, PERSON, "", template_id=ready, variables={"1": "a" * 1001, "2": "b"})
    with pytest.raises(InvalidInput, match="variables: the channel's own template fills its variables from its config"):
        await people.reply_as_person(runtime, workspace_id, conversation_id, PERSON, "hi", template_id="reply_later", variables={"1": "x"})
    with pytest.raises(InvalidInput, match="template: the channel has no template 'HXnope'"):
        await people.reply_as_person(runtime, workspace_id, conversation_id, PERSON, "", template_id="HXnope", variables={})
    await Worker(runtime).drain(timeout=10)
    assert fake.sent_messages == []  # nothing went out


async def test_send_refuses_a_chosen_template_missing_a_variable_or_no_longer_approved(runtime: Runtime, fake: FakeTwilio) -> None:
    ready, _later = seed(fake)
    chat = await outside_window(runtime)
    stored = await chat.reply("Template order_ready")
    with pytest.raises(SendError) as info:
        await send(runtime, dataclasses.replace(stored, template={"id": ready, "variables": {"1": "Ana"}}))
    assert info.value.code == "template_variables" and "'order_ready' needs a value for the variables 2" in str(info.value)
    with pytest.raises(SendError) as info:
        await send(runtime, dataclasses.replace(stored, template={"id": "HX" + "0" * 32, "variables": {}}))
    assert info.value.code == "template_not_found" and not info.value.transient
    assert fake.sent_messages == []
