# Image of the echo plugin (what it does: its plugin.yaml and README.md).
# No torch here. Built by `make images` (docker/images.py), which streams a context holding the
# repository files copied below plus wheels/ (this service's resolved wheels), so it builds offline.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements/ /src/requirements/
COPY tests/plugins/echo/requirements.txt /src/tests/plugins/echo/requirements.txt
COPY wheels/ /wheels/
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheels -r /src/tests/plugins/echo/requirements.txt \
 && /opt/venv/bin/pip check

FROM ${BASE_IMAGE}
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /app --shell /usr/sbin/nologin apt \
 && mkdir -p /app /data && chown apt:apt /data
COPY --from=build /opt/venv /opt/venv
COPY docker/healthcheck.py docker/run_plugin.py /app/
COPY apt_model /app/apt_model
COPY tests/plugins/echo /app/services/echo
# Byte-code compiled at build time: faster cold start, and the root filesystem may be read-only.
RUN /opt/venv/bin/python -m compileall -q /app
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/app:/app/services/echo APT_HOME=/data APT_LISTEN=0.0.0.0:50051
USER 10001:10001
WORKDIR /app/services/echo
EXPOSE 50051
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["python3", "/app/healthcheck.py"]
CMD ["python3", "/app/run_plugin.py", "/app/services/echo"]
