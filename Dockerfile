# The cohortflow image for docker-compose.yml (worker, api, setup).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY cohortflow cohortflow
COPY schemas schemas
COPY streams streams
COPY views views
COPY producers producers
RUN pip install --no-cache-dir -c constraints.txt .
USER nobody
CMD ["cohortflow", "--help"]
