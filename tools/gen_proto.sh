#!/usr/bin/env bash
# Regenerate the Python stubs under apt_model/gen from proto/ (called by `make proto`).
# protoc emits absolute imports ("from apt.common.v1 import ..."); they are rewritten to
# the apt_model.gen package so no top-level "apt" module (Debian's python3-apt) is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=apt_model/gen
rm -rf "$OUT"
mkdir -p "$OUT"
mapfile -t PROTOS < <(cd proto && find apt -name '*.proto' | LC_ALL=C sort)
"$PY" -m grpc_tools.protoc -Iproto --python_out="$OUT" --pyi_out="$OUT" --grpc_python_out="$OUT" "${PROTOS[@]}"
find "$OUT" -name '*.py' -o -name '*.pyi' | LC_ALL=C sort | while read -r f; do
  sed -i -E 's/^from apt\.([a-z0-9_.]+) import /from apt_model.gen.apt.\1 import /; s/^import apt\./import apt_model.gen.apt./' "$f"
done
find "$OUT" -type d -exec sh -c 'printf "" > "$1/__init__.py"' _ {} \;
printf '"""Generated from proto/ by tools/gen_proto.sh (make proto). Do not edit."""\n' > "$OUT/__init__.py"
