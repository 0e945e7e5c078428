"""Group commit for inbound messages: one writer per process, many messages per transaction.

Webhooks arrive concurrently; storing each in its own transaction costs a round of
statements and a commit per message, and concurrent SQLite writers queue on the database
lock. Instead :func:`callable_agents.core.conversation.inbound.accept.accept_inbound` hands its message to
this writer and waits: the writer takes whatever is waiting (one message when traffic is
light, so no added latency) and stores the batch with set-based statements:

1. conversations found, missing ones inserted (``ON CONFLICT DO NOTHING``: a concurrent
   process may create the same one);
2. messages inserted with ``ON CONFLICT DO NOTHING`` on (channel, provider id): the unique
   constraint decides what is a duplicate, atomically across processes, and only the
   duplicates are read back;
3. conversations updated (``last_inbound_at``, profile, ``closed`` → ``bot``);
4. a turn job per conversation, runnable at once: a pending one is made runnable now (a
   turn the channel's reply policy postponed looks at its window again), or one is added
   (the running turn, if any, may be superseded: :mod:`..turn.superseding`).

If a batch fails, its messages are retried one by one so one bad message fails alone.

On SQLite the database's own thread does the writing and drains the waiting messages
itself, batch after batch, handing each batch's outcomes to the event loop; the event loop
does no more per batch than wake the callers. Other backends write one batch at a time
from a task on the event loop. The statements are in :mod:`.inbound_sql` (plain SQL on
SQLite, SQLAlchemy Core elsewhere); the logic above is written once, over them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from callable_agents.core.contracts.events import MessageEvent
from callable_agents.core.conversation.inbound.sql import TURN_JOB, CoreBatch, InboundBatch, Key, SqliteBatch
from callable_agents.core.conversation.streams import wake_workers
from callable_agents.core.conversation.turn.superseding import RunningTurns
from callable_agents.core.models import new_id, utcnow
from callable_agents.core.runtime import Runtime

log = logging.getLogger(__name__)

MAX_BATCH = 128
CLOSE_WAIT_SECONDS = 10.0
__all__ = ["InboundMessage", "InboundWriter", "Stored", "TURN_JOB", "announce_received", "store_items"]


@dataclass(frozen=True)
class InboundMessage:
    """A customer's message as a channel plugin hands it to the pipeline
    (:func:`callable_agents.core.conversation.inbound.accept_inbound`, which re-exports this class)."""

    external_user_id: str  # a messaging app's sender (e.g. a phone number), a web visitor id
    text: str
    provider_message_id: str | None = None  # the provider's message id, the dedupe key
    media: list[dict[str, Any]] = field(default_factory=list)  # [{"url", "content_type"}]
    profile: dict[str, Any] = field(default_factory=dict)  # display name, the provider's user id, ...
    meta: dict[str, Any] = field(default_factory=dict)  # every provider parameter, kept as sent
    received_at: datetime | None = None
    # The provider says this message opted the contact out (True: STOP) or back in (False:
    # START); None for an ordinary message. An opted-out contact is sent nothing more.
    opted_out: bool | None = None


class WriterClosed(RuntimeError):
    """The process is shutting down and this message was not stored (its caller gets an error)."""


@dataclass(frozen=True)
class Stored:
    message_id: int
    conversation_id: str
    duplicate: bool


class ChannelRef(Protocol):
    """What storing a message needs of its channel (a :class:`Channel`, or a reference to one)."""

    @property
    def id(self) -> str: ...

    @property
    def workspace_id(self) -> str: ...

    @property
    def kind(self) -> str: ...


class StorableItem(Protocol):
    @property
    def channel(self) -> ChannelRef: ...

    @property
    def inbound(self) -> InboundMessage: ...


@dataclass
class _Item:
    channel: ChannelRef
    inbound: InboundMessage
    future: asyncio.Future[Stored]


async def announce_received(runtime: Runtime, channel: ChannelRef, stored: Stored, inbound: InboundMessage) -> None:
    """After a customer's message is stored (not a duplicate): supersede its conversation's
    running turn in whichever process runs it (if its reply policy lets it), wake the worker
    for the new turn and tell the plugins listening to ``message_received``."""
    RunningTurns.announce(runtime, stored.conversation_id, stored.message_id)
    wake_workers(runtime)
    if not runtime.plugins.has_listeners("message_received"):
        return
    await runtime.plugins.emit(
        "message_received",
        event=MessageEvent(
            workspace_id=channel.workspace_id,
            channel_id=channel.id,
            channel_kind=channel.kind,
            conversation_id=stored.conversation_id,
            message_id=stored.message_id,
            author="customer",
            text=inbound.text,
            media=list(inbound.media),
        ),
    )


class InboundWriter:
    """The messages waiting to be stored, and what stores them, for one runtime (one event loop)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # Appended on the event loop, taken where the batch is written (the database
        # thread on SQLite): deque's append and popleft are safe across threads.
        self._waiting: deque[_Item] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining = False  # SQLite: a drain is queued or running on the database thread
        self._wake = asyncio.Event()  # other backends: the writer task's
        self._task: asyncio.Task[None] | None = None
        self._writing = False  # other backends: a batch is being written

    @classmethod
    def of(cls, runtime: Runtime) -> InboundWriter:
        writer = runtime.services.inbound_writer
        if writer is None:
            writer = runtime.services.inbound_writer = cls(runtime)
        return writer

    async def submit(self, channel: ChannelRef, inbound: InboundMessage) -> Stored:
        """Store ``inbound`` with the next batch and return its outcome once committed.

        A caller that goes away (client disconnect) cancels only its own future: the
        message is stored all the same, and its outcome dropped (see :func:`_settle`).
        """
        loop = asyncio.get_running_loop()
        item = _Item(channel, inbound, loop.create_future())
        self._waiting.append(item)
        if self.runtime.db.is_sqlite:
            if not self._draining:
                self._loop = loop
                self._draining = True
                self.runtime.db.submit_on_thread(self._drain)
        else:
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._run(), name="callable-inbound-writer")
            self._wake.set()
        return await item.future

    def _take(self) -> list[_Item]:
        batch: list[_Item] = []
        while self._waiting and len(batch) < MAX_BATCH:
            batch.append(self._waiting.popleft())
        return batch

    # --- SQLite: on the database thread ---------------------------------------------------

    def _drain(self) -> None:
        """Store one batch of what is waiting, then queue the next drain if more is waiting.

        One batch per call: other work on the database thread (turns, claims) queues
        between two batches instead of waiting for a burst of webhooks to end.
        """
        items = self._take()
        outcomes: list[Stored | BaseException] = []
        now = utcnow()

        def attempt(batch: list[_Item]) -> list[Stored]:
            with self.runtime.db.driver_transaction() as connection:
                return store_items(SqliteBatch(connection), batch, now)

        try:
            outcomes = _each_alone_on_failure(items, attempt)
        except BaseException as exc:  # never leave a caller waiting
            log.exception("inbound writer failed")
            outcomes = [exc] * len(items)
        finally:
            if items:
                try:
                    assert self._loop is not None
                    self._loop.call_soon_threadsafe(_settle_all, items, outcomes)
                except RuntimeError:  # the event loop has closed: nobody is waiting
                    pass
            self._draining = False
            # A message appended after the take above, whose caller still saw a drain
            # running, is taken by the next one.
            if self._waiting:
                self._draining = True
                self.runtime.db.submit_on_thread(self._drain)

    # --- other backends: a task on the event loop --------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._waiting:
                self._wake.clear()
                await self._wake.wait()
                continue
            items = self._take()
            now = utcnow()

            def store(session: Session) -> list[Stored | BaseException]:
                connection = session.connection()

                def attempt(batch: list[_Item]) -> list[Stored]:
                    with connection.begin_nested():  # a savepoint: a failed batch leaves the transaction usable
                        return store_items(CoreBatch(connection), batch, now)

                return _each_alone_on_failure(items, attempt)

            self._writing = True
            try:
                outcomes = await self.runtime.db.run(store)
            except Exception as exc:  # the transaction itself failed (e.g. the connection dropped)
                outcomes = [exc] * len(items)
            except asyncio.CancelledError:  # closed mid-write: no caller is left waiting forever
                _settle_all(items, [WriterClosed("the inbound writer closed before storing this message")] * len(items))
                raise
            finally:
                self._writing = False
            _settle_all(items, outcomes)

    async def aclose(self) -> None:
        """Let what is waiting be written before the database closes (bounded: a stuck
        database must not hold a shutdown forever)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLOSE_WAIT_SECONDS
        while (self._waiting or self._draining or self._writing) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _each_alone_on_failure(
    items: list[_Item], attempt: Callable[[list[_Item]], list[Stored]]
) -> list[Stored | BaseException]:
    """``attempt(items)`` (one transaction or savepoint); if it fails, ``attempt`` each item
    alone, so one message that cannot be stored fails alone. One outcome per item."""
    if not items:
        return []
    try:
        return list(attempt(items))
    except Exception as exc:
        if len(items) == 1:
            return [exc]
        log.warning("inbound batch of %d failed (%s); storing one by one", len(items), type(exc).__name__)
    outcomes: list[Stored | BaseException] = []
    for item in items:
        try:
            outcomes += attempt([item])
        except Exception as single:
            outcomes.append(single)
    return outcomes


def _settle_all(items: list[_Item], outcomes: Sequence[Stored | BaseException]) -> None:
    for item, outcome in zip(items, outcomes, strict=True):
        _settle(item.future, outcome)


def _settle(future: asyncio.Future[Stored], outcome: Stored | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def store_items(batch: InboundBatch, items: Sequence[StorableItem], now: datetime) -> list[Stored]:
    """Store ``items`` with ``batch``'s statements, in its transaction (see the module docs);
    one result per item, in order."""
    first_of: dict[tuple[str, str], int] = {}
    fresh: list[int] = []
    for index, item in enumerate(items):
        if item.inbound.provider_message_id:
            key = (item.channel.id, item.inbound.provider_message_id)
            if key in first_of:
                continue  # the same message twice in this batch: settled after the first is stored
            first_of[key] = index
        fresh.append(index)
    if not fresh:
        return []
    conversations = _conversations(batch, [items[i] for i in fresh], now)
    stored = _insert_messages(batch, items, fresh, conversations, now)
    accepted = [i for i in fresh if not stored[i][2]]
    touched = _touch_conversations(batch, items, accepted, conversations, now)
    lanes = {c.id: c.workspace_id for c in touched if c.status == "bot"}
    if lanes:
        batch.schedule_turns(lanes, now, utcnow())
    results: list[Stored] = []
    for index, item in enumerate(items):
        if index in stored:
            results.append(Stored(*stored[index]))
        else:  # a repeat within the batch
            first = stored[first_of[(item.channel.id, item.inbound.provider_message_id)]]  # type: ignore[index]
            results.append(Stored(first[0], first[1], duplicate=True))
    return results


@dataclass
class _Conversation:
    id: str
    workspace_id: str
    status: str
    profile: dict[str, Any]


def _conversations(batch: InboundBatch, items: Sequence[StorableItem], now: Any) -> dict[Key, _Conversation]:
    """Found or created, keyed by (channel id, external user id); plain rows, not ORM objects."""
    wanted = {(item.channel.id, item.inbound.external_user_id): item.channel for item in items}
    if not wanted:
        return {}

    def load(keys: list[Key]) -> dict[Key, _Conversation]:
        return {
            (channel_id, user): _Conversation(id_, workspace_id, status, profile)
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


def _message_row(item: StorableItem, conversation_id: str, now: Any) -> dict[str, Any]:
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
    batch: InboundBatch,
    items: Sequence[StorableItem],
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
        key_of: dict[int, Key] = {i: (items[i].channel.id, str(items[i].inbound.provider_message_id)) for i in keyed}
        lost = [key_of[i] for i in keyed if key_of[i] not in inserted]
        # Another process stored these meanwhile (or an earlier batch did): duplicates.
        raced = {(c, p): (m, conversation) for m, conversation, c, p in batch.existing_messages(lost)} if lost else {}
        for index in keyed:
            key = key_of[index]
            if key in inserted:
                stored[index] = (inserted[key], conversation_of(index), False)
            else:
                message_id, conversation_id = raced[key]
                stored[index] = (message_id, conversation_id, True)
    return stored


def _touch_conversations(
    batch: InboundBatch,
    items: Sequence[StorableItem],
    accepted: list[int],
    conversations: dict[Key, _Conversation],
    now: Any,
) -> list[_Conversation]:
    """Record the latest inbound time and profile, and an opt-out keyword; a closed
    conversation reopens."""
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
        if item.inbound.opted_out is not None:  # the latest keyword in the batch wins
            change["opted_out"] = item.inbound.opted_out
        else:
            change.setdefault("opted_out", None)
    if changes:
        batch.touch_conversations(list(changes.values()))
    return list(touched.values())
