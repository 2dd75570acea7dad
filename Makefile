# The two commands: `make demo` and `make test`. Both create the virtual environment on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format clean bench

# `make demo` installs the core only (what the demo and the core commands need); `make test` adds the
# extras the full suite needs: [postgres], [spark] (pyspark), [deploy] and the test tools ([dev]).
CORE_STAMP := $(VENV)/.installed-core

install: $(STAMP)

$(CORE_STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: driftmart needs Python 3.11" >&2; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(CORE_STAMP)

$(STAMP): $(CORE_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(CORE_STAMP)
	$(BIN)/driftmart demo

# Two workers (the machine's two cores): a test waiting on a dbt or Spark subprocess leaves the other
# core free. Each test file runs whole on one worker, the cross-engine files together (they share
# the PostgreSQL and Spark homes); TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2

test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# Not part of `make test`: generates data, times driftmart against Evidently and a DuckDB scan, and
# writes bench/results/. Sizes and repetitions: make bench BENCH_ARGS="--size 1M --repeat 3".
bench: install
	$(BIN)/python -c "import psutil, matplotlib" 2>/dev/null || $(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/bench_engine.py $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	lint_home=$$(mktemp -d) && DRIFTMART_HOME=$$lint_home DBT_TARGET_PATH=$$lint_home/target $(BIN)/sqlfluff lint dbt_project/models; \
		status=$$?; rm -rf $$lint_home; exit $$status

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) dbt_project/target dbt_project/logs warehouse/data .pytest_cache .ruff_cache
