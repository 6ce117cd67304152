"""The Alembic revisions of the analytics database, applied by `common.schema`."""
