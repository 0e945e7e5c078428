"""Group commit for inbound messages: one writer per process, many messages per transaction.

Webhooks arrive concurrently; storing each in its own transaction costs a round of
statements and a commit per message, and concurrent SQLite writers queue on the database
lock. Instead :func:`callable_agents.core.pipeline.accept_inbound` hands its message to
this writer and waits: the writer takes whatever is waiting (one message when traffic is
light, so no added latency) and stores the batch with set-based statements:

1. conversations found, missing ones inserted (``ON CONFLICT DO NOTHING``: a concurrent
   process may create the same one);
2. messages inserted with ``ON CONFLICT DO NOTHING`` on (channel, provider id): the unique
   constraint decides what is a duplicate, atomically across processes, and only the
   duplicates are read back;
3. conversations updated (``last_inbound_at``, profile, ``closed`` → ``bot``);
4. a pending turn job per conversation moved later, or a new one added (burst coalescing).

If a batch fails, its messages are retried one by one so one bad message fails alone.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from callable_agents.core.models import Channel, Conversation, Job, Message, new_id, utcnow
from callable_agents.core.runtime import Runtime

log = logging.getLogger(__name__)

MAX_BATCH = 128
TURN_JOB = "turn"


@dataclass(frozen=True)
class Stored:
    message_id: int
    conversation_id: str
    duplicate: bool


@dataclass
class _Item:
    channel: Channel
    inbound: Any  # pipeline.InboundMessage
    future: asyncio.Future[Stored]


class InboundWriter:
    """Queue + writer task for one runtime (one event loop)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def of(cls, runtime: Runtime) -> InboundWriter:
        writer = runtime.services.get("inbound_writer")
        if writer is None:
            writer = runtime.services["inbound_writer"] = cls(runtime)
        return writer  # type: ignore[no-any-return]

    async def submit(self, channel: Channel, inbound: Any) -> Stored:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="callable-inbound-writer")
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Item(channel, inbound, future))
        # Shielded: a caller that goes away (client disconnect) must not cancel the write.
        return await asyncio.shield(future)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                results = await write_batch(self.runtime, batch)
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0].future, exc)
                    continue
                log.warning("inbound batch of %d failed (%s); storing one by one", len(batch), type(exc).__name__)
                for item in batch:
                    try:
                        _settle(item.future, (await write_batch(self.runtime, [item]))[0])
                    except Exception as single:
                        _settle(item.future, single)
                continue
            for item, result in zip(batch, results, strict=True):
                _settle(item.future, result)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _settle(future: asyncio.Future[Stored], outcome: Stored | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


@dataclass(frozen=True)
class _Statements:
    conversations: Any
    insert_conversations: Any
    insert_keyed_messages: Any
    insert_unkeyed_messages: Any
    existing_messages: Any
    touch_conversations: Any
    move_turns: Any


@functools.cache
def _statements(dialect: str) -> _Statements:
    """The writer's statements for a dialect, built once: building them costs more than running them."""
    insert_for = postgresql.insert if dialect == "postgresql" else sqlite.insert
    conversations, messages, jobs = Conversation.__table__, Message.__table__, Job.__table__
    return _Statements(
        conversations=select(*_CONVERSATION_COLUMNS).where(
            tuple_(conversations.c.channel_id, conversations.c.external_user_id).in_(bindparam("keys", expanding=True))
        ),
        insert_conversations=insert_for(conversations).on_conflict_do_nothing(
            index_elements=["channel_id", "external_user_id"]
        ),
        insert_keyed_messages=insert_for(messages)
        .on_conflict_do_nothing(index_elements=["channel_id", "provider_message_id"])
        .returning(messages.c.id, messages.c.channel_id, messages.c.provider_message_id),
        insert_unkeyed_messages=insert(messages).returning(messages.c.id, sort_by_parameter_order=True),
        existing_messages=select(
            messages.c.id, messages.c.conversation_id, messages.c.channel_id, messages.c.provider_message_id
        ).where(tuple_(messages.c.channel_id, messages.c.provider_message_id).in_(bindparam("keys", expanding=True))),
        touch_conversations=update(conversations)
        .where(conversations.c.id == bindparam("b_id"))
        .values(
            profile=bindparam("profile"),
            last_inbound_at=bindparam("last_inbound_at"),
            status=bindparam("status"),
            updated_at=bindparam("now"),
        ),
        move_turns=update(jobs)
        .where(jobs.c.kind == TURN_JOB, jobs.c.status == "pending", jobs.c.lane.in_(bindparam("lanes", expanding=True)))
        .values(run_after=bindparam("start_at"))
        .returning(jobs.c.lane),
    )


async def write_batch(runtime: Runtime, items: list[_Item]) -> list[Stored]:
    """Store a batch in one transaction; returns one result per item, in order."""
    now = utcnow()
    results: list[Stored | None] = [None] * len(items)
    first_of: dict[tuple[str, str], int] = {}
    fresh: list[int] = []
    for index, item in enumerate(items):
        if item.inbound.provider_message_id:
            key = (item.channel.id, item.inbound.provider_message_id)
            if key in first_of:
                continue  # the same message twice in this batch: settled after the first is stored
            first_of[key] = index
        fresh.append(index)
    coalesce = timedelta(seconds=runtime.settings.coalesce_seconds)

    def store(session: Session) -> dict[int, tuple[int, str, bool]]:
        # Core statements on the connection: the ORM session layer adds nothing here.
        connection = session.connection()
        conversations = _conversations(connection, [items[i] for i in fresh], now)
        stored = _insert_messages(connection, items, fresh, conversations, now)
        accepted = [i for i in fresh if not stored[i][2]]
        touched = _touch_conversations(connection, items, accepted, conversations, now)
        _schedule_turns(connection, touched, now + coalesce)
        return stored

    stored = await runtime.db.run(store)
    for index in fresh:
        message_id, conversation_id, duplicate = stored[index]
        results[index] = Stored(message_id, conversation_id, duplicate)
    for index, item in enumerate(items):
        if results[index] is None:  # a repeat within the batch
            first = results[first_of[(item.channel.id, item.inbound.provider_message_id)]]
            assert first is not None
            results[index] = Stored(first.message_id, first.conversation_id, duplicate=True)
    return [result for result in results if result is not None]


def _existing_messages(connection: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, str]]:
    if not keys:
        return {}
    rows = connection.execute(_statements(connection.dialect.name).existing_messages, {"keys": keys})
    return {(row.channel_id, row.provider_message_id): (row.id, row.conversation_id) for row in rows}


