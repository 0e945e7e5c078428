"""rate limit hits: the requests a shared rate limit counted (PostgreSQL's processes share them)

Revision ID: 0007_rate_limits
Revises: 0006
Create Date: 2026-12-07 06:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_rate_limits"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_hits",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("hit_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rate_limit_hits_key", "rate_limit_hits", ["key", "hit_at"], unique=False)
    op.create_index("ix_rate_limit_hits_expires_at", "rate_limit_hits", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_table("rate_limit_hits")
