"""The inbound queue: a webhook's message made durable by one append, filed by the worker.

A messaging provider only needs to hear that a message is safe. Filing it (finding or
creating the conversation, deduplicating on the provider's message id, the profile, the
opt-out keywords, scheduling the turn) takes several statements over several indexes, and
on SQLite most of a webhook's time went there, on the database thread. So a messaging-app
channel calls :func:`queue_inbound`: the message is appended to ``inbound_queue`` (one
narrow row, no index besides the key, so every append lands on the table's last page), the
webhook answers, and the worker files what is queued (:mod:`.filing`) before it
claims jobs. Channels that need the conversation at once (e.g. a web chat) keep calling
:func:`callable_agents.core.conversation.inbound.accept.accept_inbound`.

**Appending.** Messages waiting to be appended are written together, in one ``INSERT``:

* SQLite: by the event loop itself, at the end of the loop pass that queued them, on a
  connection of its own. A hand-off to the database thread per batch costs more than the
  write (the thread has to be woken and scheduled beside the event loop on a busy
  machine), and this write is short and bounded:

  - it never waits for a lock: the connection's busy timeout is 0. When another
    connection holds the write lock (the database thread filing or finishing a turn,
    another process), the batch goes to the database thread, which waits its turn, and
    so do later batches until it is written, to keep them in order;
  - it never waits for the disk: in WAL mode with ``synchronous=NORMAL`` a commit hands
    its pages to the operating system without ``fsync``, and this connection never
    checkpoints (``wal_autocheckpoint=0``); the database thread does, every
    :data:`CHECKPOINT_EVERY` appends;
  - it is one statement over one narrow table: tens of microseconds per message.

* PostgreSQL: by a task, on a connection of the queue's own in autocommit mode: a batch is
  one ``INSERT ... SELECT FROM unnest(...)`` statement (its columns as four binary array
  parameters), so one round trip and one commit serve every webhook that gathered while the
  previous batch was written (group commit),
  and each is acknowledged only once that commit returned (durable: PostgreSQL's default
  ``synchronous_commit``). A failed batch closes the connection (the next one reconnects)
  and its webhooks answer 503, so the provider retries them.

"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg
from sqlalchemy.exc import DBAPIError, OperationalError

from callable_agents.core.conversation.inbound.sql import append_queued
from callable_agents.core.conversation.inbound.writer import (
    CLOSE_WAIT_SECONDS,
    ChannelRef,
    InboundMessage,
)
from callable_agents.core.conversation.streams import wake_workers
from callable_agents.core.models import utcnow
from callable_agents.core.observability.metrics import count_webhook
from callable_agents.core.observability.pipeline import traced_inbound
from callable_agents.core.runtime import Runtime

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 1000  # appends on the event loop's connection between two checkpoints
# Any fixed number: the key of PostgreSQL's advisory lock that lets one process file at a time.
_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}

Row = tuple[str, str, str, datetime]  # workspace id, channel id, payload JSON, received at


async def queue_inbound(runtime: Runtime, channel: ChannelRef, inbound: InboundMessage) -> None:
    """Make ``inbound`` durable in the inbound queue; returns once committed.

    The worker files it later (:func:`file_queued`): the conversation, the dedupe on
    ``provider_message_id``, the turn. Raises if the message cannot be stored (the caller
    should answer its provider with an error, so the provider retries).
    """
    inbound = traced_inbound(inbound)  # the turn's span links to this webhook's
    try:
        await InboundQueue.of(runtime).put(channel, inbound)
    except BaseException:
        count_webhook(channel.kind, "failed")
        raise
    count_webhook(channel.kind, "queued")
    wake_workers(runtime)  # this process's worker, or another's, files it


@dataclass
class _Waiting:
    row: Row
    future: asyncio.Future[None]


class InboundQueue:
    """The messages waiting to be appended, and what appends them, for one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._waiting: list[_Waiting] = []
        self._flush_scheduled = False
        self._connection: sqlite3.Connection | None = None  # SQLite: the event loop's own
        self._appended_here = 0
        self._writer: asyncio.Task[None] | None = None  # appends elsewhere while set
        self._postgres_appender: PostgresAppender | None = None

    def _postgres(self) -> PostgresAppender:
        if self._postgres_appender is None:
            self._postgres_appender = PostgresAppender(self.runtime.db.libpq_url)
        return self._postgres_appender

    @classmethod
    def of(cls, runtime: Runtime) -> InboundQueue:
        queue = runtime.services.inbound_queue
        if queue is None:
            queue = runtime.services.inbound_queue = cls(runtime)
        return queue

    async def put(self, channel: ChannelRef, inbound: InboundMessage) -> None:
        received_at = inbound.received_at or utcnow()
        if received_at.tzinfo is None:
            # Refused here, alone: in the batch it would fail every message appended with it.
            raise ValueError(
                "InboundMessage.received_at: expected a timezone-aware datetime "
                "(e.g. datetime.now(timezone.utc)), got a naive one"
            )
        row = (channel.workspace_id, channel.id, _payload(channel, inbound), received_at)
        loop = asyncio.get_running_loop()
        waiting = _Waiting(row, loop.create_future())
        self._waiting.append(waiting)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            # After the callbacks already ready in this loop pass: every webhook that got
            # this far in the pass shares the batch.
            loop.call_soon(self._flush)
        await waiting.future

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._waiting:
            return
        if not self.runtime.db.is_sqlite or self._writer is not None:
            self._start_writer()  # it takes what is waiting once its current batch is written
            return
        batch, self._waiting = self._waiting, []
        try:
            self._append_here([waiting.row for waiting in batch])
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode not in _BUSY:
                _settle(batch, exc)
                return
            # Another connection is writing: wait for it off the loop, and keep the order.
            self._waiting[:0] = batch
            self._start_writer()
            return
        except Exception as exc:
            _settle(batch, exc)
            return
        _settle(batch, None)

    def _append_here(self, rows: list[Row]) -> None:
        connection = self._connection
        if connection is None:
            connection = self._connection = self.runtime.db.connect_without_waiting()
        connection.execute("BEGIN IMMEDIATE")
        try:
            append_queued(connection, rows)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        self._appended_here += 1
        if self._appended_here % CHECKPOINT_EVERY == 0:
            self.runtime.db.submit_on_thread(self.runtime.db.checkpoint)

    def _start_writer(self) -> None:
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_elsewhere(), name="callable-inbound-queue")

    async def _write_elsewhere(self) -> None:
        """Append what is waiting through the database thread (SQLite) or the async driver,
        batch after batch (each batch is what gathered while the previous one was written),
        until nothing waits; then appends go back to the event loop (SQLite)."""
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                rows = [waiting.row for waiting in batch]
                try:
                    if self.runtime.db.is_sqlite:
                        await self.runtime.db.call_on_thread(_append_on_thread, self.runtime, rows)
                    else:
                        await self._postgres().append(rows)
                except Exception as exc:
                    _settle(batch, exc)
                except asyncio.CancelledError:
                    _settle(batch, RuntimeError("the inbound queue closed before storing this message"))
                    raise
                else:
                    _settle(batch, None)
        finally:
            self._writer = None

    async def aclose(self) -> None:
        """Let waiting and handed-off batches be written (bounded), then close the connection."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLOSE_WAIT_SECONDS
        while (self._waiting or self._writer is not None) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        for waiting in self._waiting:
            if not waiting.future.done():
                waiting.future.set_exception(RuntimeError("the inbound queue closed before storing this message"))
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._postgres_appender is not None:
            await self._postgres_appender.aclose()


def _payload(channel: ChannelRef, inbound: InboundMessage) -> str:
    """The message as JSON (``dataclasses.asdict`` would deep-copy it first, at several
    times the cost); a message that cannot be serialised fails here, alone.

    orjson, not ``json``: this runs on every webhook, on the event loop, and ``json.dumps``
    of a messaging app's message (every provider field is in ``meta``) took about 6 us to
    orjson's 0.8.
    Keys that are not strings are written as strings, as ``json.dumps`` does."""
    return orjson.dumps(
        {
            "external_user_id": inbound.external_user_id,
            "text": inbound.text,
            "provider_message_id": inbound.provider_message_id,
            "media": inbound.media,
            "profile": inbound.profile,
            "meta": inbound.meta,
            "opted_out": inbound.opted_out,
            "channel_kind": channel.kind,
        },
        option=orjson.OPT_NON_STR_KEYS,
    ).decode()


def _append_on_thread(runtime: Runtime, rows: list[Row]) -> None:
    with runtime.db.driver_transaction() as connection:
        append_queued(connection, rows)


class PostgresAppender:
    """Appends batches to ``inbound_queue`` on a PostgreSQL connection of its own (autocommit):
    one statement per batch, committed when it returns."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self._abandoned: set[asyncio.Task[None]] = set()

    async def append(self, rows: list[Row]) -> None:
        """Append ``rows`` in one statement; raises a SQLAlchemy ``DBAPIError`` (the server
        answers 503 for an unreachable database) when it could not be committed."""
        try:
            connection = self._connection
            if connection is None or connection.closed:
                connection = self._connection = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
                )
            statement = asyncio.ensure_future(connection.execute(_POSTGRES_APPEND, _as_columns(rows)))
            try:
                await asyncio.wait({statement}, timeout=APPEND_TIMEOUT_SECONDS)
            finally:
                if not statement.done():
                    # Given up (or the caller went away): psycopg cancels the query over the
                    # same stalled network, which takes its own time: not the webhook's.
                    self._connection = None
                    self._abandon(statement, connection)
            if not statement.done():
                raise TimeoutError(f"the append took over {APPEND_TIMEOUT_SECONDS} s")
            statement.result()
        except BaseException as exc:
            await self._close_connection()  # a connection in doubt is not used again
            if isinstance(exc, psycopg.Error):
                raise DBAPIError.instance(_POSTGRES_APPEND, None, exc, psycopg.Error) from exc
            if isinstance(exc, TimeoutError):
                # Maybe committed, maybe not: the webhook answers 503 and the provider's retry
                # is recognised as a duplicate if it was.
                raise OperationalError(_POSTGRES_APPEND, None, exc) from exc
            raise

    def _abandon(self, statement: asyncio.Future[Any], connection: psycopg.AsyncConnection[Any]) -> None:
        # Its outcome is retrieved whatever happens, so it is never reported as unretrieved.
        statement.add_done_callback(lambda done: done.cancelled() or done.exception())

        async def close() -> None:
            statement.cancel()
            await asyncio.gather(statement, return_exceptions=True)
            try:
                await connection.close()
            except Exception:  # already broken: nothing to close
                pass

        task = asyncio.get_running_loop().create_task(close())
        self._abandoned.add(task)
        task.add_done_callback(self._abandoned.discard)

    async def aclose(self) -> None:
        """At shutdown: the connection closed, and the closing of abandoned ones cut short."""
        for task in list(self._abandoned):
            task.cancel()
        await asyncio.gather(*self._abandoned, return_exceptions=True)
        await self._close_connection()

    async def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                await connection.close()
            except Exception:  # already broken: nothing to close
                pass


