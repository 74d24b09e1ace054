# The connectors and the worker: one image, two commands.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY linked_artifacts ./linked_artifacts
COPY connectors ./connectors
COPY pipeline ./pipeline
COPY history ./history
COPY web ./web
COPY schemas ./schemas
RUN pip install --no-cache-dir -c constraints.txt . && useradd --system --uid 10001 la
USER la
ENV LINKED_ARTIFACTS_DATA_DIR=/var/lib/linked-artifacts LINKED_ARTIFACTS_HTTP_HOST=0.0.0.0
ENTRYPOINT ["linked-artifacts"]
