"""The kit's fixtures from a project's point of view: an offline agent's turn (no model, no
knowledge: it says it has no answer) through the real pipeline, read back as reply parts and
trace; a repeated provider message id; a conversation that continues."""

from __future__ import annotations

from typing import Any

import pytest

from callable_agents.testing import FakeOpenAI, TurnRunner


@pytest.fixture
def callable_model_settings() -> dict[str, Any]:
    return {}  # offline mode: no model


async def test_an_offline_turn_stores_its_reply_and_trace(callable_run_turn: TurnRunner) -> None:
    result = await callable_run_turn("Hello, are you there?", provider_message_id="m-1")
    assert result.outcome == "no_answer"  # offline mode with no knowledge base to answer from
    assert result.parts and result.reply == "\n\n".join(result.parts)
    assert all(message.status == "delivered" for message in result.messages)  # the terminal channel stores to deliver
    assert result.trace is not None and result.trace["parts"] == len(result.parts)
    assert result.trace["answered"] == [result.message_id]

    again = await callable_run_turn("Hello, are you there?", provider_message_id="m-1")
    assert again.duplicate and again.messages == () and again.trace is None
    assert again.conversation_id == result.conversation_id

    later = await callable_run_turn("Thanks!")
    assert later.conversation_id == result.conversation_id and later.message_id > result.message_id
    assert later.trace is not None and later.trace["answered"] == [later.message_id]


async def test_the_fake_openai_model_is_not_called_offline(
    callable_run_turn: TurnRunner, callable_fake_openai: FakeOpenAI
) -> None:
    await callable_run_turn("Hi")
    assert callable_fake_openai.chat_requests == []
