"""A typed answer to offered choices: "2" (or "option 2", or a choice's title) after the
agent's numbered choices reaches the model with the choice it picks described, as a tapped
button is; offline mode answers about that choice. The stored message keeps what was typed.

The resolution's rules first (:mod:`callable_agents.core.conversation.turn.choices`), then
turns through the real pipeline on the terminal channel (numbered choices, no buttons) with
the fake OpenAI server as the model, and in offline mode.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from sqlalchemy import select, update

from callable_agents.core.contracts.effects import describe_pick, picked_title
from callable_agents.core.conversation.turn.choices import (
    offered_choices,
    picked_choice,
    standing_offer,
    with_pick_described,
)
from callable_agents.core.conversation.turn.offline import NO_ANSWER
from callable_agents.core.conversation.turn.prompt import latest_customer_text
from callable_agents.core.models import Agent, Channel, Message
from callable_agents.core.runtime import Runtime
from callable_agents.testing.openai_server import FakeOpenAI, message_text
from tests.core.pipeline_helpers import connect_fake_openai, drain, make_agent_channel, outbound, say

CHOICES = [
    {"id": "choice-1", "title": "Collection"},
    {"id": "choice-2", "title": "Delivery"},
    {"id": "choice-3", "title": "Gift wrapping"},
]
OFFER_META = {"effect": "choices", "choices": {"text": "How would you like it?", "options": CHOICES}}


# --- the rules -------------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["2", "2.", "2)", "#2", "# 2", "no. 2", "No 2", "no.2", "nr 2", "option 2",
                                    "Option 2.", "number 2", "choice 2", " 2 ", "\n2\n", "02"])
def test_a_bare_number_in_range_picks_that_choice(answer: str) -> None:
    assert picked_choice(answer, CHOICES) == CHOICES[1]


@pytest.mark.parametrize("answer", ["0", "4", "12", "-1", "2 please", "2 and 3", "2.5", "22b", "no", "option", "",
                                    "   ", "the second", "#"])
def test_anything_else_picks_nothing(answer: str) -> None:
    assert picked_choice(answer, CHOICES) is None


@pytest.mark.parametrize("answer", ["Delivery", "delivery", "  DELIVERY ", "Gift  wrapping", "gift\twrapping"])
def test_a_choice_title_picks_it_whatever_its_case_and_spacing(answer: str) -> None:
    assert picked_choice(answer, CHOICES) in CHOICES[1:]


def test_a_title_that_is_also_another_choices_number_is_left_to_the_model() -> None:
    people = [{"id": "choice-1", "title": "3"}, {"id": "choice-2", "title": "2"}, {"id": "choice-3", "title": "1"}]
    assert picked_choice("3", people) is None  # the third choice ("1"), or the choice titled "3"?
    assert picked_choice("2", people) == people[1]  # both readings agree
    assert picked_choice("no. 3", people) == people[2]  # a number, said so


def test_without_choices_a_number_is_just_a_number() -> None:
    assert picked_choice("2", []) is None
    assert with_pick_described("2", []) == "2"


def test_a_pick_is_described_after_what_was_typed() -> None:
    assert with_pick_described(" option 2 ", CHOICES) == "option 2\n[The customer picked the choice 'Delivery' (id choice-2)]"
    assert with_pick_described("gift wrapping", CHOICES) == (
        "gift wrapping\n[The customer picked the choice 'Gift wrapping' (id choice-3)]"
    )
    assert with_pick_described("7", CHOICES) == "7"
    assert with_pick_described("Delivery tomorrow?", CHOICES) == "Delivery tomorrow?"


def test_a_burst_where_only_one_message_is_a_number() -> None:
    burst = ["how long does it take?", "3", "thanks"]
    assert [with_pick_described(text, CHOICES) for text in burst] == [
        "how long does it take?",
        "3\n[The customer picked the choice 'Gift wrapping' (id choice-3)]",
        "thanks",
    ]


def test_the_offer_read_from_a_stored_message() -> None:
    assert offered_choices(OFFER_META) == CHOICES
    assert offered_choices({"part": 0}) == []
    assert offered_choices(None) == []
    assert offered_choices({"choices": "1. Collection"}) == []
    assert offered_choices({"choices": {"options": [{"id": "a"}, {"id": "b", "title": " "}, {"id": "c", "title": "C"}, "x"]}}) == [
        {"id": "c", "title": "C"}
    ]


def test_the_offer_stands_among_the_agents_messages_since_the_customer_last_wrote() -> None:
    reply = ("agent", {"part": 0, "outcome": "answered"})
    item = ("agent", {"effect": "send_item"})
    offer = ("agent", OFFER_META)
    customer = ("customer", {})
    person = ("human", {})
    notice = ("system", {"effect": "hand_off"})
    # newest first
    assert standing_offer([offer, reply, customer]) == CHOICES
    assert standing_offer([item, offer, reply, customer]) == CHOICES  # an item sent after the offer
    assert standing_offer([reply, customer, offer]) == []  # answered before
    assert standing_offer([person, offer]) == []  # a person spoke since
    assert standing_offer([notice, offer]) == []
    assert standing_offer([reply, reply]) == []
    assert standing_offer([]) == []


def test_a_described_pick_reads_as_the_choices_title() -> None:
    tapped = describe_pick("Delivery", CHOICES[1], how="tapped")
    assert tapped == "Delivery\n[The customer tapped the choice 'Delivery' (id choice-2)]"
    assert picked_title(tapped) == "Delivery"
    assert picked_title(describe_pick("2", {"id": "x", "title": "Bella's \"special\""})) == "Bella's \"special\""
    assert picked_title("2") is None
    assert picked_title("[The customer picked the choice '\\N' (id x)]") is None  # not a string repr() writes
    messages = [
        AIMessage(content="How would you like it?\n1. Collection\n2. Delivery"),
        HumanMessage(content="how much is it?"),
        HumanMessage(content=with_pick_described("2", CHOICES)),
    ]
    assert latest_customer_text(messages) == "how much is it?\nDelivery"


# --- turns through the pipeline --------------------------------------------------------

MODEL = {"integration": "openai", "model": "gpt-test", "max_retries": 0}
TOOLS = [{"type": "offer_choices", "name": "offer_choices", "config": {}}]
FACTS = {
    "name": "Bella's Bakery",
    "facts": [
        "Collection is from the shop counter, ready two hours after you order.",
        "Delivery is free within five miles of the shop and arrives the next morning.",
    ],
}


async def offer_choices_turn(runtime: Runtime, fake: FakeOpenAI, **agent_fields: Any) -> Channel:
    """A terminal channel whose agent has just offered CHOICES (numbered: the channel has no buttons)."""
    _agent, channel = await make_agent_channel(runtime, model_settings=MODEL, tools=TOOLS, **agent_fields)
    await connect_fake_openai(runtime, channel.workspace_id, fake.base_url)
    fake.queue_tool_call("offer_choices", {"text": "How would you like it?", "choices": [c["title"] for c in CHOICES]})
    fake.queue_reply("Let me know!")
    accepted = await say(runtime, channel, "I'd like a cake")
    await drain(runtime)
    [offered] = [m for m in await outbound(runtime, accepted.conversation_id) if (m.meta or {}).get("effect") == "choices"]
    assert offered.text.endswith("3. Gift wrapping\nReply with the number of your choice.")
    return channel


def user_texts(fake: FakeOpenAI) -> list[str]:
    """The customer messages of the model's latest request, as the model read them."""
    return [message_text(m) for m in fake.chat_requests[-1].messages if m.get("role") == "user"]


