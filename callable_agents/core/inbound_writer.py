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

The batch runs on the database's own thread (``Database.run``). On SQLite its statements
are plain SQL on the driver's connection (:class:`_SqliteBatch`), on other backends
SQLAlchemy Core (:class:`_CoreBatch`); the logic above is written once, over :class:`_Batch`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

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
    """Waiting messages + the writer task for one runtime (one event loop).

    A batch is taken from the waiting messages when its transaction starts, not when it is
    queued: on SQLite the next batch is queued on the database thread while the current one
    is written, so the thread goes from one batch to the next without waiting for the
    event loop to notice that the first one finished (under load the loop is busy
    answering webhooks, and that wait was the larger part of each batch's time).
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # Appended on the event loop, taken where the batch is written (the database
        # thread on SQLite): deque's append and popleft are safe across threads.
        self._waiting: deque[_Item] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # SQLite writes on one thread, so a second batch only waits there, ready; other
        # backends write one batch at a time, as before.
        self._batches_in_flight = 2 if runtime.db.is_sqlite else 1

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
        self._waiting.append(_Item(channel, inbound, future))
        self._wake.set()
        # A caller that goes away (client disconnect) cancels only this future: the message
        # is written all the same, and its result is then dropped (see _settle).
        return await future

    async def _run(self) -> None:
        writing: set[asyncio.Task[None]] = set()
        while True:
            if not self._waiting:
                self._wake.clear()
                await self._wake.wait()
            elif len(writing) >= self._batches_in_flight:
                await asyncio.wait(writing, return_when=asyncio.FIRST_COMPLETED)
            else:
                task = asyncio.create_task(self._write_waiting())
                writing.add(task)
                task.add_done_callback(writing.discard)
                await asyncio.sleep(0)  # let it start before looking at what is waiting again

    def _take(self) -> list[_Item]:
        batch: list[_Item] = []
        while self._waiting and len(batch) < MAX_BATCH:
            batch.append(self._waiting.popleft())
        return batch

    async def _write_waiting(self) -> None:
        taken: list[_Item] = []

        def take() -> list[_Item]:
            taken.extend(self._take())
            return taken

        try:
            results = await write_batch(self.runtime, take)
        except Exception as exc:
            if len(taken) == 1:
                _settle(taken[0].future, exc)
                return
            log.warning("inbound batch of %d failed (%s); storing one by one", len(taken), type(exc).__name__)
            for item in taken:
                try:
                    _settle(item.future, (await write_batch(self.runtime, lambda item=item: [item]))[0])  # type: ignore[misc]
                except Exception as single:
                    _settle(item.future, single)
            return
        for item, result in zip(taken, results, strict=True):
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


Key = tuple[str, str]


class _Batch(Protocol):
    """The statements a batch needs; :func:`write_batch`'s logic is written over these."""

    def find_conversations(self, keys: list[Key]) -> list[tuple[str, str, str, str, str, dict[str, Any] | None]]: ...
    def insert_conversations(self, rows: list[dict[str, Any]]) -> None: ...
    def insert_keyed_messages(self, rows: list[dict[str, Any]]) -> list[tuple[int, str, str]]: ...
    def insert_unkeyed_messages(self, rows: list[dict[str, Any]]) -> list[int]: ...
    def existing_messages(self, keys: list[Key]) -> list[tuple[int, str, str, str]]: ...
    def touch_conversations(self, changes: list[dict[str, Any]]) -> None: ...
    def move_turns(self, lanes: list[str], start_at: datetime) -> list[str]: ...
    def insert_jobs(self, rows: list[dict[str, Any]]) -> None: ...


