# Faceswap platform. `make demo` runs a whole swap; `make test` runs the tests. Both install first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help install ffmpeg promtool proto proto-check lint buf test test-all demo bench serve clean

help:
	@echo "make demo   - install, then swap the bundled sample clips end to end (CPU, <15 min)"
	@echo "make test   - install, then run lint, stub check and the test suite"
	@echo "make bench  - stage benchmarks with ratios against their baselines"
	@echo "make serve  - run every service on localhost (embedded storage)"
	@echo "make proto  - regenerate gRPC stubs from protos/"

install: $(STAMP) ffmpeg promtool

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check -U "pip>=24" "setuptools<81" wheel
	$(PIP) install -q --disable-pip-version-check -c constraints.txt -r requirements-dev.txt
	$(PIP) install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# ffmpeg from Debian when we can install it; otherwise the code falls back to imageio-ffmpeg's binary.
ffmpeg:
	@command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || \
	  { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null) \
	      || echo "apt-get ffmpeg failed; using imageio-ffmpeg"; \
	    else echo "no system ffmpeg; using imageio-ffmpeg"; fi; }

# promtool (Debian's prometheus package) checks /metrics, the dashboard queries and the alert rules
# in tests/deploy; without it those tests skip and say why.
promtool:
	@command -v promtool >/dev/null || \
	  { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null) \
	      || echo "apt-get prometheus failed; the promtool tests will skip"; \
	    else echo "no promtool (apt-get install prometheus as root); the promtool tests will skip"; fi; }

proto: $(STAMP)
	$(PY) tools/gen_protos.py

proto-check: $(STAMP)
	$(PY) tools/gen_protos.py --check

buf:
	@test -x .tools/node_modules/.bin/buf || npm install --prefix .tools --no-save --no-audit --no-fund @bufbuild/buf >/dev/null
	.tools/node_modules/.bin/buf lint protos

lint: $(STAMP)
	$(VENV)/bin/ruff check services tests tools faceswap
	$(VENV)/bin/ruff format --check services tests tools faceswap

test: install proto-check lint
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: install
	FACESWAP_SLOW=1 $(PY) -m pytest $(PYTEST_ARGS)

demo: install
	$(PY) -m services.demo $(DEMO_ARGS)

bench: install
	$(PY) -m services.bench $(BENCH_ARGS)

serve: install
	$(VENV)/bin/faceswap serve

clean:
	rm -rf $(VENV) .tools build *.egg-info
