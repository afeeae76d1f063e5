# syntax=docker/dockerfile:1
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Only what is needed to build and install the package.
COPY pyproject.toml README.md LICENSE ./
COPY custscore/ ./custscore/

RUN pip install --no-cache-dir .

# Unprivileged runtime user; it owns the data directory so that a fresh named
# volume mounted at /data/custscore inherits that ownership.
RUN groupadd --system --gid 10001 custscore \
    && useradd --system --uid 10001 --gid custscore --create-home --home-dir /home/custscore custscore \
    && mkdir -p /data/custscore \
    && chown -R custscore:custscore /data/custscore

ENV CUSTSCORE_HOME=/data/custscore

USER custscore
WORKDIR /home/custscore

ENTRYPOINT ["custscore"]
CMD ["status"]
