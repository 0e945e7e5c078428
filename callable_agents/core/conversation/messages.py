"""What a channel may read or record on a stored message, without the database in hand.

- delivery progress: a channel that sends one message as several provider messages records
  the ids of the pieces already accepted (:func:`record_delivery_progress`), so a retry never
  sends one twice, and reads them back on the next attempt (:func:`delivery_progress`);
- media notes: what a customer's media turned out to be (a voice note's transcript) is kept
  on its media item (:func:`record_media_note`), so a rerun of the turn does not redo it.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select, text, update

from callable_agents.core.models import Message, utcnow
from callable_agents.core.runtime import Runtime


async def delivery_progress(runtime: Runtime, message_id: int) -> dict[str, Any]:
    """The message's metadata as last recorded (``{}`` when the message is gone)."""
    statement = select(Message.meta).where(Message.id == message_id)
    meta = await runtime.db.run(lambda session: session.scalar(statement), write=False)
    return dict(meta or {})


# One statement on PostgreSQL: the top-level keys of ``values`` replace the stored ones, as
# ``{**meta, **values}`` does, in the database (``meta`` is ``json``; ``jsonb`` has ``||``).
_MERGE_META_POSTGRES = text(
    "UPDATE messages SET meta = (coalesce(meta::jsonb, '{}'::jsonb) || CAST(:values AS jsonb))::json,"
    " updated_at = :now WHERE id = :message_id"
)


async def record_delivery_progress(runtime: Runtime, message_id: int, values: dict[str, Any]) -> None:
    """Merge ``values`` into the message's metadata (e.g. the provider ids of the pieces already sent)."""
    if not runtime.db.is_sqlite:
        parameters = {"values": json.dumps(values), "now": utcnow(), "message_id": message_id}
        await runtime.db.run(lambda session: session.execute(_MERGE_META_POSTGRES, parameters), transaction=False)
        return
    async with runtime.db.session() as session:
        meta = await session.scalar(select(Message.meta).where(Message.id == message_id)) or {}
        await session.execute(update(Message).where(Message.id == message_id).values(meta={**meta, **values}))


async def record_media_note(runtime: Runtime, message_id: int, index: int, note: str) -> None:
    """Keep ``note`` on the message's media item ``index`` (``"note"``), read as its description next time."""
    async with runtime.db.session() as session:
        media = await session.scalar(select(Message.media).where(Message.id == message_id))
        if not media or index >= len(media):
            return
        items = [dict(item) for item in media]
        items[index]["note"] = note
        await session.execute(update(Message).where(Message.id == message_id).values(media=items))
