"""conversations inbox: assignee, internal notes, read markers, takeover/return notices, inbox indexes

Revision ID: 0005
Revises: 0004_early_statuses
Create Date: 2026-12-07 06:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004_early_statuses"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("takeover_notice", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("return_notice", sa.Text(), nullable=True))
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assignee_id", sa.String(length=32), nullable=True))
        batch_op.create_foreign_key(
            "fk_conversations_assignee_id_users", "users", ["assignee_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_index("ix_conversations_inbox", ["workspace_id", "updated_at", "id"], unique=False)
        batch_op.create_index("ix_conversations_inbox_status", ["workspace_id", "status", "updated_at", "id"], unique=False)
        batch_op.create_index("ix_conversations_inbox_channel", ["workspace_id", "channel_id", "updated_at", "id"], unique=False)
        batch_op.create_index(
            "ix_conversations_inbox_assignee", ["workspace_id", "assignee_id", "updated_at", "id"], unique=False
        )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("ix_messages_workspace_updated", ["workspace_id", "updated_at"], unique=False)
    op.create_table(
        "conversation_notes",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("author_id", sa.String(length=32), nullable=True),
        sa.Column("author_name", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("conversation_notes", schema=None) as batch_op:
        batch_op.create_index("ix_conversation_notes_workspace_id", ["workspace_id"], unique=False)
        batch_op.create_index("ix_conversation_notes_conversation", ["conversation_id", "id"], unique=False)
    op.create_table(
        "conversation_reads",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("last_read_message_id", BigId, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "conversation_id"),
    )
    with op.batch_alter_table("conversation_reads", schema=None) as batch_op:
        batch_op.create_index("ix_conversation_reads_workspace_id", ["workspace_id"], unique=False)


def downgrade() -> None:
    op.drop_table("conversation_reads")
    op.drop_table("conversation_notes")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_workspace_updated")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index("ix_conversations_inbox_assignee")
        batch_op.drop_index("ix_conversations_inbox_channel")
        batch_op.drop_index("ix_conversations_inbox_status")
        batch_op.drop_index("ix_conversations_inbox")
        batch_op.drop_constraint("fk_conversations_assignee_id_users", type_="foreignkey")
        batch_op.drop_column("assignee_id")
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.drop_column("return_notice")
        batch_op.drop_column("takeover_notice")
