# The cohortflow image for docker-compose.yml (worker, api, setup).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY cohortflow cohortflow
COPY schemas schemas
COPY streams streams
COPY views views
COPY producers producers
# g++ builds the fold kernel (cohortflow/core/_kernel) and leaves with the apt lists.
RUN apt-get update && apt-get install -y --no-install-recommends g++ \
    && pip install --no-cache-dir -c constraints.txt . \
    && apt-get purge -y g++ && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
USER nobody
CMD ["cohortflow", "--help"]