@dataclass
class _Conversation:
    id: str
    workspace_id: str
    status: str
    profile: dict[str, Any]


_CONVERSATION_COLUMNS = (
    Conversation.__table__.c.id,
    Conversation.__table__.c.workspace_id,
    Conversation.__table__.c.channel_id,
    Conversation.__table__.c.external_user_id,
    Conversation.__table__.c.status,
    Conversation.__table__.c.profile,
)


def _conversations(connection: Connection, items: list[_Item], now: Any) -> dict[tuple[str, str], _Conversation]:
    """Found or created, keyed by (channel id, external user id); plain rows, not ORM objects."""
    statements = _statements(connection.dialect.name)
    wanted = {(item.channel.id, item.inbound.external_user_id): item.channel for item in items}
    if not wanted:
        return {}

    def load(keys: list[tuple[str, str]]) -> dict[tuple[str, str], _Conversation]:
        rows = connection.execute(statements.conversations, {"keys": keys})
        return {
            (row.channel_id, row.external_user_id): _Conversation(row.id, row.workspace_id, row.status, row.profile or {})
            for row in rows
        }

    found = load(list(wanted))
    missing = [key for key in wanted if key not in found]
    if missing:
        connection.execute(
            statements.insert_conversations,
            [
                {
                    "id": new_id(),
                    "workspace_id": wanted[key].workspace_id,
                    "channel_id": key[0],
                    "external_user_id": key[1],
                    "status": "bot",
                    "profile": {},
                    "opted_out": False,
                    "created_at": now,
                    "updated_at": now,
                }
                for key in missing
            ],
        )
        found.update(load(missing))
    return found


def _message_row(item: _Item, conversation_id: str, now: Any) -> dict[str, Any]:
    inbound = item.inbound
    return {
        "workspace_id": item.channel.workspace_id,
        "conversation_id": conversation_id,
        "channel_id": item.channel.id,
        "direction": "inbound",
        "author": "customer",
        "text": inbound.text,
        "media": list(inbound.media),
        "meta": dict(inbound.meta),
        "provider_message_id": inbound.provider_message_id,
        "status": "received",
        "created_at": inbound.received_at or now,
        "updated_at": now,
    }


