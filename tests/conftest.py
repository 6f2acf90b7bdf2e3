"""Test isolation: no real model requests, no user config, no AGENT_* leaking in."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
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
    for item in items:  # the embedded model answers: left out of `make test` with the other real-model tests
        if item.get_closest_marker("local_model") and not item.get_closest_marker("real_model"):
            item.add_marker(pytest.mark.real_model)


@dataclass
class ReplayCheck:
    """What the session-end replay check did: runs replayed, one (test id, run, why) per
    divergence, and what it left out and why (reason -> test ids)."""

    replayed: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, test: str) -> None:
        self.skipped.setdefault(reason, []).append(test)

    def merge(self, other: dict[str, Any]) -> None:
        self.replayed += other["replayed"]
        self.failures += [tuple(f) for f in other["failures"]]  # type: ignore[misc]
        for reason, tests in other["skipped"].items():
            self.skipped.setdefault(reason, []).extend(tests)


def replay_every_recorded_run() -> ReplayCheck:
    """Replay every recorded run not marked tampered (each record once)."""
    from agentcli.engine.replay import replay_run
    from agentcli.record.reader import RunRecord

    check = ReplayCheck()
    seen: set[Path] = set()
    for test, s in _RECORDED:
        path = s.events_path
        if path in seen:
            continue  # a resumed run's record, written by two sessions: replayed once
        seen.add(path)
        if test in _TAMPERED:
            check.skip("its test damages the record on purpose (tampered_record)", test)
            continue
        if not path.is_file():
            check.skip("no record on disk (the test removed it)", test)
            continue
        if s.registry is None:
            check.skip("built without a tool registry", test)
            continue
        rec = RunRecord.read(path)
        if not rec.plans:
            check.skip("no plan recorded (the planner failed): nothing to replay", test)
            continue
        try:
            result = asyncio.run(replay_run(path, s.registry))
        except Exception as e:  # a replay that cannot even start is a failure too
            check.failures.append((test, path.parent.name, f"{type(e).__name__}: {e}"))
            continue
        check.replayed += 1
        if result.divergence is not None:
            check.failures.append((test, path.parent.name, result.divergence.describe()))
    return check


def _report_failure(session: pytest.Session, test: str, run: str, why: str) -> None:
    # A failed test of its own, named after the test that recorded the run, so the summary, -x
    # reruns and CI's list of failures point at it.
    from _pytest.reports import TestReport

    file = test.split("::", 1)[0] or "tests/conftest.py"
    report = TestReport(nodeid=f"{test}::replay[{run}]", location=(file, 0, f"replay of {run}"),
                        keywords={}, outcome="failed", when="call",
                        longrepr=f"the run {run} recorded by {test} does not replay identical:\n{why}")
    session.config.hook.pytest_runtest_logreport(report=report)


def _finish_replay_check(session: pytest.Session, check: ReplayCheck) -> None:
    for test, run, why in check.failures:
        _report_failure(session, test, run, why)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        skipped = sum(len(v) for v in check.skipped.values())
        reporter.write_line(f"replay check: {check.replayed} recorded runs replayed, {len(check.failures)} diverged, "
                            f"{skipped} left out")
        for reason, tests in sorted(check.skipped.items()):
            shown = ", ".join(sorted(set(tests))[:5]) + (" ..." if len(set(tests)) > 5 else "")
            reporter.write_line(f"  left out {len(tests)}: {reason}: {shown}")
    if check.failures:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_FROM_WORKERS = ReplayCheck()


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: absent without it
def pytest_testnodedown(node: Any, error: Any) -> None:
    """(pytest-xdist, on the controller) A worker's replay check: reported with the others."""
    out = getattr(node, "workeroutput", {}).get("replay_check")
    if out is not None:
        _FROM_WORKERS.merge(out)


@pytest.hookimpl(tryfirst=True)  # an xdist worker sends its results before it says it finished
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if os.environ.get("AGENT_TEST_REPLAY_ALL", "1") == "0":
        return
    worker_output = getattr(config, "workeroutput", None)
    if worker_output is not None:  # an xdist worker: its controller reports
        check = replay_every_recorded_run()
        worker_output["replay_check"] = {"replayed": check.replayed, "failures": check.failures,
                                         "skipped": check.skipped}
        return
    # The xdist controller: the workers replayed their own runs.
    check = _FROM_WORKERS if config.pluginmanager.has_plugin("dsession") else replay_every_recorded_run()
    if check.replayed or check.failures or check.skipped:
        _finish_replay_check(session, check)
