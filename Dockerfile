# fhir-server container image.
#
#   docker build -t hospital-backend:dev .
#   docker run --rm -p 3000:3000 -e DATABASE_URL=postgresql://user:pass@host:5432/db \
#              --read-only --tmpfs /tmp hospital-backend:dev
#
# Stage 1 builds the project's wheel (the data folders profiles/, search/, capability/
# and migrations/ go inside it as fhir_server/_data/...) together with wheels of every
# dependency, then installs them into a virtual environment. Stage 2 is a slim runtime
# that only receives that environment: no compiler, no source tree, no build tools.
# Only plain Dockerfile instructions are used, so both BuildKit and the legacy builder
# (old docker-compose) can build it. Build for linux/amd64 (`--platform linux/amd64` on
# arm64 hosts): the dependency pgserver publishes Linux wheels for x86-64 only.

ARG PYTHON_IMAGE=python:3.11-slim

# --------------------------------------------------------------------------- build ---
FROM ${PYTHON_IMAGE} AS build

# (Bytecode is compiled here, at install time: the runtime's filesystem is read-only.)
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the wheel needs (see .dockerignore, which allows nothing else in).
COPY pyproject.toml README.md ./
COPY fhir_server/ fhir_server/
COPY profiles/ profiles/
COPY search/ search/
COPY capability/ capability/
COPY migrations/ migrations/

# The project's wheel plus wheels of all its dependencies, then a venv built only from
# those wheels (--no-index), so what is installed is exactly what was just built.
RUN pip wheel --wheel-dir /wheels . \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-index --find-links /wheels fhir-server \
 && /opt/venv/bin/fhir-server --version

# ------------------------------------------------------------------------- runtime ---
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="hospital-backend" \
      org.opencontainers.image.description="FHIR R4 server on PostgreSQL (fhir-server)" \
      org.opencontainers.image.licenses="Apache-2.0"

# postgresql-client: psql and pg_dump for the runbook's in-pod checks and backups.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /tmp --no-create-home \
            --shell /usr/sbin/nologin app

COPY --from=build /opt/venv /opt/venv

# The root filesystem can be read-only: the only writable paths are /tmp (HOME, TMPDIR,
# DATA_DIR for the embedded PostgreSQL when no database is configured) which Kubernetes
# mounts as an emptyDir and docker-compose as a tmpfs. Nothing is written to /app.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    XDG_RUNTIME_DIR=/tmp \
    DATA_DIR=/tmp/fhir \
    HOST=0.0.0.0 \
    PORT=3000 \
    LOG_FORMAT=json

WORKDIR /app
# Numeric, so that Kubernetes can verify runAsNonRoot.
USER 10001:10001

EXPOSE 3000

# Liveness only (never touches the database); slim images have no curl, so urllib.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/opt/venv/bin/python", "-c", "import os, sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:%s/api/v1/health' % os.environ.get('PORT', '3000'), timeout=4); sys.exit(0 if r.status == 200 else 1)"]

# SIGTERM lets in-flight requests finish for SHUTDOWN_GRACE_SECONDS (default 25 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["fhir-server"]
CMD ["serve"]
