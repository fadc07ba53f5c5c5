# The LRS and worker image (docker-compose.yml): servers named by LRS_DATABASE_URL / LRS_STORE,
# LRS_KAFKA_BOOTSTRAP and LRS_CLICKHOUSE_URL, so without the embedded engines (the `embedded` extra).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY lrs ./lrs
COPY streams ./streams
COPY sinks ./sinks
RUN pip install --no-cache-dir .
USER nobody
EXPOSE 8080
CMD ["lrs", "up", "--host", "0.0.0.0", "--port", "8080", "--data-dir", "/tmp/lrs"]
