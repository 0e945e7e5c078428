"""Storage on SQLite and PostgreSQL: the same test functions, parametrised by ``backend``."""

from __future__ import annotations

import re

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from callable_agents.core.config import async_database_url
from callable_agents.core.db import Database, downgrade_sync, head_revision, migrate_sync, scoped
from callable_agents.core.errors import Conflict, InvalidInput, NotFound, NotMigrated
from callable_agents.core.models import Agent, Base, Channel, Conversation, Job, Message, Workspace, utcnow
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.workspaces import (
    authenticate_api_key,
    create_api_key,
    create_workspace,
    ensure_workspace,
    get_workspace,
    list_api_keys,
    list_workspaces,
)

EXPECTED_TABLES = {
    "workspaces", "users", "api_keys", "integrations", "agents", "knowledge_bases", "sources",
    "chunks", "channels", "conversations", "messages", "jobs", "traces", "inbound_queue",
    "user_links", "user_sessions",
}


async def test_migrates_up_from_an_empty_database_and_down_again(empty_database_url: str) -> None:
    url = async_database_url(empty_database_url)
    db = Database(url)
    try:
        assert await db.current_revision() is None
        with pytest.raises(NotMigrated, match="run `callable migrate`"):
            await db.require_migrated()
        await db.migrate()
        assert await db.current_revision() == head_revision()
        async with db.engine.connect() as conn:
            tables = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
        assert EXPECTED_TABLES <= tables
        await db.migrate()  # idempotent
    finally:
        await db.dispose()
    downgrade_sync(url)
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            tables = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
        assert not EXPECTED_TABLES & tables
    finally:
        await db.dispose()
    migrate_sync(url)


# What migration 0008 adds beyond the models, on purpose: the inbox search's trigram indexes
# (PostgreSQL) and full-text table (SQLite), which no query builds from the models.
SEARCH_ONLY_IN_MIGRATIONS = {
    "ix_messages_text_trgm", "ix_conversations_external_user_id_trgm", "ix_conversations_profile_name_trgm",
    "messages_text_search", "messages_text_search_config", "messages_text_search_data",
    "messages_text_search_docsize", "messages_text_search_idx",
}
# Model indexes created on PostgreSQL only (``ddl_if``), which alembic's comparison ignores.
POSTGRESQL_ONLY = {"ix_jobs_live"}


def test_the_migrated_schema_is_the_models_schema(database_url: str) -> None:
    """Every table, column and index the models declare, and each partial index's condition,
    is what the migrations made, on each backend: a model changed without its migration, or
    a migration without its model, shows here."""
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
            reflected = {
                (table.name, index["name"]): index.get("dialect_options", {}).get(f"{engine.dialect.name}_where")
                for table in Base.metadata.sorted_tables
                for index in inspect(connection).get_indexes(table.name)
            }
    finally:
        engine.dispose()
    expected = SEARCH_ONLY_IN_MIGRATIONS | (set() if engine.dialect.name == "postgresql" else POSTGRESQL_ONLY)
    unexpected = [d for d in differences if not (isinstance(d, tuple) and d[1].name in expected)]
    assert unexpected == []
    # Alembic compares an index's columns, not a partial index's condition: compared here by
    # the column and values it names (each backend writes the same condition its own way).
    partial = {
        (table.name, index.name): index.dialect_options[engine.dialect.name]["where"]
        for table in Base.metadata.sorted_tables
        for index in table.indexes
        if index.dialect_options[engine.dialect.name]["where"] is not None
    }
    assert partial or engine.dialect.name == "sqlite"  # SQLite has none
    for key, condition in partial.items():
        found = reflected[key]
        assert found is not None, f"{key}: not partial in the database"
        assert _named_in(str(found)) == _named_in(str(condition)), key


def _named_in(condition: str) -> tuple[set[str], set[str]]:
    """The quoted values and the (lower-case) words outside quotes a SQL condition names,
    without the casts PostgreSQL adds when it writes one back."""
    values = set(re.findall(r"'([^']*)'", condition))
    words = set(re.findall(r"[a-z_]+", re.sub(r"'[^']*'", "", condition.lower())))
    return values, words - {"text", "character", "varying", "array", "any", "in"}


async def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(sqlite_runtime: Runtime) -> None:
    async with sqlite_runtime.db.engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() >= 5000
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1


