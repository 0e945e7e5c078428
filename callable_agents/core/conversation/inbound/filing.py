"""Filing: the worker turns queued inbound rows into conversations, messages and turn jobs.

:func:`file_queued` takes the oldest queued rows, stores them with the inbound
writer's logic (:func:`callable_agents.core.conversation.inbound.writer.store_items`) and deletes them,
in one transaction: a message is filed exactly once, and a crash leaves it queued. The
unique constraint on (channel, provider message id) still decides what is a duplicate: a
retried delivery is filed as nothing and never answered twice. On PostgreSQL one process
files at a time (a transaction-level advisory lock), so a customer's messages are filed
in the order they were queued. A batch that fails is filed row by row; a row that fails
alone keeps its error, stays queued for inspection, and is skipped from then on.

The worker runs it as an intake before it claims jobs (:mod:`callable_agents.core.conversation.jobs`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from callable_agents.core.conversation.inbound.sql import CoreBatch, SqliteBatch
from callable_agents.core.conversation.inbound.writer import (
    InboundMessage,
    Stored,
    announce_received,
    store_items,
)
from callable_agents.core.models import QueuedInbound, utcnow
from callable_agents.core.observability.metrics import count_duplicate
from callable_agents.core.runtime import Runtime

log = logging.getLogger(__name__)

FILE_BATCH = 256  # queued rows filed per transaction
FILING_LOCK_KEY = 0x43414C4C  # "CALL"


@dataclass(frozen=True)
class _ChannelRef:
    id: str
    workspace_id: str
    kind: str


@dataclass(frozen=True)
class _Entry:
    """A queued row as :func:`store_items` takes it."""

    queued_id: int
    channel: _ChannelRef
    inbound: InboundMessage


@dataclass(frozen=True)
class _Filed:
    entry: _Entry
    stored: Stored


async def file_queued(runtime: Runtime, *, limit: int = FILE_BATCH) -> int:
    """File up to ``limit`` of the oldest queued messages (see the module docs); returns how
    many rows were taken (filed, found to be duplicates, or failed alone). The worker calls
    this before it claims jobs, until it returns 0."""
    # Read first: the worker asks on every pass, and most passes find nothing. Filing takes
    # the write lock (SQLite) or the filing lock (PostgreSQL), which a look should not.
    if not await runtime.db.run(_anything_queued, write=False):
        return 0
    coalesce = timedelta(seconds=runtime.settings.coalesce_seconds)
    result: tuple[int, list[_Filed]] = await runtime.db.run(lambda session: _file(session, limit, coalesce))
    taken, filed = result
    for item in filed:
        if item.stored.duplicate:
            count_duplicate(item.entry.channel.kind)
        else:
            await announce_received(runtime, item.entry.channel, item.stored, item.entry.inbound)
    return taken


def _file(session: Session, limit: int, coalesce: timedelta) -> tuple[int, list[_Filed]]:
    connection = session.connection()
    postgres = connection.dialect.name == "postgresql"
    if postgres and not connection.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": FILING_LOCK_KEY}).scalar():
        return 0, []  # another process is filing; it takes these rows too
    rows = connection.execute(_queued_statement(), {"limit": limit}).all()
    if not rows:
        return 0, []
    now = utcnow()
    entries: list[_Entry] = []
    for row in rows:
        try:
            entries.append(_entry(row))
        except Exception as exc:  # a row written by another version, or by hand
            _keep_with_error(connection, row[0], exc)
    if not entries:
        return len(rows), []

    def attempt(group: list[_Entry]) -> list[Stored]:
        with connection.begin_nested():  # a savepoint: a failed group leaves the transaction usable
            if postgres:
                stored = store_items(CoreBatch(connection), group, now, coalesce)
            else:
                stored = store_items(SqliteBatch(connection.connection.driver_connection), group, now, coalesce)  # type: ignore[arg-type]
            connection.execute(
                delete(QueuedInbound).where(QueuedInbound.id.in_(bindparam("ids", expanding=True))),
                {"ids": [entry.queued_id for entry in group]},
            )
            return stored

    filed: list[_Filed] = []
    try:
        filed = [_Filed(entry, stored) for entry, stored in zip(entries, attempt(entries), strict=True)]
    except Exception as exc:
        log.warning("filing %d queued messages failed (%s); filing them one by one", len(entries), type(exc).__name__)
        for entry in entries:
            try:
                [stored] = attempt([entry])
            except Exception as single:
                _keep_with_error(connection, entry.queued_id, single)
            else:
                filed.append(_Filed(entry, stored))
    return len(rows), filed


def _keep_with_error(connection: Connection, queued_id: int, error: Exception) -> None:
    log.error("queued inbound message %s could not be filed and stays queued: %s", queued_id, error)
    connection.execute(
        update(QueuedInbound).where(QueuedInbound.id == queued_id),
        {"error": f"{type(error).__name__}: {error}"[:2000]},
    )


def _anything_queued(session: Session) -> bool:
    return session.execute(_queued_statement(), {"limit": 1}).first() is not None


@functools.cache
def _queued_statement() -> Any:
    table = QueuedInbound.__table__
    return (
        select(table.c.id, table.c.workspace_id, table.c.channel_id, table.c.payload, table.c.received_at)
        .where(table.c.error.is_(None))
        .order_by(table.c.id)
        .limit(bindparam("limit"))
    )


def _entry(row: Sequence[Any]) -> _Entry:
    queued_id, workspace_id, channel_id, payload, received_at = row
    fields = dict(payload)
    kind = fields.pop("channel_kind", "")
    fields["received_at"] = received_at
    return _Entry(queued_id, _ChannelRef(channel_id, workspace_id, kind), InboundMessage(**fields))
