"""The scripted model of bench/answers.py, on requests of its own (held out from
bench/answers.yaml: other texts and questions, so the responder is not tuned to the bench),
and through the real pipeline: its markers become the reply's citations."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.scripted_model import AFTER_HANDOFF_REPLY, NOT_FOUND_REPLY, respond, sentences_of
from callable_agents.core.conversation.turn.prompt import passages_prompt
from callable_agents.testing import (
    FakeOpenAI,
    ScriptedReply,
    WorkspaceRef,
    connect_fake_openai,
    create_test_agent,
    open_test_runtime,
    run_turn,
)

HANDOFF_TOOL = {
    "type": "function",
    "function": {
        "name": "get_a_human",
        "description": "Hand the conversation to a person on the team.",
        "parameters": {"type": "object", "properties": {"why": {"type": "string"}}, "required": ["why"]},
    },
}
PASSAGES = [
    {"title": "Bike hire", "text": "Rates\nCity bikes cost £12 a day. Electric bikes cost £30 a day,\nhelmet included."},
    {"title": "Repairs", "text": "Do you fix punctures?\nWe fix punctures while you wait, from £8."},
]


def request(question: str, passages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are the assistant of a bike shop."},
            {"role": "user", "content": question},
            {"role": "system", "content": passages_prompt(passages)},
        ],
        "tools": tools or [],
    }


def test_it_quotes_the_best_matching_sentence_of_the_best_passage_with_its_marker() -> None:
    assert respond(request("How much is an electric bike for a day?", PASSAGES)) == (
        "Electric bikes cost £30 a day, helmet included. [1]"
    )
    assert respond(request("Can you fix a puncture?", PASSAGES)) == "We fix punctures while you wait, from £8. [2]"


def test_it_says_it_could_not_find_what_no_passage_mentions() -> None:
    assert respond(request("Do you sell skateboards?", PASSAGES)) == NOT_FOUND_REPLY
    assert respond(request("Do you sell skateboards?", [])) == NOT_FOUND_REPLY


def test_it_hands_off_with_the_arguments_the_tool_requires_then_says_so() -> None:
    reply = respond(request("I'd like to talk to a real person", PASSAGES, tools=[HANDOFF_TOOL]))
    assert isinstance(reply, ScriptedReply)
    [call] = reply.tool_calls
    assert call.name == "get_a_human"
    assert isinstance(call.arguments, Mapping) and set(call.arguments) == {"why"} and call.arguments["why"]
    after = request("I'd like to talk to a real person", PASSAGES, tools=[HANDOFF_TOOL])
    after["messages"][2:2] = [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                               "function": {"name": "get_a_human", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "Handed off."},
    ]
    assert respond(after) == AFTER_HANDOFF_REPLY
    # Without a tool that hands off, it answers as it can.
    assert respond(request("I'd like to talk to a real person", PASSAGES)) == NOT_FOUND_REPLY


def test_sentences_leave_out_headings_and_questions_and_join_wrapped_lines() -> None:
    text = "Opening\nWe open at 9:00 and\nclose at 17:00.\nIs it free?\n- Tea: £2\n- Coffee: £3\nCash only."
    assert sentences_of(text) == ["We open at 9:00 and close at 17:00.", "Tea: £2", "Coffee: £3", "Cash only."]


SHOP = """
version: 1
workspace: {slug: bikes, name: Bikes}
knowledge_bases:
  - name: shop
    sources:
      - {kind: text, title: Bike hire, text: "City bikes cost £12 a day. Electric bikes cost £30 a day, helmet included."}
      - {kind: text, title: Repairs, text: "We fix punctures while you wait, from £8. Gears are tuned in a day."}
"""


async def test_through_the_pipeline_its_marker_cites_that_passage_only(tmp_path: Path) -> None:
    from callable_agents.apply import apply_document
    from callable_agents.core.store.workspaces import get_workspace

    with FakeOpenAI(responder=respond) as fake:
        async with open_test_runtime(tmp_path) as runtime:
            await apply_document(runtime, SHOP, None)
            async with runtime.db.session() as session:
                row = await get_workspace(session, "bikes")
                workspace = WorkspaceRef(id=row.id, slug=row.slug, name=row.name)
            agent = await create_test_agent(
                runtime, workspace, knowledge_bases=["shop"],
                tools=[{"type": "handoff", "name": "handoff", "config": {}}],
                model_settings=await connect_fake_openai(runtime, workspace, fake),
            )
            repair = await run_turn(runtime, agent, "Can you fix a puncture?", user="a")
            person = await run_turn(runtime, agent, "Can I speak to a human?", user="b")
    assert (repair.outcome, repair.reply) == ("answered", "We fix punctures while you wait, from £8.")
    assert [citation["title"] for citation in repair.messages[-1].meta["citations"]] == ["Repairs"]
    assert person.outcome == "handed_off"