async def test_workspaces_are_created_once_with_a_wrapped_key(runtime: Runtime) -> None:
    async with runtime.db.session() as session:
        created = await create_workspace(session, runtime.vault, "Bella's Bakery")
        assert created.slug == "bella-s-bakery"
        assert created.wrapped_key and created.key_id
        again = await ensure_workspace(session, runtime.vault, "Bella's Bakery", "bella-s-bakery")
        assert again.id == created.id
        with pytest.raises(Conflict, match="already exists"):
            await create_workspace(session, runtime.vault, "Other", "bella-s-bakery")
        with pytest.raises(InvalidInput, match="slug: expected lowercase"):
            await create_workspace(session, runtime.vault, "Bad", "Not A Slug")
        with pytest.raises(InvalidInput, match="name: expected a non-empty"):
            await create_workspace(session, runtime.vault, "   ")
        assert (await get_workspace(session, created.id)).slug == "bella-s-bakery"
        with pytest.raises(NotFound, match="callable workspace list"):
            await get_workspace(session, "nope")
        assert [w.slug for w in await list_workspaces(session)] == ["bella-s-bakery"]


async def test_api_keys_are_stored_hashed_and_authenticate(runtime: Runtime) -> None:
    async with runtime.db.session() as session:
        workspace = await create_workspace(session, runtime.vault, "Keys")
        row, key = await create_api_key(session, workspace.id, "ci")
    async with runtime.db.session() as session:
        stored = (await session.execute(text("SELECT key_hash, prefix FROM api_keys"))).one()
        assert key not in stored  # only the hash and the public prefix are kept
        assert (await authenticate_api_key(session, key)).workspace_id == workspace.id  # type: ignore[union-attr]
        assert await authenticate_api_key(session, key[:-1] + ("A" if key[-1] != "A" else "B")) is None
        assert await authenticate_api_key(session, "garbage") is None
        assert [k.name for k in await list_api_keys(session, workspace.id)] == ["ci"]


async def _conversation(session, workspace: Workspace, name: str) -> tuple[Channel, Conversation]:  # type: ignore[no-untyped-def]
    agent = Agent(workspace_id=workspace.id, name=f"agent-{name}")
    session.add(agent)
    await session.flush()
    channel = Channel(workspace_id=workspace.id, kind="whatsapp", name=f"wa-{name}", agent_id=agent.id)
    session.add(channel)
    await session.flush()
    conversation = Conversation(workspace_id=workspace.id, channel_id=channel.id, external_user_id="whatsapp:+15550001")
    session.add(conversation)
    await session.flush()
    return channel, conversation


async def test_provider_message_id_is_unique_per_channel(runtime: Runtime) -> None:
    """The dedupe key for retried webhooks is a constraint, not a read-then-write."""
    async with runtime.db.session() as session:
        workspace = await create_workspace(session, runtime.vault, "Dedupe")
        channel, conversation = await _conversation(session, workspace, "a")
        other_channel, other_conversation = await _conversation(session, workspace, "b")
        common = dict(workspace_id=workspace.id, direction="inbound", author="customer", text="hi")
        session.add(Message(conversation_id=conversation.id, channel_id=channel.id, provider_message_id="SM1", **common))
        # The same provider id on another channel is a different message.
        session.add(Message(conversation_id=other_conversation.id, channel_id=other_channel.id, provider_message_id="SM1", **common))
    with pytest.raises(IntegrityError):
        async with runtime.db.session() as session:
            session.add(Message(conversation_id=conversation.id, channel_id=channel.id, provider_message_id="SM1", **common))
    async with runtime.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 2


async def test_timestamps_come_back_timezone_aware(runtime: Runtime) -> None:
    async with runtime.db.session() as session:
        workspace = await create_workspace(session, runtime.vault, "Clock")
        _, conversation = await _conversation(session, workspace, "a")
        conversation.last_inbound_at = utcnow()
    async with runtime.db.session() as session:
        loaded = await session.get(Conversation, conversation.id)
        assert loaded is not None and loaded.last_inbound_at is not None
        assert loaded.last_inbound_at.tzinfo is not None and loaded.created_at.tzinfo is not None


async def test_deleting_a_workspace_cascades(runtime: Runtime) -> None:
    async with runtime.db.session() as session:
        workspace = await create_workspace(session, runtime.vault, "Gone")
        await _conversation(session, workspace, "a")
        session.add(Job(workspace_id=workspace.id, kind="inbound"))
    async with runtime.db.session() as session:
        await session.delete(await session.get(Workspace, workspace.id))
    async with runtime.db.session() as session:
        for model in (Agent, Channel, Conversation, Job):
            assert await session.scalar(select(func.count()).select_from(model)) == 0


async def test_scoped_queries_only_see_their_workspace(runtime: Runtime) -> None:
    async with runtime.db.session() as session:
        first = await create_workspace(session, runtime.vault, "First")
        second = await create_workspace(session, runtime.vault, "Second")
        await _conversation(session, first, "x")
        await _conversation(session, second, "x")
    async with runtime.db.session() as session:
        for workspace in (first, second):
            for model in (Agent, Channel, Conversation):
                rows = (await session.scalars(scoped(model, workspace.id))).all()
                assert len(rows) == 1 and rows[0].workspace_id == workspace.id