async def as_the_model_reads(runtime: Runtime, channel: Channel, fake: FakeOpenAI, text: str) -> str:
    """``text`` sent and answered: the customer's message as the model's request carried it."""
    fake.queue_reply("Noted.")
    await say(runtime, channel, text)
    await drain(runtime)
    return user_texts(fake)[-1]


async def customer_texts(runtime: Runtime, channel: Channel) -> list[str]:
    """The customer's messages on ``channel`` as stored."""
    async with runtime.db.sessions() as session:
        rows = await session.scalars(
            select(Message.text).where(Message.channel_id == channel.id, Message.author == "customer").order_by(Message.id)
        )
        return list(rows.all())


async def test_a_typed_number_reaches_the_model_as_the_choice_it_picks(sqlite_runtime: Runtime) -> None:
    runtime = sqlite_runtime
    with FakeOpenAI() as fake:
        channel = await offer_choices_turn(runtime, fake)
        picked = await as_the_model_reads(runtime, channel, fake, " 2 ")
        assert picked == "2\n[The customer picked the choice 'Delivery' (id choice-2)]"
        # The offer was answered: a number now is just a number.
        assert await as_the_model_reads(runtime, channel, fake, "3") == "3"
    # What the customer typed is what the inbox shows.
    assert await customer_texts(runtime, channel) == ["I'd like a cake", " 2 ", "3"]


