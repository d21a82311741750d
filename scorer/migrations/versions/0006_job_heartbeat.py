"""a heartbeat on admin jobs: the worker stamps its running job every few seconds, so a
job whose worker was killed is seen as failed within a minute or two, not after 6 hours

Revision ID: 0006_job_heartbeat
Revises: 0005_core_jobs
"""
import sqlalchemy as sa
from alembic import op

revision = "0006_job_heartbeat"
down_revision = "0005_core_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("core_jobs", sa.Column("heartbeat_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("core_jobs") as batch:
        batch.drop_column("heartbeat_at")
