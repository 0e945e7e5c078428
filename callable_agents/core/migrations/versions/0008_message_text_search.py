"""message text search: a trigram index over messages.text for the inbox's word search

The inbox searches a conversation's messages for text anywhere in them (``ILIKE
'%words%'``). Without an index that read every message of the workspace when nothing
matched: seconds at a million messages. A trigram index answers the same substring search
from the index, on both backends:

* PostgreSQL: GIN indexes with ``pg_trgm``'s ``gin_trgm_ops`` over the text, and over the
  customer's number and name (which the search also matches), serving ``ILIKE`` as it is. ``pg_trgm`` ships with PostgreSQL and is a trusted extension, so the database's owner
  may create it; where the migration's role may not, the index is left out with a warning
  and the search keeps working, by a scan.
* SQLite: an FTS5 table with the ``trigram`` tokenizer over ``messages`` (external content:
  the text is not stored twice), kept in step by triggers. The inbox queries it with
  ``LIKE``. A later migration that rebuilds ``messages`` (alembic's batch mode copies the
  table) drops the triggers with the old table and must create them again.

Revision ID: 0008_message_search
Revises: 0007_rate_limits
Create Date: 2026-12-07 13:50:00
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_message_search"
down_revision: str | None = "0007_rate_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

SQLITE_SEARCH_TABLE = "messages_text_search"
POSTGRES_INDEX = "ix_messages_text_trgm"
POSTGRES_NUMBER_INDEX = "ix_conversations_external_user_id_trgm"
POSTGRES_NAME_INDEX = "ix_conversations_profile_name_trgm"

_SQLITE_UPGRADE = (
    # detail=none: the index keeps which rows hold a trigram, not where; LIKE checks each
    # candidate row anyway, and the index is a fraction of the size.
    f"CREATE VIRTUAL TABLE {SQLITE_SEARCH_TABLE} USING fts5("
    "text, content='messages', content_rowid='id', tokenize='trigram case_sensitive 0', detail=none)",
    f"CREATE TRIGGER {SQLITE_SEARCH_TABLE}_insert AFTER INSERT ON messages BEGIN "
    f"INSERT INTO {SQLITE_SEARCH_TABLE}(rowid, text) VALUES (new.id, new.text); END",
    f"CREATE TRIGGER {SQLITE_SEARCH_TABLE}_delete AFTER DELETE ON messages BEGIN "
    f"INSERT INTO {SQLITE_SEARCH_TABLE}({SQLITE_SEARCH_TABLE}, rowid, text) VALUES ('delete', old.id, old.text); END",
    f"CREATE TRIGGER {SQLITE_SEARCH_TABLE}_update AFTER UPDATE OF text ON messages BEGIN "
    f"INSERT INTO {SQLITE_SEARCH_TABLE}({SQLITE_SEARCH_TABLE}, rowid, text) VALUES ('delete', old.id, old.text); "
    f"INSERT INTO {SQLITE_SEARCH_TABLE}(rowid, text) VALUES (new.id, new.text); END",
    # The messages already stored.
    f"INSERT INTO {SQLITE_SEARCH_TABLE}({SQLITE_SEARCH_TABLE}) VALUES ('rebuild')",
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in _SQLITE_UPGRADE:
            op.execute(statement)
        return
    try:
        with bind.begin_nested():
            op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except sa.exc.DBAPIError as exc:
        log.warning(
            "could not create the pg_trgm extension (%s): the inbox's word search works without its index, "
            "by a scan of the messages. Have the database's owner run CREATE EXTENSION pg_trgm, then "
            "CREATE INDEX %s ON messages USING gin (text gin_trgm_ops).",
            str(exc.orig).strip().splitlines()[0], POSTGRES_INDEX,
        )
        return
    op.execute(f"CREATE INDEX {POSTGRES_INDEX} ON messages USING gin (text gin_trgm_ops)")
    # The customer's number and name, which the same search matches.
    op.execute(f"CREATE INDEX {POSTGRES_NUMBER_INDEX} ON conversations USING gin (external_user_id gin_trgm_ops)")
    op.execute(f"CREATE INDEX {POSTGRES_NAME_INDEX} ON conversations USING gin ((profile ->> 'ProfileName') gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for suffix in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS {SQLITE_SEARCH_TABLE}_{suffix}")
        op.execute(f"DROP TABLE IF EXISTS {SQLITE_SEARCH_TABLE}")
        return
    for index in (POSTGRES_INDEX, POSTGRES_NUMBER_INDEX, POSTGRES_NAME_INDEX):
        op.execute(f"DROP INDEX IF EXISTS {index}")