async def test_in_a_burst_only_the_number_is_described(sqlite_runtime: Runtime) -> None:
    runtime = sqlite_runtime
    with FakeOpenAI() as fake:
        channel = await offer_choices_turn(runtime, fake)
        fake.queue_reply("Gift wrapping takes a day.")
        await say(runtime, channel, "how long does it take?")
        await say(runtime, channel, "#3")
        await drain(runtime)  # one turn answers both
        assert user_texts(fake)[-2:] == [
            "how long does it take?",
            "#3\n[The customer picked the choice 'Gift wrapping' (id choice-3)]",
        ]


async def test_an_out_of_range_number_and_a_title_typed(sqlite_runtime: Runtime) -> None:
    runtime = sqlite_runtime
    with FakeOpenAI() as fake:
        channel = await offer_choices_turn(runtime, fake)
        assert await as_the_model_reads(runtime, channel, fake, "7") == "7"  # the model handles it
        channel = await offer_choices_turn(runtime, fake, workspace_name="Other shop")
        picked = await as_the_model_reads(runtime, channel, fake, "collection")
        assert picked == "collection\n[The customer picked the choice 'Collection' (id choice-1)]"


async def test_a_number_with_no_choices_offered_is_passed_on(sqlite_runtime: Runtime) -> None:
    runtime = sqlite_runtime
    with FakeOpenAI() as fake:
        _agent, channel = await make_agent_channel(runtime, model_settings=MODEL, tools=TOOLS)
        await connect_fake_openai(runtime, channel.workspace_id, fake.base_url)
        assert await as_the_model_reads(runtime, channel, fake, "hi") == "hi"
        assert await as_the_model_reads(runtime, channel, fake, "2") == "2"


async def offline_answer(runtime: Runtime, text: str) -> str:
    """An agent offers CHOICES, then loses its model (its key removed): offline mode answers
    ``text`` from the agent's facts. The answer."""
    with FakeOpenAI() as fake:
        channel = await offer_choices_turn(runtime, fake)
    async with runtime.db.session() as session:
        await session.execute(update(Agent).where(Agent.id == channel.agent_id).values(model_settings={}, business_info=FACTS))
    accepted = await say(runtime, channel, text)
    await drain(runtime)
    return [m.text for m in await outbound(runtime, accepted.conversation_id)][-1]


async def test_offline_mode_answers_a_numbered_pick_about_the_choice(sqlite_runtime: Runtime) -> None:
    reply = await offline_answer(sqlite_runtime, "option 2")
    assert reply.startswith("Delivery is free within five miles of the shop and arrives the next morning.")
    assert "offline mode" in reply and reply != NO_ANSWER


async def test_offline_mode_answers_a_tapped_choice_about_it(sqlite_runtime: Runtime) -> None:
    """What a channel that knows the tap (WhatsApp's buttons) stores is read the same way."""
    reply = await offline_answer(sqlite_runtime, describe_pick("Collection", CHOICES[0], how="tapped"))
    assert reply.startswith("Collection is from the shop counter, ready two hours after you order.")
