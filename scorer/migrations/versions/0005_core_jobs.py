"""the admin job queue (pool adds and retrains asked for in chat, run by the worker), and
the request path's indexes: pool_gifs.gif_sha (every vote and Send asks whether its GIF is
in a pool), and impressions with gif_sha last (every request reads the channel's recent GIFs
from the index alone)

Revision ID: 0005_core_jobs
Revises: 0004_bt_evidence
"""
import sqlalchemy as sa
from alembic import op

revision = "0005_core_jobs"
down_revision = "0004_bt_evidence"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "core_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("label", sa.String(length=400), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("host", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_core_jobs_state", "core_jobs", ["state"])
    op.create_index("ix_pool_gifs_gif_sha", "pool_gifs", ["gif_sha"])
    op.drop_index("ix_impressions_scope", table_name="impressions")
    op.create_index("ix_impressions_recent", "impressions",
                    ["platform", "workspace", "channel", "shown_at", "gif_sha"])


def downgrade() -> None:
    op.drop_index("ix_impressions_recent", table_name="impressions")
    op.create_index("ix_impressions_scope", "impressions",
                    ["platform", "workspace", "channel", "shown_at"])
    op.drop_index("ix_pool_gifs_gif_sha", table_name="pool_gifs")
    op.drop_index("ix_core_jobs_state", table_name="core_jobs")
    op.drop_table("core_jobs")