class _CoreBatch:
    """The batch's statements through SQLAlchemy Core (PostgreSQL, and any other backend)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.statements = _statements(connection.dialect.name)

    def find_conversations(self, keys: list[Key]) -> list[tuple[str, str, str, str, str, dict[str, Any] | None]]:
        rows = self.connection.execute(self.statements.conversations, {"keys": keys})
        return [(r.id, r.workspace_id, r.channel_id, r.external_user_id, r.status, r.profile) for r in rows]

    def insert_conversations(self, rows: list[dict[str, Any]]) -> None:
        self.connection.execute(self.statements.insert_conversations, rows)

    def insert_keyed_messages(self, rows: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
        returned = self.connection.execute(self.statements.insert_keyed_messages, rows)
        return [(r.id, r.channel_id, r.provider_message_id) for r in returned]

    def insert_unkeyed_messages(self, rows: list[dict[str, Any]]) -> list[int]:
        return [r.id for r in self.connection.execute(self.statements.insert_unkeyed_messages, rows)]

    def existing_messages(self, keys: list[Key]) -> list[tuple[int, str, str, str]]:
        rows = self.connection.execute(self.statements.existing_messages, {"keys": keys})
        return [(r.id, r.conversation_id, r.channel_id, r.provider_message_id) for r in rows]

    def touch_conversations(self, changes: list[dict[str, Any]]) -> None:
        self.connection.execute(self.statements.touch_conversations, changes)

    def move_turns(self, lanes: list[str], start_at: datetime) -> list[str]:
        return [r.lane for r in self.connection.execute(self.statements.move_turns, {"lanes": lanes, "start_at": start_at})]

    def insert_jobs(self, rows: list[dict[str, Any]]) -> None:
        self.connection.execute(insert(Job.__table__), rows)


class _SqliteBatch:
    """The same statements as plain SQL on the stdlib driver's connection (SQLite).

    On this path SQLAlchemy's own work per statement costs several times what SQLite's
    does, and it holds the interpreter lock the event loop needs to answer webhooks.
    Values still go through the columns' own bind processors, so rows are stored exactly
    as SQLAlchemy stores them.
    """

    def __init__(self, connection: Connection) -> None:
        self.cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        self.bind = _sqlite_processors(connection.dialect)

    def _rows(self, table: str, columns: Sequence[str], rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        processors = [self.bind.get((table, name)) for name in columns]
        return [
            tuple(process(row[name]) if process else row[name] for name, process in zip(columns, processors, strict=True))
            for row in rows
        ]

    def find_conversations(self, keys: list[Key]) -> list[tuple[str, str, str, str, str, dict[str, Any] | None]]:
        found = self.cursor.execute(
            "SELECT id, workspace_id, channel_id, external_user_id, status, profile FROM conversations"
            f" WHERE (channel_id, external_user_id) IN (VALUES {_placeholders(len(keys), 2)})",
            [value for key in keys for value in key],
        ).fetchall()
        return [(*row[:5], json.loads(row[5]) if row[5] else None) for row in found]

    def insert_conversations(self, rows: list[dict[str, Any]]) -> None:
        self.cursor.executemany(
            f"INSERT INTO conversations ({', '.join(_CONVERSATION_INSERT)}) VALUES {_placeholders(1, len(_CONVERSATION_INSERT))}"
            " ON CONFLICT (channel_id, external_user_id) DO NOTHING",
            self._rows("conversations", _CONVERSATION_INSERT, rows),
        )

    def insert_keyed_messages(self, rows: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
        values = [value for row in self._rows("messages", _MESSAGE_INSERT, rows) for value in row]
        return self.cursor.execute(  # type: ignore[no-any-return]
            f"INSERT INTO messages ({', '.join(_MESSAGE_INSERT)}) VALUES {_placeholders(len(rows), len(_MESSAGE_INSERT))}"
            " ON CONFLICT (channel_id, provider_message_id) DO NOTHING RETURNING id, channel_id, provider_message_id",
            values,
        ).fetchall()

    def insert_unkeyed_messages(self, rows: list[dict[str, Any]]) -> list[int]:
        statement = f"INSERT INTO messages ({', '.join(_MESSAGE_INSERT)}) VALUES {_placeholders(1, len(_MESSAGE_INSERT))}"
        ids = []
        for row in self._rows("messages", _MESSAGE_INSERT, rows):  # one by one: ids in order
            self.cursor.execute(statement, row)
            ids.append(int(self.cursor.lastrowid))  # type: ignore[arg-type]
        return ids

    def existing_messages(self, keys: list[Key]) -> list[tuple[int, str, str, str]]:
        return self.cursor.execute(  # type: ignore[no-any-return]
            "SELECT id, conversation_id, channel_id, provider_message_id FROM messages"
            f" WHERE (channel_id, provider_message_id) IN (VALUES {_placeholders(len(keys), 2)})",
            [value for key in keys for value in key],
        ).fetchall()

    def touch_conversations(self, changes: list[dict[str, Any]]) -> None:
        columns = ("profile", "last_inbound_at", "status", "updated_at", "id")
        rows = [
            {"profile": c["profile"], "last_inbound_at": c["last_inbound_at"], "status": c["status"], "updated_at": c["now"], "id": c["b_id"]}
            for c in changes
        ]
        self.cursor.executemany(
            "UPDATE conversations SET profile = ?, last_inbound_at = ?, status = ?, updated_at = ? WHERE id = ?",
            self._rows("conversations", columns, rows),
        )

    def move_turns(self, lanes: list[str], start_at: datetime) -> list[str]:
        moved = self.cursor.execute(
            f"UPDATE jobs SET run_after = ? WHERE kind = ? AND status = 'pending' AND lane IN ({', '.join('?' * len(lanes))})"
            " RETURNING lane",
            [self.bind[("jobs", "run_after")](start_at), TURN_JOB, *lanes],
        ).fetchall()
        return [row[0] for row in moved]

    def insert_jobs(self, rows: list[dict[str, Any]]) -> None:
        self.cursor.executemany(
            f"INSERT INTO jobs ({', '.join(_JOB_INSERT)}) VALUES {_placeholders(1, len(_JOB_INSERT))}",
            self._rows("jobs", _JOB_INSERT, rows),
        )


_CONVERSATION_INSERT = (
    "id", "workspace_id", "channel_id", "external_user_id", "status", "profile", "opted_out", "created_at", "updated_at",
)
_MESSAGE_INSERT = (
    "workspace_id", "conversation_id", "channel_id", "direction", "author", "text", "media", "meta",
    "provider_message_id", "status", "created_at", "updated_at",
)
_JOB_INSERT = (
    "workspace_id", "kind", "lane", "payload", "status", "attempts", "max_attempts", "run_after", "created_at", "updated_at",
)


@functools.cache
def _placeholders(rows: int, columns: int) -> str:
    row = "(" + ", ".join("?" * columns) + ")"
    return ", ".join([row] * rows)


@functools.lru_cache(maxsize=4)
def _sqlite_processors(dialect: Any) -> dict[tuple[str, str], Any]:
    """(table, column) -> the column type's bind processor on this dialect (absent: stored as given)."""
    found = {}
    for table in (Conversation.__table__, Message.__table__, Job.__table__):
        for column in table.c:
            processor = column.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                found[(table.name, column.name)] = processor
    return found


