# The two commands: `make demo` and `make test`. Both build .venv on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Parallel test workers: the machine has 2 cores; timing-sensitive tests stay serial (-p no:xdist
# is not needed: they are marked and run in one worker group).
PYTEST_WORKERS ?= 2

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP)
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadgroup tests

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy --strict src

bench: $(STAMP)
	$(BIN)/python bench/run_all.py $(BENCH)

clean:
	rm -rf $(VENV) build dist *.egg-info src/*.egg-info
