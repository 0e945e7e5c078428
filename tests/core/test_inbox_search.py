"""The inbox's search: text anywhere in a conversation's messages, through the messages'
trigram index (PostgreSQL pg_trgm, SQLite FTS5), with ILIKE's meaning kept."""

from __future__ import annotations

from sqlalchemy import delete, text, update

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.config import Settings
from callable_agents.core.conversation.inbox import InboxFilters, _filtered, list_conversations
from callable_agents.core.db import downgrade_sync, migrate_sync
from callable_agents.core.models import Conversation, Message
from callable_agents.core.runtime import Runtime
from tests.core.pipeline_helpers import make_agent_channel, say


async def found(runtime: Runtime, workspace_id: str, search: str) -> set[str]:
    page = await list_conversations(runtime, workspace_id, None, InboxFilters(search=search))
    return {row.id for row in page.rows}


async def test_text_anywhere_in_any_message_finds_its_conversation(runtime: Runtime) -> None:
    agent, channel = await make_agent_channel(runtime)
    wedding = (await say(runtime, channel, "Do you make a WEDDING cake, gluten-free?", user="c1")).conversation_id
    await say(runtime, channel, "and something else later", user="c1")
    percent = (await say(runtime, channel, "Is it 100% rye? My_handle is \\o/", user="c2")).conversation_id
    short = (await say(runtime, channel, "ok", user="c3")).conversation_id
    workspace = agent.workspace_id

    assert await found(runtime, workspace, "wedding cake") == {wedding}  # an earlier message, any case
    assert await found(runtime, workspace, "uten-fr") == {wedding}  # inside words
    assert await found(runtime, workspace, "100%") == {percent}  # % and _ are characters, not wildcards
    assert await found(runtime, workspace, "y_h") == {percent}
    assert await found(runtime, workspace, "0%") == {percent}
    assert await found(runtime, workspace, "\\o/") == {percent}
    assert await found(runtime, workspace, "ok") == {short}  # shorter than a trigram: still found
    assert await found(runtime, workspace, "zanzibar") == set()
    assert await found(runtime, workspace, "1%0") == set()


async def test_another_workspace_messages_are_not_searched(runtime: Runtime) -> None:
    mine, my_channel = await make_agent_channel(runtime, workspace_name="Mine")
    _theirs, their_channel = await make_agent_channel(runtime, workspace_name="Theirs")
    await say(runtime, their_channel, "sourdough starter for sale", user="c1")
    assert await found(runtime, mine.workspace_id, "sourdough") == set()
    ours = (await say(runtime, my_channel, "sourdough please", user="c1")).conversation_id
    assert await found(runtime, mine.workspace_id, "sourdough") == {ours}


async def test_changed_and_deleted_messages_leave_the_index(runtime: Runtime) -> None:
    agent, channel = await make_agent_channel(runtime)
    first = (await say(runtime, channel, "a croissant order", user="c1")).conversation_id
    second = (await say(runtime, channel, "a baguette order", user="c2")).conversation_id
    async with runtime.db.session() as session:
        await session.execute(update(Message).where(Message.conversation_id == first).values(text="a brioche order"))
        await session.execute(delete(Conversation).where(Conversation.id == second))  # its messages go by cascade
    assert await found(runtime, agent.workspace_id, "croissant") == set()
    assert await found(runtime, agent.workspace_id, "brioche") == {first}
    assert await found(runtime, agent.workspace_id, "baguette") == set()
    if runtime.db.is_sqlite:  # FTS5 checks its index against the messages it was built from
        async with runtime.db.session() as session:
            await session.execute(text("INSERT INTO messages_text_search(messages_text_search) VALUES ('integrity-check')"))


async def test_the_search_reads_the_trigram_index(runtime: Runtime) -> None:
    """The query's plan takes the messages from the index, not by reading them all."""
    agent, channel = await make_agent_channel(runtime)
    conversation_id = (await say(runtime, channel, "hello", user="c1")).conversation_id
    async with runtime.db.session() as session:  # enough messages that reading them all costs more
        session.add_all(
            Message(
                workspace_id=agent.workspace_id, conversation_id=conversation_id, channel_id=channel.id,
                direction="inbound", author="customer", text=f"message number {n} about bread",
            )
            for n in range(3000)
        )
    query = _filtered(agent.workspace_id, InboxFilters(search="wedding"), sqlite=runtime.db.is_sqlite)
    async with runtime.db.session() as session:
        connection = await session.connection()
        compiled = query.compile(connection.engine, compile_kwargs={"literal_binds": True})
        if runtime.db.is_sqlite:
            lines = [str(list(row)[3]) for row in (await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")).all()]
            assert "SCAN messages_text_search VIRTUAL TABLE INDEX 0:L0" in lines, lines  # L: the LIKE is the index's
            assert not [line for line in lines if line.split()[:2] == ["SCAN", "messages"]], lines
        else:
            # Few rows: the planner rightly reads 3,000 at once, or walks the workspace's index
            # (a million take the trigram index: bench/inbox.py). Left only the trigram index,
            # the query must be able to use it (ILIKE as it is, no lower() around the column).
            savepoint = await connection.begin_nested()
            await connection.exec_driver_sql("DROP INDEX ix_messages_workspace_id, ix_messages_workspace_updated")
            await connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = " | ".join(str(row[0]) for row in (await connection.exec_driver_sql(f"EXPLAIN {compiled}")).all())
            await savepoint.rollback()
            assert "Bitmap Index Scan on ix_messages_text_trgm" in plan, plan
    assert await found(runtime, agent.workspace_id, "number 2999 about") == {conversation_id}
    assert await found(runtime, agent.workspace_id, "wedding") == set()


async def test_messages_stored_before_the_index_are_found_after_the_upgrade(settings: Settings) -> None:
    runtime = await open_runtime(settings)
    try:
        agent, channel = await make_agent_channel(runtime)
        conversation_id = (await say(runtime, channel, "an old message about a birthday cake", user="c1")).conversation_id
    finally:
        await close_runtime(runtime)
    url = settings.resolved_database_url
    downgrade_sync(url, "0007_rate_limits")  # as a database that predates the index
    migrate_sync(url)
    runtime = await open_runtime(settings)
    try:
        assert await found(runtime, agent.workspace_id, "birthday cake") == {conversation_id}
    finally:
        await close_runtime(runtime)
