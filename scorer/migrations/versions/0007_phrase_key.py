"""a workspace's own words: chat_sessions.query_key (the request's words as
bot.learned_phrases matches them), an index to find the Sends for them, and one on
updated_at so housekeeping forgets the words of closed sessions slice by slice

Sessions from before this revision keep an empty key: what people sent before the upgrade
is not read back as a workspace's words.

Revision ID: 0007_phrase_key
Revises: 0006_job_heartbeat
"""
import sqlalchemy as sa
from alembic import op

revision = "0007_phrase_key"
down_revision = "0006_job_heartbeat"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("chat_sessions", sa.Column("query_key", sa.String(length=200), nullable=False,
                                             server_default=""))
    op.create_index("ix_chat_sessions_phrase", "chat_sessions", ["platform", "workspace", "query_key", "updated_at"])
    op.create_index("ix_chat_sessions_updated", "chat_sessions", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_chat_sessions_updated", table_name="chat_sessions")
    op.drop_index("ix_chat_sessions_phrase", table_name="chat_sessions")
    with op.batch_alter_table("chat_sessions") as batch:
        batch.drop_column("query_key")
