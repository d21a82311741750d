"""a preview's topic when its request named no feeling: chat_sessions.topic

Its `emotion` is only the first GIF's clearest, so the Send, the retrain's judgements and
votes on its post must not teach that feeling. Sessions from before this revision keep an
empty topic: closed ones have taught what they taught, and an open one is at most
MOODGIF_PREVIEW_TTL_S (15 min) from expiring.

Revision ID: 0008_session_topic
Revises: 0007_phrase_key
"""
import sqlalchemy as sa
from alembic import op

revision = "0008_session_topic"
down_revision = "0007_phrase_key"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("chat_sessions", sa.Column("topic", sa.String(length=200), nullable=False,
                                             server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("chat_sessions") as batch:
        batch.drop_column("topic")
