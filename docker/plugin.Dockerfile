# The image of every plugin folder: docker/images.py (`make images`) builds it once per available
# plugin with
#   APT_BASE     apt/torch-base or apt/slim-base, as the plugin.yaml's base: says (docker/base.Dockerfile:
#                the venv, user 10001, entry point, health check and CMD every plugin image shares)
#   PLUGIN_DIR   the plugin folder, relative to the repository root (services/<name>, tests/plugins/echo)
#   PLUGIN_NAME  its name: the folder lands at /app/services/<name>, where docker/run_plugin.py runs it
#   SYSTEM_PACKAGES  the Debian packages its plugin.yaml lists under system_packages: (e.g. chromium for
#                advanced-visualization's PNG export), installed with apt-get from Debian's archive
# A plugin folder that carries its own Dockerfile is built with that one instead (images.py passes it
# the same build arguments); none of the plugins in services/ needs one.
# The plugin's requirements.txt may include -r files only from requirements/ that its base holds
# (runtime.txt; torch.txt on torch): the base copied them to /src/requirements.
# WHEELS: URL of a folder of wheels. docker/images.py serves the host wheelhouse there (builds run
# with --network host), so a build needs no package index; left empty, pip uses the index. The
# legacy builder commits every instruction, metadata ones too; on storage drivers without native
# diffs (fuse-overlayfs) each commit walks the whole tree: keep them few.
ARG APT_BASE=apt/torch-base:latest

FROM ${APT_BASE}
ARG WHEELS= PLUGIN_DIR PLUGIN_NAME SYSTEM_PACKAGES=
COPY ${PLUGIN_DIR}/requirements.txt /src/${PLUGIN_DIR}/requirements.txt
# apt's and pip's additions for this plugin become one layer on top of the base.
RUN if [ -n "${SYSTEM_PACKAGES}" ]; then apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${SYSTEM_PACKAGES} \
      && rm -rf /var/lib/apt/lists/*; fi \
 && /opt/venv/bin/pip install --no-cache-dir ${WHEELS:+--no-index --find-links $WHEELS} -r /src/${PLUGIN_DIR}/requirements.txt \
 && /opt/venv/bin/pip check
COPY apt_model /app/apt_model
COPY ${PLUGIN_DIR} /app/services/${PLUGIN_NAME}
# Byte-code compiled at build time: faster cold start, and the root filesystem may be read-only.
RUN /opt/venv/bin/python -m compileall -q /app
# The base's CMD (run_plugin.py) runs the plugin in APT_PLUGIN_DIR; its HEALTHCHECK, EXPOSE and
# WORKDIR apply as they are.
ENV PYTHONPATH=/app:/app/services/${PLUGIN_NAME} APT_PLUGIN_DIR=/app/services/${PLUGIN_NAME}
USER 10001:10001
