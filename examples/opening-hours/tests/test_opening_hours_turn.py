"""A whole turn through the real pipeline: a customer asks, the model (the loopback fake OpenAI
server, over HTTP) calls ``opening_status``, the plugin's tool answers, and the reply the
customer gets is built from that answer.

The fake plays the model's part: it asks for the tool call it was given, then replies with
whatever the tool returned, so these tests check what our tool did inside a real turn, not
what a model would say.
"""

from __future__ import annotations

from typing import Any

from callable_agents.testing import FakeOpenAI, TurnRunner, last_tool_result


def reply_with_the_tool_result(request: dict[str, Any]) -> str:
    return f"Here is what I found:\n{last_tool_result(request)}"


async def test_the_model_calls_the_tool_and_the_reply_uses_its_result(
    callable_run_turn: TurnRunner, callable_fake_openai: FakeOpenAI
) -> None:
    callable_fake_openai.queue_tool_call("opening_status", {"when": "2025-01-10T23:00"})
    callable_fake_openai.responder = reply_with_the_tool_result

    result = await callable_run_turn("Are you open this Friday, 10 January, at 11 pm?")

    assert result.outcome == "answered"
    assert result.tool_rounds == 1
    assert result.reply.splitlines() == [
        "Here is what I found:",
        "Open on Friday 10 January 2025 at 23:00, Europe/Madrid time [2025-01-10T23:00+01:00].",
        "Closes at 02:00 the next day (Saturday 11 January 2025) [2025-01-11T02:00+01:00].",
        "Opens again at 22:00 the next day (Saturday 11 January 2025) [2025-01-11T22:00+01:00].",
        "Hours on Friday 10 January 2025: 08:00-14:00, 17:00-20:30, 22:00-02:00.",
    ]
    asked, answered = callable_fake_openai.chat_requests
    # The model was offered the tool under the name the agent gives it, with its description.
    assert asked.tool_names == ["opening_status"]
    (offered,) = asked.json_body["tools"]
    assert "Time zone: Europe/Madrid." in offered["function"]["description"]
    # ... and got back the tool's answer, as the result of its call.
    assert last_tool_result(answered.json_body).startswith("Open on Friday 10 January 2025 at 23:00")


async def test_a_closure_day_reaches_the_customer(callable_run_turn: TurnRunner, callable_fake_openai: FakeOpenAI) -> None:
    callable_fake_openai.queue_tool_call("opening_status", {"when": "2025-12-25T12:00"})
    callable_fake_openai.responder = reply_with_the_tool_result

    result = await callable_run_turn("Are you open at noon on Christmas Day?")

    assert result.tool_rounds == 1
    assert "Closed on Thursday 25 December 2025 at 12:00, Europe/Madrid time" in result.reply
    assert "Thursday 25 December 2025 is a closure day (Christmas Day)" in result.reply
