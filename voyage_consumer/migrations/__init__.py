"""The Alembic revisions of the voyage database, applied by `common.schema`."""
