# Image of the echo plugin (what it does: its plugin.yaml and README.md). No torch here.
# WHEELS: URL of a folder of wheels. docker/images.py (`make images`) serves the host wheelhouse
# there (builds run with --network host), so a build needs no package index; left empty, pip uses
# the index. The legacy builder commits every instruction, metadata ones too; on storage drivers
# without native diffs (fuse-overlayfs) each commit walks the whole tree: keep them few.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE}
ARG WHEELS=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements/ /src/requirements/
COPY tests/plugins/echo/requirements.txt /src/tests/plugins/echo/requirements.txt
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /app --shell /usr/sbin/nologin apt \
 && mkdir -p /app /data && chown apt:apt /data \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir ${WHEELS:+--no-index --find-links $WHEELS} -r /src/tests/plugins/echo/requirements.txt \
 && /opt/venv/bin/pip check
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
