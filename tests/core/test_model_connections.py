"""A runtime's model calls use the runtime's own connections: a second event loop in the same
process (a CLI command after another, one test after another) never reuses a connection an
earlier loop made, which fails with RuntimeError and answers with the fallback message."""

from __future__ import annotations

import asyncio
from pathlib import Path

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.testing.openai_server import FakeOpenAI
from tests.conftest import make_settings
from tests.core.pipeline_helpers import drain, outbound, say
from tests.core.test_agent_turns import online_agent


def test_a_model_server_answers_turns_run_on_two_event_loops_one_after_the_other(tmp_path: Path) -> None:
    with FakeOpenAI(api_key="sk-workspace-key") as fake:  # one server, one base URL, for both loops

        async def one_turn(data_dir: Path, reply: str) -> list[str]:
            runtime = await open_runtime(make_settings(data_dir), migrate=True)
            try:
                _agent, channel = await online_agent(runtime, fake, tools=[])
                fake.queue_reply(reply)
                accepted = await say(runtime, channel, "Are you open today?")
                await drain(runtime)
                return [message.text for message in await outbound(runtime, accepted.conversation_id)]
            finally:
                await close_runtime(runtime)

        assert asyncio.run(one_turn(tmp_path / "first", "Yes, until six.")) == ["Yes, until six."]
        assert asyncio.run(one_turn(tmp_path / "second", "Yes, until seven.")) == ["Yes, until seven."]
