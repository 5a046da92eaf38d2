# The two bases every service image builds FROM, made from this one file by docker/images.py
# (`make images`) with a different REQUIREMENTS:
#   apt/torch-base  requirements/torch.txt: the one torch layer (torch CUDA build from PyPI,
#                   transformers, tokenizers, safetensors, numpy + the gRPC runtime), for the gateway
#                   and every plugin with base: torch in its plugin.yaml;
#   apt/slim-base   requirements/runtime.txt: the gRPC runtime only, for plugins with base: slim.
# One RUN installs them, so the 7 GB of torch packages are written once, in one layer.
# WHEELS: URL of a folder of wheels. docker/images.py serves the host wheelhouse there (builds run
# with --network host), so a build needs no package index; left empty, pip uses the index.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE}
ARG WHEELS= REQUIREMENTS=requirements/torch.txt
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
# Plugins' requirements include these with -r ../../requirements/*.txt (the context carries only
# the files REQUIREMENTS reads).
COPY requirements/ /src/requirements/
# One unprivileged user for every service image (uid 10001, group 10001); /data is the store.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /app --shell /usr/sbin/nologin apt \
 && mkdir -p /app /data && chown apt:apt /data \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir ${WHEELS:+--no-index --find-links $WHEELS} -r /src/${REQUIREMENTS} \
 && /opt/venv/bin/pip check
# What every service image built on it shares, set once here: the legacy builder commits every
# instruction, metadata too, and each commit walks the whole 7 GB tree on fuse-overlayfs.
COPY docker/healthcheck.py docker/run_plugin.py /app/
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    APT_HOME=/data APT_LISTEN=0.0.0.0:50051
WORKDIR /app
EXPOSE 50051
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["python3", "/app/healthcheck.py"]
# a plugin image sets APT_PLUGIN_DIR (docker/plugin.Dockerfile); the gateway image sets its own CMD
CMD ["python3", "/app/run_plugin.py"]
