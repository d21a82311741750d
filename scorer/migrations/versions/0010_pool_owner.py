"""who added a pool: pools.owner

"" is the operator's (the CLI, the web admin, the demo): every workspace sees it. A pool
added from chat belongs to "<platform>:<workspace>" of the admin who added it: only that
workspace sees it or adds to it (scorer.pool_owners.may_see). Pools from before this
revision were all the operator's or added before any rule said whose they were: they get
"" (shared, as they were).

Revision ID: 0010_pool_owner
Revises: 0009_session_indexes
"""
import sqlalchemy as sa
from alembic import op

revision = "0010_pool_owner"
down_revision = "0009_session_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pools", sa.Column("owner", sa.String(length=100), nullable=False,
                                     server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("pools") as batch:
        batch.drop_column("owner")
