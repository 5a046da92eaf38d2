#!/usr/bin/env bash
# Regenerate the Python stubs under apt_model/gen from proto/ (called by `make proto`), with each
# file's descriptor and comments beside its module (apt_model/sdk/protogen.py: the same generator
# plugin authors run on their own proto folder).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
"$PY" -m apt_model.sdk.protogen proto apt_model/gen --package apt_model.gen
