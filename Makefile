# One command each: `make setup`, `make test`, `make bench`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test lint pytest bench bench-tasks clean

setup:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	@$(BIN)/agent --version

lint:
	$(BIN)/ruff check agentcli tests bench
	$(BIN)/mypy

pytest:
	$(BIN)/pytest -q

test: lint pytest

bench:
	$(BIN)/python -m bench

# The offline task suite on the embedded model (bench/tasks/); writes its section of bench/RESULTS.md.
bench-tasks:
	AGENT_ALLOW_MODEL_REQUESTS=1 $(BIN)/python -m bench.tasks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
