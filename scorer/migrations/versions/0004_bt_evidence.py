"""a BT fit's comparisons per GIF and emotion (the evidence the ranker reads)

Revision ID: 0004_bt_evidence
Revises: 0003_prior_sd
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_bt_evidence"
down_revision = "0003_prior_sd"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: fits stored before this column keep the ranker's count from the ledger.
    op.add_column("bt_scores", sa.Column("counts", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("bt_scores", "counts")
