FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY hub hub
COPY adapters adapters
COPY routing routing
COPY rules rules
COPY schemas schemas
RUN pip install --no-cache-dir '.[postgres]'
EXPOSE 8080
CMD ["omnihub", "serve", "--host", "0.0.0.0", "--port", "8080"]
