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
# IMAGE_PYTHON: the images' interpreter (docker/images.py passes the base image's, e.g. 3.11.2).
# `pip wheel` resolves for the host's interpreter, which may be newer: a dependency whose newest
# release needs a newer Python than the image's then gets a second, older wheel that fits it.
IMAGE_PYTHON=${IMAGE_PYTHON:-}
[ "$IMAGE_PYTHON" = "$("$PYTHON" -c 'import platform; print(platform.python_version())')" ] && IMAGE_PYTHON=
for req in "$@"; do
    echo ">> wheels for $req"
    "$PYTHON" -m pip wheel --quiet --wheel-dir "$WHEELHOUSE" --find-links "$WHEELHOUSE" -r "$req"
    if [ -n "$IMAGE_PYTHON" ]; then
        "$PYTHON" -m pip download --quiet --only-binary=:all: --python-version "$IMAGE_PYTHON" \
            --dest "$WHEELHOUSE" --find-links "$WHEELHOUSE" -r "$req"
    fi
done
du -sh "$WHEELHOUSE"
