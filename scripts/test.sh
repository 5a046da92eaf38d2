#!/usr/bin/env bash
# `make test`: every test. With a Docker engine, the service images (docker/images.py, what
# `make images` runs, plus the test echo plugin's) are built in the background while the tests
# that need no container run: a build mostly waits on the storage driver, those tests on the CPU.
# The container tests then run on the built images (their fixtures find them up to date, or
# build what is missing and fail with the builder's output).
# usage: scripts/test.sh [PYTEST_ARGS...]   (PY: the project venv's python)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

if ! docker info >/dev/null 2>&1; then
    echo ">> no Docker engine answers: the container tests are SKIPPED (the summary lists them)"
    exec "$PY" -m pytest -q -ra "$@"
fi

mkdir -p .apt
log=.apt/images-build.log
echo ">> building the service images in the background while the other tests run (log: $log)"
"$PY" docker/images.py build --plugin tests/plugins/echo >"$log" 2>&1 &
builder=$!
trap 'kill $builder 2>/dev/null' EXIT
start=$SECONDS

"$PY" -m pytest -q -ra -m "not docker" "$@"
first=$?

echo ">> waiting for the image build ($((SECONDS - start)) s so far)"
if wait $builder; then
    echo ">> images ready after $((SECONDS - start)) s:"
    grep -E '^>> .*(built in|up to date)' "$log"
else
    echo ">> the image build failed; the container tests will report it. Last lines of $log:"
    tail -40 "$log"
fi
trap - EXIT

"$PY" -m pytest -q -ra -m docker "$@"
second=$?
exit $((first != 0 ? first : second))
