"""live job indexes: on PostgreSQL the claim and the lane checks read only unfinished jobs

Finished jobs are kept, so they are most of ``jobs`` and grow with every message. Once
PostgreSQL had statistics, its claim walked the primary key oldest first, over every job
ever done, to the first runnable one (1.9 ms a claim at 20,000 done jobs, growing with
them), and each lane check read the lane's whole history. Two partial indexes hold only
the jobs still pending or running (``LIVE_JOB_SQL`` in the models): ``ix_jobs_live`` for
the walk, and ``ix_jobs_lane``, rebuilt over live jobs only.

SQLite is left as it is: its claim reads by status (``ix_jobs_claim``) already, and its
planner uses a partial index only for a query that repeats the index's condition as written,
which its filing statements avoid on purpose (they keep off the status index).

Building them reads ``jobs`` once and holds writes to it meanwhile (about a second per
million jobs). Old processes keep working on the new schema: their lane queries stay
correct, only slower, until they are rolled.

Revision ID: 0009_live_jobs
Revises: 0008_message_search
Create Date: 2026-12-07 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_live_jobs"
down_revision: str | None = "0008_message_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out, not imported: a migration keeps the schema it made when the models change.
LIVE = sa.text("status IN ('pending', 'running')")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_index("ix_jobs_live", "jobs", ["id"], postgresql_where=LIVE)
    op.drop_index("ix_jobs_lane", table_name="jobs")
    op.create_index("ix_jobs_lane", "jobs", ["lane", "id"], postgresql_where=LIVE)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_jobs_lane", table_name="jobs")
    op.create_index("ix_jobs_lane", "jobs", ["lane", "id"])
    op.drop_index("ix_jobs_live", table_name="jobs")
