# modelserve on CPU: ONNX Runtime behind the Open Inference Protocol, no torch.
#   docker build -t modelserve .
#   docker run -p 8000:8000 -p 8001:8001 modelserve          # HTTP and gRPC, the models copied in below
#   docker run -p 8000:8000 -v "$PWD/models:/models:ro" modelserve   # or a mounted repository

# ---- build: install the package and its dependencies into a venv we can copy whole
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
# Without the train extra: serving needs onnxruntime, never torch.
RUN pip install --no-cache-dir .

# ---- runtime: the venv, the models, a user without privileges
FROM python:3.11-slim
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin modelserve
COPY --from=build /opt/venv /opt/venv
COPY models /models
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MODELSERVE_HOST=0.0.0.0 \
    MODELSERVE_PORT=8000 \
    MODELSERVE_GRPC_PORT=8001 \
    MODELSERVE_MODEL_REPOSITORY=/models
USER 10001
# 8000: HTTP (Open Inference Protocol REST, V1, generate); 8001: gRPC (inference.GRPCInferenceService)
EXPOSE 8000 8001
# No curl in slim images: Python's urllib. A 503 (models still loading) raises, so unhealthy.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/v2/health/ready' % os.environ.get('MODELSERVE_PORT', '8000'), timeout=2)"]
# Exec form: the server is PID 1 and gets SIGTERM itself, to drain in-flight requests.
ENTRYPOINT ["python", "-m", "service"]
