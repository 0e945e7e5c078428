"""The prompt's static prefix (system prompt, business info, rules, channel guidance, tool
definitions) is the same bytes on every turn of every conversation of an agent, so a
provider's prefix cache applies: read from the requests the fake OpenAI server received."""

from __future__ import annotations

import json


from callable_agents.core.runtime import Runtime
from callable_agents.testing.openai_server import FakeOpenAI, RecordedRequest
from tests.core.pipeline_helpers import ack, connect_fake_openai, drain, make_agent_channel, say


def prefix_of(request: RecordedRequest) -> str:
    """The request's first message and its tool definitions, as the bytes sent."""
    return json.dumps(request.messages[0]) + json.dumps(request.tools)


async def test_the_static_prefix_is_identical_across_turns_and_conversations(sqlite_runtime: Runtime) -> None:
    runtime = sqlite_runtime
    with FakeOpenAI(responder=ack) as fake:
        _agent, channel = await make_agent_channel(
            runtime,
            model_settings={"integration": "openai", "model": "gpt-test", "max_retries": 0},
            tools=[{"type": "handoff", "name": "talk_to_a_person", "config": {}}],
        )
        await connect_fake_openai(runtime, channel.workspace_id, fake.base_url)
        questions = ["When do you open?", "Do you sell rye bread?", "Can I pay by card?"]
        for user in ("alice", "bob"):
            for question in questions:
                await say(runtime, channel, f"{question} ({user})", user=user)
                await drain(runtime)
        requests = fake.chat_requests

    assert len(requests) == 6
    first = requests[0]
    assert first.messages[0]["role"] == "system"
    static = first.messages[0]["content"]
    assert "Bella's Bakery" in static and "Mon-Sat 7:00-18:00" in static and "talk_to_a_person" in static
    assert first.tool_names == ["talk_to_a_person"]
    assert {prefix_of(request) for request in requests} == {prefix_of(first)}
    for request in requests:
        # Nothing of the conversation is in it; the turn's passages come last, after the history.
        assert "alice" not in prefix_of(request) and "bob" not in prefix_of(request)
        assert request.messages[-1]["role"] == "system" and "Knowledge passages" in request.messages[-1]["content"]
    # The history follows the prefix and grows turn by turn.
    assert [len(request.messages) for request in requests] == [3, 5, 7, 3, 5, 7]
