# Two entry points do all the set-up: `make book` (main job) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev
PY := $(VENV)/bin/python
STAMP := $(VENV)/.compact-installed
PROFILE ?= default

.PHONY: venv test test-fast book reproduce pipeline smoke bench sync-notebooks clean-venv

venv: $(STAMP)

# torch first: a bare `torch` requirement would otherwise pull the multi-GB CUDA build.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	$(PY) -m ipykernel install --user --name compact --display-name "Python (compact)" >/dev/null
	@touch $(STAMP)

test: venv
	$(PY) -m pytest -q

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
