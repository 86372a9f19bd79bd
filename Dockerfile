# A Python patch release on a Debian release, so a rebuild gets the same interpreter and OS.
# Pin the digest as well where the registry can be reached (the multi-arch index's, for amd64 and arm64):
#   docker buildx imagetools inspect python:3.11.13-slim-bookworm   -> FROM python:3.11.13-slim-bookworm@sha256:...
FROM python:3.11.13-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY hub hub
COPY adapters adapters
COPY routing routing
COPY rules rules
COPY schemas schemas
RUN pip install --no-cache-dir '.[postgres]'

# The hub runs unprivileged and writes only under /var/lib/omnihub: attachment bytes (blob_dir, a
# volume, so they outlive the container; created here so a new named volume takes its owner) and
# the SQLite file of a hub run without PostgreSQL (docker-compose.yml sets PostgreSQL).
RUN groupadd --system --gid 10001 omnihub \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/omnihub --create-home omnihub \
    && mkdir -p /var/lib/omnihub/blobs \
    && chown -R 10001:10001 /var/lib/omnihub
ENV OMNIHUB_BLOB_DIR=/var/lib/omnihub/blobs \
    OMNIHUB_DATABASE_URL=sqlite+aiosqlite:////var/lib/omnihub/omnihub.db
VOLUME ["/var/lib/omnihub/blobs"]
USER 10001:10001
WORKDIR /var/lib/omnihub

EXPOSE 8080
# Alive, not ready: /readyz also weighs the database and the broker, which a restart cannot fix.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
CMD ["omnihub", "serve", "--host", "0.0.0.0", "--port", "8080"]
