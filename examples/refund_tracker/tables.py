"""The tables: the totals, and the inbox that makes applying an event idempotent."""

from sqlmodel import Field, SQLModel

from common import db


class RefundTotal(SQLModel, table=True):
    currency: str = Field(primary_key=True)
    total: str = "0"  # exact decimal text: SQLite has no decimal type


TABLES = (db.ProcessedEvent, RefundTotal)
