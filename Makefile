# One command each: `make setup`, `make test`, `make bench`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup sandbox-deps test lint pytest bench bench-tasks clean

setup: sandbox-deps
	@echo "setup: creating the virtual environment in $(VENV)"
	$(PY) -m venv $(VENV)
	@echo "setup: installing agentcli and its dependencies (pip, quiet)."
	@echo "setup: the first build of llama-cpp-python (the embedded model's llama.cpp) compiles C++ and takes"
	@echo "       minutes (5-20 on 2 cores); later set-ups reuse pip's cached wheel and take about a minute."
	$(BIN)/pip install --quiet -e '.[dev]'
	@echo "setup: done:"
	@$(BIN)/agent --version

# The OS sandbox of run_shell on Linux is bubblewrap (a Debian/Ubuntu package; `apt-get` as root,
# else through sudo). Elsewhere nothing is installed and commands need [sandbox] mode = "off".
sandbox-deps:
	@echo "setup: checking for bubblewrap (the OS sandbox of run_shell on Linux)"
	@if [ "$$(uname -s)" = Linux ] && ! command -v bwrap >/dev/null 2>&1; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q bubblewrap >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q bubblewrap >/dev/null; } || \
	  { echo "could not install bubblewrap: run_shell will be refused unless [sandbox] mode = \"off\"" >&2; }; \
	fi

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
