# Quick start: `make demo` (main job) and `make test` (test suite). Each creates or
# updates the virtual environment .venv from pyproject.toml first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)   # only create / update .venv

demo: $(STAMP)
	$(BIN)/meanfield demo --output-dir out --jobs 2

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'   # PyTorch 2.13 CPU, the peer of bench_sparse.py
	$(BIN)/python benchmarks/bench_startup.py
	$(BIN)/python benchmarks/bench_maps.py
	$(BIN)/python benchmarks/bench_sweeps.py
	$(BIN)/python benchmarks/bench_sparse.py
	$(BIN)/meanfield data mnist   # bench_epoch.py trains on MNIST (random images without it)
	$(BIN)/python benchmarks/bench_epoch.py
	$(BIN)/python benchmarks/bench_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis out
