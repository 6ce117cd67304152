# syntax=docker/dockerfile:1
# One image for the three consumer services and the `dreamscape` CLI:
#
#   docker build -t dreamscape-consumers .
#   docker run --rm dreamscape-consumers voyage-consumer        # or notification-consumer,
#   docker run --rm dreamscape-consumers dreamscape dlq list --group voyage-service  # analytics-consumer
#
# Configuration is the environment only (docs/operations.md). compose.yaml runs the whole
# stack; tests/deploy/test_compose.py checks this file's promises (non-root, HEALTHCHECK).

ARG PYTHON_IMAGE=python:3.11-slim

# -- build: a virtualenv with the dependencies, then the project as a wheel ----------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# The venv gets no pip of its own: the build stage's pip installs into it (`--python`), so
# the runtime image carries no installer.
RUN python -m venv --without-pip /opt/venv

# Dependencies first, read from pyproject.toml alone: this layer is rebuilt only when they change.
# The runtime's, plus the `tracing` extra (OpenTelemetry SDK and OTLP exporter), so the
# observability profile can turn tracing on with OTEL_* alone; it stays off unless configured.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['tracing']))" > requirements.txt \
 && pip --python /opt/venv/bin/python install --no-cache-dir --requirement requirements.txt

# Then the project: built as a wheel and installed (no editable install, no sources at runtime).
COPY README.md ./
COPY common ./common
COPY voyage_consumer ./voyage_consumer
COPY notification_consumer ./notification_consumer
COPY analytics_consumer ./analytics_consumer
# Each command must at least start (one process each: every service imports its own tables).
RUN pip --python /opt/venv/bin/python install --no-cache-dir --no-deps . \
 && for command in voyage-consumer notification-consumer analytics-consumer dreamscape; do \
        /opt/venv/bin/"$command" --help > /dev/null || exit 1; \
    done

# -- runtime: the venv, a non-root user, nothing else ---------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="dreamscape-payment-consumers" \
      org.opencontainers.image.description="DreamScape payment-event consumers (voyage, notification, analytics) and the dreamscape CLI"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# A fixed numeric uid/gid, so orchestrators can check runAsNonRoot; /app/data holds the SQLite
# files of a service started without DATABASE_URL.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app \
 && mkdir -p /app/data \
 && chown -R app:app /app

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
USER 10001:10001
EXPOSE 8080

# Liveness: /healthz answers 200 while the run loop turns (slim has no curl; urllib raises,
# and so exits non-zero, on a refused connection or any non-2xx answer). The shell expands
# HTTP_PORT when the check runs.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${HTTP_PORT:-8080}/healthz', timeout=3)" || exit 1

CMD ["dreamscape", "--help"]
