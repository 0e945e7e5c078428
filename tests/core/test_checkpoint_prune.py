"""A conversation's checkpoints are pruned to the latest in each turn's result transaction,
on both backends, and what stays is all the next turn needs: it still sees the history.

On PostgreSQL the prune is our own SQL over LangGraph's tables (``checkpoints``,
``checkpoint_blobs``, ``checkpoint_writes``), so the test checks those rows exactly: one
checkpoint, no writes of a deleted one, and precisely the blobs the kept checkpoint names.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from langgraph.checkpoint.base import Checkpoint
from langgraph.checkpoint.base.id import uuid6
from sqlalchemy import text
from sqlalchemy.orm import Session

from callable_agents.core.conversation.turn.memory import Memory
from callable_agents.core.runtime import Runtime
from callable_agents.testing.openai_server import FakeOpenAI, last_user_message
from tests.core.pipeline_helpers import connect_fake_openai, drain, make_agent_channel, outbound, say

TURNS = 4


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    with FakeOpenAI(api_key="sk-test") as server:
        yield server


async def _rows(runtime: Runtime, sql: str, thread_id: str) -> list[tuple[object, ...]]:
    async with runtime.db.engine.connect() as connection:
        return [tuple(row) for row in (await connection.execute(text(sql), {"t": thread_id})).all()]


async def test_a_thread_keeps_only_its_latest_checkpoint_and_what_it_needs(runtime: Runtime, fake: FakeOpenAI) -> None:
    agent, channel = await make_agent_channel(
        runtime, model_settings={"integration": "openai", "model": "gpt-test", "max_retries": 0, "timeout": 5}
    )
    await connect_fake_openai(runtime, agent.workspace_id, fake.base_url)
    fake.responder = lambda request: "You said: " + last_user_message(request)
    conversation_id = ""
    for turn in range(1, TURNS + 1):
        accepted = await say(runtime, channel, f"question number {turn}")
        conversation_id = accepted.conversation_id
        await drain(runtime)
    assert [m.text for m in await outbound(runtime, conversation_id)] == [
        f"You said: question number {turn}" for turn in range(1, TURNS + 1)
    ]
    # The last turn's model call saw the earlier turns: the history loaded from the pruned
    # thread is whole.
    seen = " ".join(str(m.get("content") or "") for m in fake.chat_requests[-1].messages)
    for turn in range(1, TURNS):
        assert f"question number {turn}" in seen and f"You said: question number {turn}" in seen

    checkpoints = await _rows(runtime, "SELECT checkpoint_id FROM checkpoints WHERE thread_id = :t", conversation_id)
    assert len(checkpoints) == 1
    if runtime.db.is_sqlite:
        return
    [(kept_id,)] = checkpoints
    named = set(
        await _rows(
            runtime,
            "SELECT v.key, v.value FROM checkpoints c CROSS JOIN LATERAL jsonb_each_text(c.checkpoint -> 'channel_versions') v"
            " JOIN checkpoint_blobs b ON b.thread_id = c.thread_id AND b.checkpoint_ns = c.checkpoint_ns"
            " AND b.channel = v.key AND b.version = v.value WHERE c.thread_id = :t",
            conversation_id,
        )
    )
    blobs = set(await _rows(runtime, "SELECT channel, version FROM checkpoint_blobs WHERE thread_id = :t", conversation_id))
    assert named and blobs == named  # every blob the checkpoint needs, and no other
    # Earlier turns wrote more versions of the same channels: they were there and are gone.
    assert {channel for channel, _version in blobs} >= {"messages"}
    writes = await _rows(runtime, "SELECT checkpoint_id FROM checkpoint_writes WHERE thread_id = :t", conversation_id)
    assert all(checkpoint_id == kept_id for (checkpoint_id,) in writes)


def _checkpoint(values: dict[str, Any], versions: dict[str, str]) -> Checkpoint:
    return Checkpoint(
        v=4, id=str(uuid6(clock_seq=-1)), ts=datetime.now(UTC).isoformat(),
        channel_values=values, channel_versions=versions, versions_seen={},
    )


async def test_a_blob_the_kept_checkpoint_still_names_stays(runtime: Runtime) -> None:
    """A channel the last step left unchanged keeps its version: the kept checkpoint names
    the blob an older one wrote, and the prune must not take it with the older one."""
    memory = await Memory.of(runtime)
    thread = "thread-kept-blob"
    config: dict[str, Any] = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    v1, v2 = "00000000000000000000000000000001.0.1", "00000000000000000000000000000002.0.2"
    first = _checkpoint({"changing": ["one"], "steady": ["kept"]}, {"changing": v1, "steady": v1})
    first_config = await memory.saver.aput(config, first, {}, {"changing": v1, "steady": v1})  # type: ignore[arg-type]
    await memory.saver.aput_writes(first_config, [("changing", ["pending"])], task_id="task-1")
    second = _checkpoint({"changing": ["two"], "steady": ["kept"]}, {"changing": v2, "steady": v1})
    second_config = await memory.saver.aput(first_config, second, {}, {"changing": v2})  # type: ignore[arg-type]
    await memory.saver.aput_writes(second_config, [("changing", ["latest"])], task_id="task-2")

    def prune(session: Session) -> None:
        memory.prune_in(session, thread)

    await runtime.db.run(prune)
    loaded = await memory.saver.aget_tuple({"configurable": {"thread_id": thread}})  # type: ignore[arg-type]
    assert loaded is not None and loaded.checkpoint["id"] == second["id"]
    assert loaded.checkpoint["channel_values"] == {"changing": ["two"], "steady": ["kept"]}
    assert [write[1:] for write in loaded.pending_writes or []] == [("changing", ["latest"])]
    assert await memory.saver.aget_tuple(first_config) is None  # type: ignore[arg-type]
    if not runtime.db.is_sqlite:
        blobs = await _rows(runtime, "SELECT channel, version FROM checkpoint_blobs WHERE thread_id = :t", thread)
        assert sorted(blobs) == [("changing", v2), ("steady", v1)]
        writes = await _rows(runtime, "SELECT checkpoint_id FROM checkpoint_writes WHERE thread_id = :t", thread)
        assert writes == [(second["id"],)]
