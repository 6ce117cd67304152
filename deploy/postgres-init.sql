-- One database per service, owned by POSTGRES_USER (the script runs as that user).
-- Mounted into /docker-entrypoint-initdb.d by compose.yaml: PostgreSQL's image runs it once,
-- when the data volume is first initialised (`docker compose down -v` to run it again).
-- Each service migrates its own schema at start-up (docs/operations.md, Schema migrations).
CREATE DATABASE voyage;
CREATE DATABASE notification;
CREATE DATABASE analytics;
