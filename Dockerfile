# One image for the server and the Python worker: `branchwork server` or
# `branchwork run-worker module:registry`. Build from the repository root.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app

# Dependency layer: only pyproject.toml goes in, so a code change does not reinstall
# FastAPI, psycopg & co.; this layer is rebuilt only when the dependencies change.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['server']))" \
      > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && useradd --create-home --uid 10001 branchwork

# Source layer: the project itself, without reinstalling its dependencies.
COPY README.md ./
COPY app ./app
COPY client ./client
COPY worker ./worker
COPY studio ./studio
COPY alembic ./alembic
RUN pip install --no-deps .
# Examples stay a plain folder on the path, so `examples.hello:reg` imports from /app.
COPY examples ./examples

USER branchwork
ENV PYTHONPATH=/app
EXPOSE 8000
# In a container the server must listen beyond loopback; the compose file sets it too.
ENV BRANCHWORK_HOST=0.0.0.0
CMD ["branchwork", "server"]
