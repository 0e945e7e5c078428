"""The Test panel's channels are the dashboard's own: never listed with the business's
channels, their conversations never in the inbox."""

from __future__ import annotations

from callable_agents.core.conversation.inbox import list_conversations
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.channels import TEST_CHANNEL_KIND, list_channels
from callable_agents.core.store.test_channel import agent_test_channel
from tests.core.pipeline_helpers import make_agent_channel, say


async def test_test_panel_channels_and_conversations_stay_out_of_lists(sqlite_runtime: Runtime) -> None:
    agent, channel = await make_agent_channel(sqlite_runtime)
    async with sqlite_runtime.db.session() as session:
        test_channel = await agent_test_channel(session, sqlite_runtime, agent)
    customer = await say(sqlite_runtime, channel, "hello", user="customer-1")
    await say(sqlite_runtime, test_channel, "a test from the panel", user="owner-test")
    async with sqlite_runtime.db.sessions() as session:
        assert [c.id for c in await list_channels(session, agent.workspace_id)] == [channel.id]
        assert [c.id for c in await list_channels(session, agent.workspace_id, kind=TEST_CHANNEL_KIND)] == [test_channel.id]
    page = await list_conversations(sqlite_runtime, agent.workspace_id, None)
    assert [row.id for row in page.rows] == [customer.conversation_id]