def _insert_messages(
    connection: Connection,
    items: list[_Item],
    fresh: list[int],
    conversations: dict[tuple[str, str], _Conversation],
    now: Any,
) -> dict[int, tuple[int, str, bool]]:
    """Insert the fresh messages; returns index -> (message id, conversation id, duplicate)."""
    stored: dict[int, tuple[int, str, bool]] = {}

    def conversation_of(index: int) -> str:
        item = items[index]
        return conversations[(item.channel.id, item.inbound.external_user_id)].id

    unkeyed = [i for i in fresh if not items[i].inbound.provider_message_id]
    keyed = [i for i in fresh if items[i].inbound.provider_message_id]
    if unkeyed:
        rows = connection.execute(
            _statements(connection.dialect.name).insert_unkeyed_messages,
            [_message_row(items[i], conversation_of(i), now) for i in unkeyed],
        )
        for index, row in zip(unkeyed, rows.all(), strict=True):
            stored[index] = (row.id, conversation_of(index), False)
    if keyed:
        # One statement for many rows; rows come back matched by (channel, provider id).
        returned = connection.execute(_statements(connection.dialect.name).insert_keyed_messages, [_message_row(items[i], conversation_of(i), now) for i in keyed])
        inserted = {(row.channel_id, row.provider_message_id): row.id for row in returned}
        lost = [
            (items[i].channel.id, items[i].inbound.provider_message_id)
            for i in keyed
            if (items[i].channel.id, items[i].inbound.provider_message_id) not in inserted
        ]
        raced = _existing_messages(connection, lost)  # another process stored these meanwhile
        for index in keyed:
            key = (items[index].channel.id, items[index].inbound.provider_message_id)
            if key in inserted:
                stored[index] = (inserted[key], conversation_of(index), False)
            else:
                message_id, conversation_id = raced[key]
                stored[index] = (message_id, conversation_id, True)
    return stored


def _touch_conversations(
    connection: Connection,
    items: list[_Item],
    accepted: list[int],
    conversations: dict[tuple[str, str], _Conversation],
    now: Any,
) -> list[_Conversation]:
    """Record the latest inbound time and profile; a closed conversation reopens."""
    touched: dict[str, _Conversation] = {}
    changes: dict[str, dict[str, Any]] = {}
    for index in accepted:
        item = items[index]
        conversation = conversations[(item.channel.id, item.inbound.external_user_id)]
        touched[conversation.id] = conversation
        change = changes.setdefault(conversation.id, {"b_id": conversation.id, "profile": dict(conversation.profile)})
        change["profile"].update(item.inbound.profile or {})
        change["last_inbound_at"] = item.inbound.received_at or now
        if conversation.status == "closed":
            conversation.status = "bot"
        change["status"] = conversation.status
        change["now"] = now
    if changes:
        connection.execute(_statements(connection.dialect.name).touch_conversations, list(changes.values()))
    return list(touched.values())


def _schedule_turns(connection: Connection, conversations: list[_Conversation], start_at: Any) -> None:
    """One pending turn per conversation, starting at ``start_at`` (a burst window after its latest message)."""
    lanes = {c.id: c.workspace_id for c in conversations if c.status == "bot"}
    if not lanes:
        return
    now = utcnow()
    moved = connection.execute(_statements(connection.dialect.name).move_turns, {"lanes": list(lanes), "start_at": start_at})
    # A lane whose pending turn a worker claimed meanwhile gets a new one: that running
    # turn may not see these messages.
    moved_lanes = {row.lane for row in moved}
    new = [lane for lane in lanes if lane not in moved_lanes]
    if new:
        connection.execute(
            insert(Job.__table__),
            [
                {
                    "workspace_id": lanes[lane],
                    "kind": TURN_JOB,
                    "lane": lane,
                    "payload": {"conversation_id": lane},
                    "status": "pending",
                    "attempts": 0,
                    "max_attempts": 8,
                    "run_after": start_at,
                    "created_at": now,
                    "updated_at": now,
                }
                for lane in new
            ],
        )
