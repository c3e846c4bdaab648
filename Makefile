# Two commands do all the set-up on a fresh machine:
#   make demo   create .venv if missing, install, run the main job on the embedded data
#   make test   same set-up, then the test suite (under 2 minutes on 2 cores: one test process per core)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.adele-installed

.PHONY: setup demo test test-slow test-all bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# CPU machines get the local CPU wheel of torch (never the multi-GB CUDA build);
	@# machines with an NVIDIA driver get the regular build.
	@if $(PY) -c "import torch" 2>/dev/null; then :; \
	 elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	   $(PY) -m pip install -q torch; \
	 else $(PY) -m pip install -q torch==2.13.0; fi
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

demo: setup
	$(PY) -m adele demo --out runs/demo --overwrite

test: setup
	$(PY) -m pytest -n auto

test-slow: setup
	$(PY) -m pytest -m slow

test-all: setup
	$(PY) -m pytest -m "slow or not slow"

clean:
	rm -rf runs .pytest_cache build *.egg-info
