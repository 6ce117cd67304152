"""Which database errors are an outage (retry, never dead-letter) and which are one record's."""

from __future__ import annotations

import psycopg.errors
import pytest
import sqlalchemy.exc as sa_exc

from common.db import TRANSIENT_DB_ERRORS
from common.failures import Decision, decide


def _wrapped(kind: type[sa_exc.DBAPIError], sqlstate: str) -> sa_exc.DBAPIError:
    """A SQLAlchemy error around the psycopg error PostgreSQL raises for `sqlstate`."""
    return kind("INSERT INTO t VALUES (%s)", {}, psycopg.errors.lookup(sqlstate)())


class TestOutages:
    @pytest.mark.parametrize(
        ("kind", "sqlstate"),
        [
            (sa_exc.InternalError, "25006"),  # read-only transaction: a demoted primary
            (sa_exc.OperationalError, "08006"),  # connection failure
            (sa_exc.OperationalError, "53300"),  # too many connections
            (sa_exc.OperationalError, "57P01"),  # admin shutdown
            (sa_exc.OperationalError, "57P03"),  # cannot connect now (starting up)
            (sa_exc.OperationalError, "40001"),  # serialization failure
            (sa_exc.OperationalError, "40P01"),  # deadlock detected
            (sa_exc.OperationalError, "55P03"),  # lock not available
            (sa_exc.ProgrammingError, "42P01"),  # undefined table: a migration not applied
            (sa_exc.ProgrammingError, "42703"),  # undefined column
            (sa_exc.ProgrammingError, "42501"),  # insufficient privilege
        ],
    )
    def test_an_outage_sqlstate_is_retried_without_limit(
        self, kind: type[sa_exc.DBAPIError], sqlstate: str
    ) -> None:
        """A failover, a lost connection, contention or a missing table is the deployment's: retried, never dead-lettered (issue 10, finding 3)."""
        assert decide(_wrapped(kind, sqlstate), TRANSIENT_DB_ERRORS) is Decision.RETRY


class TestRecordErrors:
    @pytest.mark.parametrize(
        ("kind", "sqlstate"),
        [
            (sa_exc.DataError, "22P05"),  # untranslatable character (a NUL in text)
            (sa_exc.DataError, "22003"),  # numeric value out of range
            (sa_exc.IntegrityError, "23505"),  # unique violation
            (sa_exc.IntegrityError, "23514"),  # check violation
        ],
    )
    def test_a_data_or_integrity_error_is_that_records(
        self, kind: type[sa_exc.DBAPIError], sqlstate: str
    ) -> None:
        """Class 22 and 23 errors come from one record's values: isolated, retried a bounded number of times, then dead-lettered."""
        assert decide(_wrapped(kind, sqlstate), TRANSIENT_DB_ERRORS) is Decision.RETRY_BOUNDED
