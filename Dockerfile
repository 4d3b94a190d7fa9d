# syntax=docker/dockerfile:1
# One image for every OneGrid service; the command picks the service:
#   docker run … onegrid:0.1.0 serve intake        (Kubernetes: args: [serve, intake])
# Built from the locked dependencies (requirements.lock), runs as a non-root user, and
# needs no writable root filesystem (Kubernetes mounts an emptyDir at /tmp).
#   docker build -t onegrid:0.1.0 .                       (with network: dependencies from the index)
#   make image                                            (here: no network during the build, see docs/deploy.md)

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/onegrid
WORKDIR /src
# dependencies first, from the lock only: a code change does not reinstall them. With wheels in
# deploy/image/wheels/ (`make image` downloads them on the host) the install is offline
# (--no-index); with only its README there, pip fetches the same hashed files from the index.
COPY requirements.lock ./
COPY deploy/image/wheels/ /wheels/
RUN if ls /wheels/*.whl >/dev/null 2>&1; then set -- --no-index --find-links /wheels; fi \
 && /opt/onegrid/bin/pip install --no-deps --require-hashes --require-virtualenv "$@" -r requirements.lock
COPY pyproject.toml README.md ./
COPY onegrid ./onegrid
COPY services ./services
# --no-deps: everything it needs is already installed, exactly as locked
RUN /opt/onegrid/bin/pip install --no-deps --no-build-isolation . \
 && /opt/onegrid/bin/pip check \
 && /opt/onegrid/bin/python -m compileall -q /opt/onegrid/lib

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="onegrid" \
      org.opencontainers.image.description="OneGrid services: intake, routing, departments, supervision, …" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 onegrid \
 && useradd --system --uid 10001 --gid onegrid --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin onegrid
COPY --from=build /opt/onegrid /opt/onegrid
WORKDIR /app
COPY config.yml ./config.yml
COPY contracts ./contracts
ENV PATH=/opt/onegrid/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ONEGRID_CONFIG=/app/config.yml \
    CONTRACTS_DIR=/app/contracts \
    WEB_SERVER_ADDRESS=0.0.0.0:8000
USER 10001:10001
EXPOSE 8000
# liveness (/livez): the event loop answers; readiness is /readyz (Kubernetes uses its own probes)
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('WEB_SERVER_ADDRESS', '0.0.0.0:8000').rsplit(':', 1)[1]; urllib.request.urlopen(f'http://127.0.0.1:{port}/livez', timeout=2)"]
# `onegrid serve <service>` execs `python -m nameko run --config /app/config.yml <service class>`
# as PID 1, so SIGTERM reaches nameko, which finishes running handlers before it exits
ENTRYPOINT ["onegrid"]
CMD ["serve", "intake"]
