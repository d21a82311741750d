"""chat_sessions' indexes as 0007 makes them today, on databases made by its earlier versions

0007 was changed after it first shipped: an install migrated by 79b62a3 has
ix_chat_sessions_phrase without updated_at and no ix_chat_sessions_updated; one migrated
by 4061b4e has the first right and lacks the second. Both stayed at 0007, so no later
revision of 0007 could reach them. A database made since 56f4e25 is already right and is
left as it is.

Revision ID: 0009_session_indexes
Revises: 0008_session_topic
"""
import sqlalchemy as sa
from alembic import op

revision = "0009_session_indexes"
down_revision = "0008_session_topic"
branch_labels = None
depends_on = None

TABLE = "chat_sessions"
# name -> columns, as scorer/store.py's ChatSession declares them
INDEXES = {
    "ix_chat_sessions_phrase": ["platform", "workspace", "query_key", "updated_at"],
    "ix_chat_sessions_updated": ["updated_at"],
}


def upgrade() -> None:
    found = {ix["name"]: list(ix["column_names"]) for ix in sa.inspect(op.get_bind()).get_indexes(TABLE)}
    for name, columns in INDEXES.items():
        if found.get(name) == columns:
            continue
        if name in found:
            op.drop_index(name, table_name=TABLE)
        op.create_index(name, TABLE, columns)


def downgrade() -> None:
    pass  # 0007's own downgrade drops what this made right
