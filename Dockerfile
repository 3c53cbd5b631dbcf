# breaker-service image. Multi-stage: a venv built from the lock file, copied into a
# slim runtime that runs as a non-root user. Every command here also works in a plain
# Debian/Python environment (tests run the entrypoint and the healthcheck outside a
# container, since no Docker engine is available to CI).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV UV_PROJECT_ENVIRONMENT=/opt/venv UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
WORKDIR /src
RUN python -m pip install --no-cache-dir uv==0.13.9
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY breaker_service ./breaker_service
COPY migrations ./migrations
COPY alembic.ini CHANGELOG.md ./
RUN uv sync --frozen --no-dev --no-editable

FROM ${BASE_IMAGE}
RUN useradd --system --create-home --home-dir /app --uid 10001 breaker \
    && mkdir /data && chown breaker /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build /src/alembic.ini /app/alembic.ini
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DATABASE_URL=sqlite+aiosqlite:////data/breaker_service.db \
    DATABASE_AUTO_MIGRATE=true \
    SERVICE_HOST=0.0.0.0 \
    SERVICE_PORT=8080 \
    UPLOAD_ALLOWED_DIRS=/data/uploads
VOLUME ["/data"]
USER breaker
WORKDIR /app
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SERVICE_PORT', '8080'), timeout=4)"]
CMD ["breaker-service", "serve"]
