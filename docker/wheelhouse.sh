#!/usr/bin/env bash
# Fills the wheelhouse with wheels for every service's requirements so `make images` builds offline.
# It is machine-level, like pip's cache ($APT_WHEELHOUSE, default ~/.cache/apt/wheelhouse): a fresh
# clone on the same machine reuses it. docker/images.py calls this itself for wheels it lacks.
# `pip wheel` downloads wheels from the index and builds any sdist here on the host, so no image
# ever needs a compiler. Wheels are for this host's platform (linux x86_64, CPython 3.11, the
# same ABI as the images).
#
# usage: docker/wheelhouse.sh [REQUIREMENTS_FILE...]   (default: gateway + every service)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
WHEELHOUSE=${WHEELHOUSE:-${APT_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/apt/wheelhouse}}
mkdir -p "$WHEELHOUSE"

if [ $# -eq 0 ]; then
    # Non-torch requirement sets first: they are small and unblock the first images.
    set -- requirements/runtime.txt gateway/deploy/requirements.txt $(ls services/*/requirements.txt | xargs grep -L 'torch.txt' || true) \
           requirements/torch.txt gateway/requirements.txt $(ls services/*/requirements.txt | xargs grep -l 'torch.txt' || true)
fi
for req in "$@"; do
    echo ">> wheels for $req"
    "$PYTHON" -m pip wheel --quiet --wheel-dir "$WHEELHOUSE" --find-links "$WHEELHOUSE" -r "$req"
done
du -sh "$WHEELHOUSE"