CONNECT_TIMEOUT_SECONDS = 5
# A database that stops answering (a network partition) must not hold webhooks until the
# provider gives up (15 s is a common webhook timeout): they answer 503 after this long instead.
APPEND_TIMEOUT_SECONDS = 8
# The batch goes as four arrays, one a column, in binary: the driver writes a binary array's
# elements as they are, where a text array's went through Python-level escaping (the
# payloads are full of quotes). The payloads are JSON already (see _payload): stored as
# json, checked by the server once and never decoded here.
_POSTGRES_APPEND = (
    "INSERT INTO inbound_queue (workspace_id, channel_id, payload, received_at) "
    "SELECT * FROM unnest(%b::text[], %b::text[], %b::text[]::json[], %b::timestamptz[])"
)


def _as_columns(rows: list[Row]) -> tuple[list[str], list[str], list[str], list[datetime]]:
    """``rows`` as their four columns: workspace ids, channel ids, payloads, received times."""
    workspace_ids, channel_ids, payloads, received = zip(*rows)
    return list(workspace_ids), list(channel_ids), list(payloads), list(received)


def _settle(batch: list[_Waiting], error: BaseException | None) -> None:
    for waiting in batch:
        if waiting.future.done():  # its caller went away; the message is stored all the same
            continue
        if error is None:
            waiting.future.set_result(None)
        else:
            waiting.future.set_exception(error)
