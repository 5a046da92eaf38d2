# apt/torch-base: the one torch layer every torch service builds FROM (torch CUDA build from PyPI,
# transformers, tokenizers, safetensors, numpy + the gRPC runtime). Built by docker/images.py,
# whose context holds requirements/ and wheels/ (the resolved wheels of requirements/torch.txt).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements/ /src/requirements/
COPY wheels/ /wheels/
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheels -r /src/requirements/torch.txt \
 && /opt/venv/bin/pip check

FROM ${BASE_IMAGE}
# One unprivileged user for every service image (uid 10001, group 10001); /data is the store.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /app --shell /usr/sbin/nologin apt \
 && mkdir -p /app /data && chown apt:apt /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    APT_HOME=/data APT_LISTEN=0.0.0.0:50051
