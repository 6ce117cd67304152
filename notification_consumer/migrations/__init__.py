"""The Alembic revisions of the notification database, applied by `common.schema`."""
