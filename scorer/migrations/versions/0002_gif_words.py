"""the GIF's own words: alt text, slug, provider id, attribution

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, not batch mode: SQLite would rebuild `gifs`, which other tables
    # reference, and fail with foreign keys on.
    op.add_column("gifs", sa.Column("alt_text", sa.Text(), nullable=False, server_default=""))
    op.add_column("gifs", sa.Column("slug", sa.Text(), nullable=False, server_default=""))
    op.add_column("gifs", sa.Column("external_id", sa.String(length=120), nullable=True))
    op.add_column("gifs", sa.Column("attribution", sa.JSON(), nullable=False, server_default="{}"))
    op.create_index("ix_gifs_external_id", "gifs", ["external_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_gifs_external_id", table_name="gifs")
    for column in ("attribution", "external_id", "slug", "alt_text"):
        op.drop_column("gifs", column)
