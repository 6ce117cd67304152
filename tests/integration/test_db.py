"""The shared database helpers against real SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from common.db import make_engine

pytestmark = pytest.mark.integration

#: A statement that fails for a reason unrelated to its bound value, on each backend.
FAILING = {
    "sqlite": "SELECT json(:v)",  # malformed JSON
    "postgresql": "SELECT length(:v) / 0",  # division by zero
}


class TestErrorsCarryNoData:
    def test_a_failed_statement_names_no_parameter_values(self, database_url: str) -> None:
        """A database error's text (what reaches logs and dlq.error.message) holds the SQL but not the values bound to it (issue 10, finding 17)."""
        engine = make_engine(database_url)
        secret = "user-4242-secret-refund-reason"
        try:
            with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
                conn.execute(sa.text(FAILING[engine.dialect.name]), {"v": secret})
        finally:
            engine.dispose()
        assert "SELECT" in str(caught.value)
        assert secret not in str(caught.value)
