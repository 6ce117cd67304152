"""The voyage service's settings: `RunnerSettings` as they are (field name = environment variable).

The voyage service needs nothing beyond the runtime's own settings (database, Kafka,
batching, retries); the class exists so every service has its settings in `settings.py`,
and so a setting of its own has an obvious place. The consumer group is `KAFKA_GROUP_ID`
(default `voyage-service`), resolved in `service.build`.
"""

from __future__ import annotations

from common.settings import RunnerSettings


class VoyageSettings(RunnerSettings):
    """`RunnerSettings`, read from the environment; the voyage service adds none of its own."""
