"""the admin job queue: pool adds and retrains asked for in chat, run by the worker

Revision ID: 0004_core_jobs
Revises: 0003_prior_sd
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_core_jobs"
down_revision = "0003_prior_sd"
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


def downgrade() -> None:
    op.drop_index("ix_core_jobs_state", table_name="core_jobs")
    op.drop_table("core_jobs")
