# Every routine action of the APT platform. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
REQS := requirements/*.txt gateway/requirements.txt services/*/requirements.txt
STAMP := $(VENV)/.installed

.PHONY: venv sysdeps router client proto docs test test-fast bench mutate demo demo-stop clean help
help:
	@echo "make demo    - create .venv, install, start the local stack, run a real pipeline"
	@echo "make test    - create .venv if needed and run every test"
	@echo "make bench   - run the benchmarks (ratios against baselines measured in the same run)"
	@echo "make mutate  - mutation testing, slow, not in CI (MUTATE=\"gateway-jobs prune-spec\" picks targets)"
	@echo "make proto   - regenerate apt_model/gen from proto/"
	@echo "make images | up | down | logs - containers (see docs/deployment.md)"
	@echo "make deploy-files - k8s/base/plugins/ and compose plugin services from the plugin folders"

# Debian packages the build and the tests need: cmake + a C++ compiler build llama-cpp-python
# from source; espeak-ng speaks multimodal-training's test audio; chromium + chromium-driver open
# advanced-visualization's HTML in a real browser (Selenium, no downloaded driver).
SYSDEPS := cmake:cmake g++:g++ espeak-ng:espeak-ng chromium:chromium chromedriver:chromium-driver
sysdeps:
	@missing=""; for pair in $(SYSDEPS); do command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then echo "installing$$missing from Debian's archive"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi
	@fc-list :lang=zh family 2>/dev/null | grep -q . || { echo "installing fonts-noto-cjk (Chromium draws Chinese in advanced-visualization's pages and PNGs)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-noto-cjk >/dev/null; }

# llama.cpp (ollama-export's verification) is built for a portable x86-64 baseline: built for
# the build machine ("native") it enables AMX on Xeons that have it, and its q8_0 decode then
# crashes the test process (seen: a Xeon with amx_int8, llama-cpp-python 0.3.36). It is built
# first and without pip's cache: pip keys the wheels it builds by the source archive alone, not by
# CMAKE_ARGS, so a machine whose cache holds a native build would install that one again (CI
# crashed that way once). The other requirements then find it installed.
LLAMA_CPP := $(shell grep -E '^llama-cpp-python==' services/ollama-export/requirements-verify.txt)
venv: $(STAMP)
$(STAMP): $(REQS) pyproject.toml
	@$(MAKE) --no-print-directory sysdeps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel setuptools
	CMAKE_ARGS="$${CMAKE_ARGS:--DGGML_NATIVE=OFF}" $(PIP) install --no-cache-dir "$(LLAMA_CPP)"
	$(PIP) install -r requirements/dev.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

proto: venv
	PYTHON=$(PY) ./tools/gen_proto.sh

# docs/cli.md from the CLI's own argparse definitions
docs: venv
	$(PY) tools/cli_reference.py

# With a Docker engine, scripts/test.sh builds the images while the other tests run, then runs
# the container tests; without one it runs everything and the container tests say they skip.
test: venv router client
	cargo test -q --release --locked --manifest-path router/Cargo.toml
	PY=$(PY) ./scripts/test.sh

test-fast: venv router client
	$(PY) -m pytest -q -ra -m "not slow and not docker"

bench: venv router
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# Mutation testing (issue #17, docs/mutation.md): hours on 2 cores, so neither `make test` nor CI
# runs it. mutmut is installed on demand, so a fresh `make venv` does not pay for it.
# MUTATE names targets (tools/mutate.py --list), MUTATE_ARGS passes options (e.g. --commit HEAD).
MUTATE ?=
MUTATE_ARGS ?=
mutate: venv router
	$(PIP) install -q -r tools/mutate-requirements.txt
	nice -n 15 $(PY) tools/mutate.py $(MUTATE) $(MUTATE_ARGS)

demo: venv router
	./scripts/demo.sh

demo-stop:
	./scripts/demo.sh stop

# The gateway's native data plane (router/, Rust); cargo keeps its crates in ~/.cargo like pip's cache.
ROUTER_BIN := router/target/release/apt-router
router: $(ROUTER_BIN)
$(ROUTER_BIN): router/Cargo.toml router/Cargo.lock $(wildcard router/src/*.rs)
	@command -v cargo >/dev/null || { echo "cargo is missing: the gateway's native router (router/) needs a Rust toolchain (https://rustup.rs), or run the gateway with APT_ROUTER=python" >&2; exit 1; }
	cargo build --release --locked --manifest-path router/Cargo.toml
	@touch $@

# A Rust (tonic) client built from proto/ alone (tests/platform/test_rust_client.py runs it);
# protoc is grpcio-tools' (tools/protoc), so no system protoc is needed.
CLIENT_BIN := clients/rust/target/release/apt-client
client: $(CLIENT_BIN)
$(CLIENT_BIN): $(STAMP) clients/rust/Cargo.toml clients/rust/Cargo.lock clients/rust/build.rs $(wildcard clients/rust/src/*.rs) $(wildcard proto/apt/*/v1/*.proto proto/apt/plugins/*/v1/*.proto)
	PROTOC=$(CURDIR)/tools/protoc PY=$(CURDIR)/$(PY) cargo build --release --locked --manifest-path clients/rust/Cargo.toml
	@touch $@

clean:
	rm -rf .apt-demo .apt-demo-data build *.egg-info

-include docker/Makefile.inc
