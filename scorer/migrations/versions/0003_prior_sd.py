"""a prediction's own width (the zero-shot prior's per-GIF uncertainty)

Revision ID: 0003_prior_sd
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003_prior_sd"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch mode): nullable, so existing rows keep the ranker's default.
    op.add_column("predictions", sa.Column("sd", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("predictions", "sd")
