"""The inbound writer's statements, for SQLite (plain SQL) and for other backends (Core).

:mod:`.inbound_writer` stores a batch of messages with a handful of set-based statements,
written once over :class:`InboundBatch`. Two implementations:

* :class:`CoreBatch`: SQLAlchemy Core, prebuilt statements (PostgreSQL).
* :class:`SqliteBatch`: plain SQL on the stdlib driver's connection. It runs on the
  database thread beside the event loop, and there two costs dominate: SQLAlchemy's own
  work per statement (several times SQLite's), and the interpreter lock. The driver lets
  the lock go around every step of every statement and has to win it back afterwards,
  from an event loop that is busy answering webhooks. So each of its methods is one or
  two steps, whatever the number of rows: several rows in one statement, and what comes
  back read as one JSON value (``json_group_array``) instead of row by row.

Values are stored exactly as SQLAlchemy would store them (JSON text, the dialect's
datetime text); a test reads every column back through the ORM on both backends.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from sqlalchemy import Boolean, String, bindparam, func, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from callable_agents.core.models import Conversation, Job, Message, live_job

TURN_JOB = "turn"
TURN_MAX_ATTEMPTS = 8

Key = tuple[str, str]
ConversationRow = tuple[str, str, str, str, str, dict[str, Any]]  # id, workspace, channel, user, status, profile


class InboundBatch(Protocol):
    """The statements storing a batch needs (all in the caller's transaction)."""

    def find_conversations(self, keys: list[Key]) -> list[ConversationRow]:
        """The conversations with these (channel id, external user id) keys that exist."""

    def insert_conversations(self, rows: list[dict[str, Any]]) -> None:
        """Insert, skipping a (channel, user) that exists already (a concurrent process made it)."""

    def insert_keyed_messages(self, rows: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
        """Insert, skipping a (channel, provider id) stored before; (id, channel, provider id) of those inserted."""

    def insert_unkeyed_messages(self, rows: list[dict[str, Any]]) -> list[int]:
        """Insert messages without a provider id; their ids, in order."""

    def existing_messages(self, keys: list[Key]) -> list[tuple[int, str, str, str]]:
        """(id, conversation id, channel, provider id) of stored messages with these keys."""

    def touch_conversations(self, changes: list[dict[str, Any]]) -> None:
        """Set ``profile``, ``last_inbound_at``, ``status``, ``updated_at`` (``now``) and, unless
        None, ``opted_out`` of conversation ``b_id``."""

    def schedule_turns(self, lanes: dict[str, str], start_at: datetime, now: datetime) -> None:
        """Per lane (conversation id → workspace id): its pending turn starts at ``start_at``, or one is added."""


class CoreBatch:
    """Through SQLAlchemy Core (PostgreSQL, and any other backend)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.statements = _core_statements(connection.dialect.name)

    def find_conversations(self, keys: list[Key]) -> list[ConversationRow]:
        rows = self.connection.execute(self.statements.conversations, self.statements.key_parameters(keys))
        return [(r.id, r.workspace_id, r.channel_id, r.external_user_id, r.status, r.profile or {}) for r in rows]

    def insert_conversations(self, rows: list[dict[str, Any]]) -> None:
        self.connection.execute(self.statements.insert_conversations, rows)

    def insert_keyed_messages(self, rows: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
        returned = self.connection.execute(self.statements.insert_keyed_messages, rows)
        return [(r.id, r.channel_id, r.provider_message_id) for r in returned]

    def insert_unkeyed_messages(self, rows: list[dict[str, Any]]) -> list[int]:
        return [r.id for r in self.connection.execute(self.statements.insert_unkeyed_messages, rows)]

    def existing_messages(self, keys: list[Key]) -> list[tuple[int, str, str, str]]:
        rows = self.connection.execute(self.statements.existing_messages, self.statements.key_parameters(keys))
        return [(r.id, r.conversation_id, r.channel_id, r.provider_message_id) for r in rows]

    def touch_conversations(self, changes: list[dict[str, Any]]) -> None:
        self.connection.execute(self.statements.touch_conversations, changes)

    def schedule_turns(self, lanes: dict[str, str], start_at: datetime, now: datetime) -> None:
        moved = {r.lane for r in self.connection.execute(self.statements.move_turns, {"lanes": list(lanes), "start_at": start_at})}
        # A lane whose pending turn a worker claimed meanwhile gets a new one: that running
        # turn may not see these messages.
        new = [_turn_row(lane, workspace_id, start_at, now) for lane, workspace_id in lanes.items() if lane not in moved]
        if new:
            self.connection.execute(insert(Job.__table__), new)


def _turn_row(lane: str, workspace_id: str, start_at: datetime, now: datetime) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id, "kind": TURN_JOB, "lane": lane, "payload": {"conversation_id": lane},
        "status": "pending", "attempts": 0, "max_attempts": TURN_MAX_ATTEMPTS, "run_after": start_at,
        "created_at": now, "updated_at": now,
    }


@dataclass(frozen=True)
class _CoreStatements:
    key_parameters: Callable[[list[Key]], dict[str, Any]]  # what ``conversations`` and ``existing_messages`` take
    conversations: Any
    insert_conversations: Any
    insert_keyed_messages: Any
    insert_unkeyed_messages: Any
    existing_messages: Any
    touch_conversations: Any
    move_turns: Any


def _keys_as_list(keys: list[Key]) -> dict[str, Any]:
    return {"keys": keys}


def _keys_as_arrays(keys: list[Key]) -> dict[str, Any]:
    return {"key_channels": [channel for channel, _ in keys], "key_values": [value for _, value in keys]}


def _among_keys(channel: Any, value: Any, postgres: bool) -> Any:
    """``(channel, value)`` is one of the batch's keys.

    On PostgreSQL the keys go as two arrays, unnested: one statement text whatever the batch
    size, so the driver prepares it once. A row-value ``IN`` list is a new text for each
    size, and PostgreSQL planned its OR of pairs anew every time (2 ms for 24 keys: most of
    what filing cost the database).
    """
    if not postgres:
        return tuple_(channel, value).in_(bindparam("keys", expanding=True))
    keys = func.unnest(
        bindparam("key_channels", type_=postgresql.ARRAY(String)), bindparam("key_values", type_=postgresql.ARRAY(String))
    ).table_valued("channel", "value").render_derived()
    return tuple_(channel, value).in_(select(keys.c.channel, keys.c.value))


@functools.cache
def _core_statements(dialect: str) -> _CoreStatements:
    """Built once per dialect: building them costs more than running them."""
    postgres = dialect == "postgresql"
    insert_for = postgresql.insert if postgres else sqlite.insert
    conversations, messages, jobs = Conversation.__table__, Message.__table__, Job.__table__
    c = conversations.c
    return _CoreStatements(
        key_parameters=_keys_as_arrays if postgres else _keys_as_list,
        conversations=select(c.id, c.workspace_id, c.channel_id, c.external_user_id, c.status, c.profile).where(
            _among_keys(c.channel_id, c.external_user_id, postgres)
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
        ).where(_among_keys(messages.c.channel_id, messages.c.provider_message_id, postgres)),
        touch_conversations=update(conversations)
        .where(c.id == bindparam("b_id"))
        .values(
            profile=bindparam("profile"),
            last_inbound_at=bindparam("last_inbound_at"),
            status=bindparam("status"),
            updated_at=bindparam("now"),
            opted_out=func.coalesce(bindparam("opted_out", type_=Boolean), c.opted_out),
        ),
        move_turns=update(jobs)
        .where(
            jobs.c.kind == TURN_JOB, jobs.c.status == "pending", live_job(jobs),
            jobs.c.lane.in_(bindparam("lanes", expanding=True)),
        )
        .values(run_after=bindparam("start_at"))
        .returning(jobs.c.lane),
    )


class SqliteBatch:
    """Plain SQL on the stdlib driver's connection: each method one or two statement steps."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.cursor = connection.cursor()

    def _one_value(self, sql: str, parameters: list[Any]) -> Any:
        return self.cursor.execute(sql, parameters).fetchone()[0]

    def find_conversations(self, keys: list[Key]) -> list[ConversationRow]:
        # Per channel, `channel_id = ? AND external_user_id IN (...)` searches the unique
        # index; a row-value `IN (VALUES ...)` made SQLite scan the whole table.
        users_of: dict[str, list[str]] = {}
        for channel_id, user in keys:
            users_of.setdefault(channel_id, []).append(user)
        found: list[ConversationRow] = []
        for channel_id, users in users_of.items():
            rows = self._one_value(
                "SELECT json_group_array(json_array(id, workspace_id, channel_id, external_user_id, status, json(profile)))"
                f" FROM conversations WHERE channel_id = ? AND external_user_id IN ({_marks(len(users))})",
                [channel_id, *users],
            )
            found += [(*row[:5], row[5] or {}) for row in json.loads(rows)]
        return found

    def insert_conversations(self, rows: list[dict[str, Any]]) -> None:
        values: list[Any] = []
        for r in rows:
            values += (
                r["id"], r["workspace_id"], r["channel_id"], r["external_user_id"], r["status"], json.dumps(r["profile"]),
                int(r["opted_out"]), sqlite_stamp(r["created_at"]), sqlite_stamp(r["updated_at"]),
            )
        self.cursor.execute(
            f"INSERT INTO conversations ({', '.join(_CONVERSATION_COLUMNS)}) VALUES {_rows(len(rows), len(_CONVERSATION_COLUMNS))}"
            " ON CONFLICT (channel_id, external_user_id) DO NOTHING",
            values,
        )

    def insert_keyed_messages(self, rows: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
        self.cursor.execute(
            f"INSERT INTO messages ({', '.join(_MESSAGE_COLUMNS)}) VALUES {_rows(len(rows), len(_MESSAGE_COLUMNS))}"
            " ON CONFLICT (channel_id, provider_message_id) DO NOTHING",
            [value for row in rows for value in _message_values(row)],
        )
        inserted = self.cursor.rowcount
        if not inserted:
            return []
        # One statement, one writer (the transaction holds SQLite's write lock): the rows it
        # inserted got the ids up to the last one, consecutively (AUTOINCREMENT).
        last = self.cursor.lastrowid
        assert last is not None
        found = json.loads(
            self._one_value(
                "SELECT json_group_array(json_array(id, channel_id, provider_message_id)) FROM messages WHERE id BETWEEN ? AND ?",
                [last - inserted + 1, last],
            )
        )
        if len(found) != inserted:
            raise RuntimeError(f"inserted {inserted} messages but found {len(found)} with the ids SQLite gave them")
        return [tuple(row) for row in found]

    def insert_unkeyed_messages(self, rows: list[dict[str, Any]]) -> list[int]:
        statement = f"INSERT INTO messages ({', '.join(_MESSAGE_COLUMNS)}) VALUES {_rows(1, len(_MESSAGE_COLUMNS))}"
        ids = []
        for row in rows:  # one by one: ids in order (web messages, a few per batch)
            self.cursor.execute(statement, _message_values(row))
            ids.append(int(self.cursor.lastrowid))  # type: ignore[arg-type]
        return ids

    def existing_messages(self, keys: list[Key]) -> list[tuple[int, str, str, str]]:
        rows = self._one_value(
            "SELECT json_group_array(json_array(id, conversation_id, channel_id, provider_message_id)) FROM messages"
            f" WHERE (channel_id, provider_message_id) IN (VALUES {_rows(len(keys), 2)})",
            [value for key in keys for value in key],
        )
        return [tuple(row) for row in json.loads(rows)]

    def touch_conversations(self, changes: list[dict[str, Any]]) -> None:
        values: list[Any] = []
        for c in changes:
            values += (
                c["b_id"], json.dumps(c["profile"]), sqlite_stamp(c["last_inbound_at"]), c["status"], sqlite_stamp(c["now"]),
                c["opted_out"],
            )
        self.cursor.execute(  # each row found by its primary key
            "UPDATE conversations SET profile = v.column2, last_inbound_at = v.column3, status = v.column4,"
            " updated_at = v.column5, opted_out = coalesce(v.column6, conversations.opted_out)"
            f" FROM (VALUES {_rows(len(changes), 6)}) AS v WHERE conversations.id = v.column1",
            values,
        )

    def schedule_turns(self, lanes: dict[str, str], start_at: datetime, now: datetime) -> None:
        start, created = sqlite_stamp(start_at), sqlite_stamp(now)
        # `+kind`, `+status` (here and below): not indexable, so SQLite searches ix_jobs_lane
        # instead of walking every pending job through ix_jobs_claim.
        self.cursor.execute(
            f"UPDATE jobs SET run_after = ? WHERE lane IN ({_marks(len(lanes))}) AND +kind = ? AND +status = 'pending'",
            [start, *lanes, TURN_JOB],
        )
        # A lane without a pending turn (none yet, or a worker claimed it meanwhile: that
        # running turn may not see these messages) gets a new one.
        values: list[Any] = []
        for lane, workspace_id in lanes.items():
            values += (workspace_id, lane, json.dumps({"conversation_id": lane}))
        self.cursor.execute(
            "INSERT INTO jobs (workspace_id, lane, payload, kind, status, attempts, max_attempts, run_after, created_at, updated_at)"
            " SELECT v.column1, v.column2, v.column3, ?, 'pending', 0, ?, ?, ?, ?"
            f" FROM (VALUES {_rows(len(lanes), 3)}) AS v"
            " WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.lane = v.column2 AND +jobs.kind = ? AND +jobs.status = 'pending')",
            [TURN_JOB, TURN_MAX_ATTEMPTS, start, created, created, *values, TURN_JOB],
        )


def append_queued(connection: sqlite3.Connection, rows: list[tuple[str, str, str, datetime]]) -> None:
    """Append to ``inbound_queue`` in one statement: (workspace id, channel id, payload as
    JSON text, received at) per row (:mod:`.inbound_queue`)."""
    values: list[Any] = []
    for workspace_id, channel_id, payload, received_at in rows:
        values += (workspace_id, channel_id, payload, sqlite_stamp(received_at))
    connection.execute(
        f"INSERT INTO inbound_queue (workspace_id, channel_id, payload, received_at) VALUES {_rows(len(rows), 4)}",
        values,
    )


_CONVERSATION_COLUMNS = (
    "id", "workspace_id", "channel_id", "external_user_id", "status", "profile", "opted_out", "created_at", "updated_at",
)
_MESSAGE_COLUMNS = (
    "workspace_id", "conversation_id", "channel_id", "direction", "author", "text", "media", "meta",
    "provider_message_id", "status", "created_at", "updated_at",
)


def _message_values(r: dict[str, Any]) -> tuple[Any, ...]:
    return (
        r["workspace_id"], r["conversation_id"], r["channel_id"], r["direction"], r["author"], r["text"],
        json.dumps(r["media"]), json.dumps(r["meta"]), r["provider_message_id"], r["status"],
        sqlite_stamp(r["created_at"]), sqlite_stamp(r["updated_at"]),
    )


@functools.lru_cache(maxsize=16)  # a batch stamps most rows with the same few instants
def sqlite_stamp(moment: datetime) -> str:
    """``moment`` as SQLAlchemy's SQLite dialect stores a UTC datetime: ``YYYY-MM-DD HH:MM:SS.ffffff``."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given; use callable_agents.core.models.utcnow()")
    return moment.astimezone(timezone.utc).isoformat(" ", "microseconds")[:26]


@functools.cache
def _marks(count: int) -> str:
    return ", ".join("?" * count)


@functools.cache
def _rows(count: int, columns: int) -> str:
    return ", ".join(["(" + _marks(columns) + ")"] * count)
