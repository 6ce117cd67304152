"""The settings: every field is an environment variable (`database_url`: DATABASE_URL)."""

from common.settings import DatabaseURL, RunnerSettings


class RefundTrackerSettings(RunnerSettings):
    database_url: DatabaseURL = DatabaseURL("sqlite:///data/refund-tracker.db")
