# syntax=docker/dockerfile:1
# schemaheal worker. Multi-stage: build the virtual environment from the hashed lock file, then
# copy it into a slim runtime image that runs as an unprivileged user.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/schemaheal
COPY requirements.lock ./
# Every dependency pinned and hash-checked: the same image from the same commit.
RUN /opt/schemaheal/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY worker ./worker
RUN /opt/schemaheal/bin/pip install --no-deps .
# The seed's example orchestrator rides along for docker-compose's demo replicas.
COPY examples ./examples

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="schemaheal" \
      org.opencontainers.image.description="Heals PostgreSQL schemas at service boot"
ENV PATH=/opt/schemaheal/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SCHEMAHEAL_HEALTH_PORT=8080
RUN groupadd --system --gid 10001 schemaheal \
    && useradd --system --uid 10001 --gid schemaheal --home-dir /app --shell /usr/sbin/nologin schemaheal
COPY --from=build /opt/schemaheal /opt/schemaheal
COPY --from=build --chown=schemaheal:schemaheal /src/examples /app/examples
WORKDIR /app
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/livez', timeout=2); sys.exit(0)"]
ENTRYPOINT ["schemaheal"]
CMD ["worker"]