async def write_batch(runtime: Runtime, take: Callable[[], list[_Item]]) -> list[Stored]:
    """Store the messages ``take()`` returns in one transaction; one result per item, in order.

    ``take`` is called when the transaction has begun (on the database thread on SQLite).
    """
    now = utcnow()
    coalesce = timedelta(seconds=runtime.settings.coalesce_seconds)
    first_of: dict[tuple[str, str], int] = {}
    fresh: list[int] = []

    def store(session: Session) -> tuple[list[_Item], dict[int, tuple[int, str, bool]]]:
        items = take()
        for index, item in enumerate(items):
            if item.inbound.provider_message_id:
                key = (item.channel.id, item.inbound.provider_message_id)
                if key in first_of:
                    continue  # the same message twice in this batch: settled after the first is stored
                first_of[key] = index
            fresh.append(index)
        if not fresh:
            return items, {}
        connection = session.connection()
        batch: _Batch = _SqliteBatch(connection) if connection.dialect.name == "sqlite" else _CoreBatch(connection)
        conversations = _conversations(batch, [items[i] for i in fresh], now)
        stored = _insert_messages(batch, items, fresh, conversations, now)
        accepted = [i for i in fresh if not stored[i][2]]
        touched = _touch_conversations(batch, items, accepted, conversations, now)
        _schedule_turns(batch, touched, now + coalesce)
        return items, stored

    items, stored = await runtime.db.run(store)
    results: list[Stored | None] = [None] * len(items)
    for index in fresh:
        message_id, conversation_id, duplicate = stored[index]
        results[index] = Stored(message_id, conversation_id, duplicate)
    for index, item in enumerate(items):
        if results[index] is None:  # a repeat within the batch
            first = results[first_of[(item.channel.id, item.inbound.provider_message_id)]]
            assert first is not None
            results[index] = Stored(first.message_id, first.conversation_id, duplicate=True)
    return [result for result in results if result is not None]


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


