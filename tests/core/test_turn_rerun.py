"""A turn rerun after its process died between the checkpoint (written when the graph ends)
and the result's commit answers its question again: the reply left unstored in the
checkpoint is dropped (``graph.left_by_unstored_run``), not taken for an answer.

The crash is reproduced as it happens: the graph runs on the conversation's thread with the
turn's inputs and nothing is stored; then the turn job runs.
"""

from __future__ import annotations


from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from callable_agents.core.conversation.turn.context import AgentContext
from callable_agents.core.conversation.turn.deps import resolve_turn_deps
from callable_agents.core.conversation.turn.graph import left_by_unstored_run
from callable_agents.core.conversation.turn.load import load_turn
from callable_agents.core.conversation.turn.run import compiled_graph
from callable_agents.core.runtime import Runtime
from callable_agents.testing.openai_server import FakeOpenAI
from tests.core.pipeline_helpers import ack, connect_fake_openai, drain, make_agent_channel, outbound, say


async def test_a_turn_rerun_after_a_crash_before_its_commit_answers_the_question_again(sqlite_runtime: Runtime) -> None:
    runtime = sqlite_runtime
    with FakeOpenAI(responder=ack) as fake:
        _agent, channel = await make_agent_channel(
            runtime, model_settings={"integration": "openai", "model": "gpt-test", "max_retries": 0}
        )
        await connect_fake_openai(runtime, channel.workspace_id, fake.base_url)
        await say(runtime, channel, "Hello")
        await drain(runtime)  # a first exchange, stored
        accepted = await say(runtime, channel, "When do you open?")

        # The turn's run, up to the checkpoint: then the process dies (nothing stored).
        loaded = await runtime.db.run(lambda session: load_turn(session, accepted.conversation_id), write=False)
        assert loaded is not None
        channel_type = runtime.plugins.channels.get(channel.kind)
        deps = await resolve_turn_deps(
            runtime, loaded.agent, capabilities=channel_type.capabilities, channel_kind=channel.kind,
            conversation_id=accepted.conversation_id,
        )
        inputs = [HumanMessage(content=m.text or "", id=f"msg-{m.id}") for m in loaded.pending]
        graph = await compiled_graph(runtime)
        await graph.ainvoke(
            {"messages": inputs},
            {"configurable": {"thread_id": accepted.conversation_id}},
            context=AgentContext(
                workspace=channel.workspace_id, agent=loaded.agent.name, channel_kind=channel.kind, deps=deps,
                input_ids=frozenset(str(m.id) for m in inputs),
            ),
            durability="exit",
        )
        assert [m.text for m in await outbound(runtime, accepted.conversation_id)] == ["ack: Hello"]

        await drain(runtime)  # the turn job, rerun
        replies = [m.text for m in await outbound(runtime, accepted.conversation_id)]
        rerun = fake.chat_requests[-1]

    assert replies == ["ack: Hello", "ack: When do you open?"]
    assert [m["role"] for m in rerun.messages] == ["system", "user", "assistant", "user", "system"]
    assert rerun.messages[3]["content"] == "When do you open?"


def test_only_what_follows_the_runs_inputs_is_dropped() -> None:
    earlier = [HumanMessage("hi", id="msg-1"), AIMessage("hello", id="a1")]
    call = AIMessage("", id="a2", tool_calls=[{"name": "lookup", "args": {}, "id": "c1"}])
    left = [HumanMessage("open?", id="msg-3"), call, ToolMessage("7:00", tool_call_id="c1", id="t1"), AIMessage("7", id="a3")]
    assert left_by_unstored_run([*earlier, *left], frozenset({"msg-3"})) == left[1:]
    # A newer message given with it (a superseded run's inputs, then this one's) stays.
    newer = HumanMessage("and Sunday?", id="msg-5")
    assert left_by_unstored_run([*earlier, *left, newer], frozenset({"msg-3", "msg-5"})) == left[1:]
    assert left_by_unstored_run([*earlier, left[0]], frozenset({"msg-3"})) == []
    assert left_by_unstored_run([*earlier, *left], frozenset()) == []  # Studio: no inputs named
    assert left_by_unstored_run(earlier, frozenset({"msg-9"})) == []
