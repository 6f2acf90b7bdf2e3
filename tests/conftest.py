"""Test isolation: no real model requests, no user config, no AGENT_* leaking in."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Subprocesses inherit this; in-process code reads it through names.requests_allowed().
os.environ["AGENT_ALLOW_MODEL_REQUESTS"] = "0"
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

from agentcli.models import names

names.ALLOW_MODEL_REQUESTS = False

#: Copies of other projects (their own tests included) that tests run the agent on.
collect_ignore = ["fixtures"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("AGENT_") and name != "AGENT_ALLOW_MODEL_REQUESTS":
            monkeypatch.delenv(name)
    xdg = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    yield
    from agentcli.planning.local import DEFAULT_LEVERS
    from agentcli.planning.strategy import use_levers

    use_levers(DEFAULT_LEVERS)  # a test that measured another lever set leaves the default behind


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty workspace root, made the current directory."""
    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.chdir(ws)
    return ws


@pytest.fixture
def allow_model_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opt in to real model requests (loopback servers, the local model)."""
    monkeypatch.setenv("AGENT_ALLOW_MODEL_REQUESTS", "1")


# ---------------------------------------------------------------- replay, a property of the suite
#
# Every run an in-process test records (through the composition root, RunSession) is replayed when
# the session ends, and must replay `identical`. A test that damages a record on purpose says so
# with @pytest.mark.tampered_record. Set AGENT_TEST_REPLAY_ALL=0 to skip (e.g. while bisecting).

from agentcli.engine import session as _session  # noqa: E402

_RECORDED: list[tuple[str, Any]] = []  # (test id, session)
_TAMPERED: set[str] = set()


def _current_test() -> str:
    return os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]


def _remember(s: Any) -> None:
    if not s.extra_start.get("replay_of"):  # a replay's own record is compared already
        _RECORDED.append((_current_test(), s))


_session.BUILT.append(_remember)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "tampered_record: the test damages a run record on purpose "
                                       "(the session-end replay check leaves its runs out)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    _TAMPERED.update(i.nodeid for i in items if i.get_closest_marker("tampered_record"))


def replay_every_recorded_run() -> tuple[int, list[str]]:
    """Replay every recorded run not marked tampered; (runs replayed, one line per divergence)."""
    from agentcli.engine.replay import replay_run
    from agentcli.record.reader import RunRecord

    failures: list[str] = []
    replayed = 0
    seen: set[Path] = set()
    for test, s in _RECORDED:
        path = s.events_path
        if test in _TAMPERED or path in seen or not path.is_file() or s.registry is None:
            continue
        seen.add(path)
        rec = RunRecord.read(path)
        if not rec.plans:
            continue  # nothing to replay: the planner failed
        try:
            result = asyncio.run(replay_run(path, s.registry))
        except Exception as e:  # a replay that cannot even start is a failure too
            failures.append(f"{test} ({path.parent.name}): {type(e).__name__}: {e}")
            continue
        replayed += 1
        if result.divergence is not None:
            failures.append(f"{test} ({path.parent.name}): {result.divergence.describe()}")
    return replayed, failures


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("AGENT_TEST_REPLAY_ALL", "1") == "0" or not _RECORDED:
        return
    replayed, failures = replay_every_recorded_run()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"replay check: {replayed} recorded runs replayed, {len(failures)} diverged")
        for line in failures:
            reporter.write_line("  " + line.replace("\n", "\n    "))
    if failures:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