def _conversations(batch: _Batch, items: list[_Item], now: Any) -> dict[Key, _Conversation]:
    """Found or created, keyed by (channel id, external user id); plain rows, not ORM objects."""
    wanted = {(item.channel.id, item.inbound.external_user_id): item.channel for item in items}
    if not wanted:
        return {}

    def load(keys: list[Key]) -> dict[Key, _Conversation]:
        return {
            (channel_id, user): _Conversation(id_, workspace_id, status, profile or {})
            for id_, workspace_id, channel_id, user, status, profile in batch.find_conversations(keys)
        }

    found = load(list(wanted))
    missing = [key for key in wanted if key not in found]
    if missing:
        batch.insert_conversations(
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
            ]
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
    batch: _Batch,
    items: list[_Item],
    fresh: list[int],
    conversations: dict[Key, _Conversation],
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
        ids = batch.insert_unkeyed_messages([_message_row(items[i], conversation_of(i), now) for i in unkeyed])
        for index, message_id in zip(unkeyed, ids, strict=True):
            stored[index] = (message_id, conversation_of(index), False)
    if keyed:
        # One statement for many rows; rows come back matched by (channel, provider id).
        returned = batch.insert_keyed_messages([_message_row(items[i], conversation_of(i), now) for i in keyed])
        inserted = {(channel_id, provider_id): message_id for message_id, channel_id, provider_id in returned}
        lost = [
            (items[i].channel.id, items[i].inbound.provider_message_id)
            for i in keyed
            if (items[i].channel.id, items[i].inbound.provider_message_id) not in inserted
        ]
        # Another process stored these meanwhile (or an earlier batch did): duplicates.
        raced = {(c, p): (m, conversation) for m, conversation, c, p in batch.existing_messages(lost)} if lost else {}
        for index in keyed:
            key = (items[index].channel.id, items[index].inbound.provider_message_id)
            if key in inserted:
                stored[index] = (inserted[key], conversation_of(index), False)
            else:
                message_id, conversation_id = raced[key]
                stored[index] = (message_id, conversation_id, True)
    return stored


def _touch_conversations(
    batch: _Batch,
    items: list[_Item],
    accepted: list[int],
    conversations: dict[Key, _Conversation],
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
        batch.touch_conversations(list(changes.values()))
    return list(touched.values())


def _schedule_turns(batch: _Batch, conversations: list[_Conversation], start_at: datetime) -> None:
    """One pending turn per conversation, starting at ``start_at`` (a burst window after its latest message)."""
    lanes = {c.id: c.workspace_id for c in conversations if c.status == "bot"}
    if not lanes:
        return
    now = utcnow()
    moved_lanes = set(batch.move_turns(list(lanes), start_at))
    # A lane whose pending turn a worker claimed meanwhile gets a new one: that running
    # turn may not see these messages.
    new = [lane for lane in lanes if lane not in moved_lanes]
    if new:
        batch.insert_jobs(
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
            ]
        )
