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

# A crash in native code kills pytest before it can report; name the test that was running.
export APT_TEST_TRACE=${APT_TEST_TRACE:-$PWD/.apt/running-test}
mkdir -p "$(dirname "$APT_TEST_TRACE")"
crashed() {  # $1: pytest's exit status
    if [ "$1" -gt 128 ]; then
        echo "!! pytest was killed by signal $(($1 - 128)) while running: $(cat "$APT_TEST_TRACE" 2>/dev/null)"
    fi
}

if ! docker info >/dev/null 2>&1; then
    echo ">> no Docker engine answers: the container tests are SKIPPED (the summary lists them)"
    "$PY" -m pytest -q -ra "$@"
    rc=$?
    crashed $rc
    exit $rc
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
crashed $first

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
crashed $second
exit $((first != 0 ? first : second))
