# One image for the services and the simulator: `charter <command>` (ingest, indicators,
# alerts, simulate ...). Built by docker-compose.yml; dependencies from the locked uv.lock.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PATH=/app/.venv/bin:$PATH

RUN pip install --no-cache-dir uv==0.13.9 \
    && useradd --system --uid 10001 --home-dir /app charter

WORKDIR /app

# Dependencies first: this layer is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project

COPY contracts contracts
COPY services services
COPY deploy deploy
COPY data data
RUN uv sync --frozen --no-dev && charter --help >/dev/null

USER charter
ENTRYPOINT ["charter"]
CMD ["--help"]
