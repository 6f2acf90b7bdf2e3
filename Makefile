# One command each: `make setup`, `make test` (fast), `make test-all` (everything, what CI runs), `make bench`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup sandbox-deps test test-all lint pytest pytest-all records bench bench-tasks clean

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

# Tests marked slow or real_model (the embedded model's, benchmark smoke runs) are left out of the
# developer loop; test-all runs them as a second step and measures branch coverage over both, failing
# under [tool.coverage.report] fail_under. Two workers (pytest-xdist); XDIST=0 runs in one process.
XDIST ?= 2
FAST := -m "not slow and not real_model"
SLOW := -m "slow or real_model"

pytest:
	$(BIN)/pytest -q -n $(XDIST) $(FAST)

pytest-all:
	$(BIN)/pytest -q -n $(XDIST) $(FAST) --cov --cov-report= --cov-fail-under=0
	$(BIN)/pytest -q -n $(XDIST) $(SLOW) --cov --cov-append --cov-report=term

test: lint pytest

test-all: lint pytest-all

# Re-record the committed run records (tests/fixtures/records/) and session (tests/fixtures/sessions/)
# with this version's prompts: do it on purpose, when a prompt or schema changed (CHANGELOG.md says
# which), and commit the result.
records:
	$(BIN)/python -m tests.records

bench:
	$(BIN)/python -m bench

# The offline task suite on the embedded model (bench/tasks/); writes its section of bench/RESULTS.md.
bench-tasks:
	AGENT_ALLOW_MODEL_REQUESTS=1 $(BIN)/python -m bench.tasks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
