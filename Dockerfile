# breaker-service image. Multi-stage: build a venv from the lock file, copy it into a
# slim runtime with a non-root user. The HTTP service (and its HEALTHCHECK) arrive
# with the service issue; until then the image runs the demo.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV UV_PROJECT_ENVIRONMENT=/opt/venv UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1
WORKDIR /src
RUN python -m pip install --no-cache-dir uv==0.13.9
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY breaker_service ./breaker_service
COPY migrations ./migrations
COPY alembic.ini CHANGELOG.md ./
RUN uv sync --frozen --no-dev --no-editable

FROM ${BASE_IMAGE}
RUN useradd --system --create-home --home-dir /app breaker
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    DATABASE_URL=sqlite+aiosqlite:////data/breaker_service.db \
    PYTHONUNBUFFERED=1
RUN mkdir /data && chown breaker /data
VOLUME ["/data"]
USER breaker
WORKDIR /app
CMD ["breaker-service", "demo", "--once"]
