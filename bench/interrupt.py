"""Ctrl-C: how long `agent run` takes to exit after one SIGINT, and after a second sent at once;
and how long after start a terminal shows the first status line.

Two moments: a planner call in flight to an OpenAI-compatible server on loopback that answers
only after 60 s (the blocking HTTP request runs in a worker thread that cannot be stopped: it is
abandoned), and a `run_shell` step running ``sleep 60`` (its process group is killed). Each
interrupt is sent once the run is there (the server has the request; the step's intent is
recorded), and the time is taken from the signal to the process's exit. Exit codes are checked
(130); the first Ctrl-C's run must record ``interrupted``.
"""

from __future__ import annotations

import http.server
import json
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.report import Row, SectionResult
from bench.stats import Summary

SECTION = "interrupt"
TARGET_S = 1.0
TARGET_FIRST_S = 0.2

_release = threading.Event()
_asked = threading.Event()


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        _asked.set()
        _release.wait(60)
        self.send_response(500)
        self.end_headers()


def _exit_after_sigint(cmd: list[str], cwd: Path, env: dict[str, str], ready: Any, twice: bool) -> float:
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while not ready() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    if proc.poll() is not None:
        raise RuntimeError(f"exited before the interrupt: {proc.stderr.read().decode()[-500:] if proc.stderr else ''}")
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    if twice:
        proc.send_signal(signal.SIGINT)
    proc.wait(timeout=300)
    took = time.perf_counter() - t0
    if proc.returncode != 130:
        raise RuntimeError(f"exit code {proc.returncode}, not 130")
    return took


def _first_status(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Seconds from starting ``cmd`` with stderr on a pseudo-terminal to the status line's first word."""
    import os
    import pty
    import select

    master, slave = pty.openpty()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env={**env, "TERM": "xterm-256color"}, stdin=slave, stdout=slave,
                            stderr=slave, start_new_session=True)
    os.close(slave)
    seen = b""
    took = float("nan")
    try:
        while time.perf_counter() - t0 < 60:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break
                if b"starting" in seen or b"planning" in seen:
                    took = time.perf_counter() - t0
                    break
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    return took


def _recorded(ws: Path, what: str) -> bool:
    runs = ws / ".agent" / "runs"
    return any(what in p.read_text() for p in runs.glob("*/events.jsonl")) if runs.is_dir() else False


def run(ctx: Context) -> SectionResult:
    res = SectionResult(SECTION)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api_base = f"http://127.0.0.1:{server.server_address[1]}/v1"
    env = ctx.env(AGENT_MEMORY__ENABLED="false", AGENT_PLANNER__SURVEY_CALLS="0", AGENT_ALLOW_MODEL_REQUESTS="1",
                  OPENAI_API_KEY="sk-bench-0000")
    agent = str(ctx.agent)
    reps = 1 if ctx.smoke else 5
    times: dict[str, list[float]] = {}
    try:
        for i in range(reps):
            ws = ctx.tmp / f"first-{i}"
            ws.mkdir(parents=True, exist_ok=True)
            cmd = [agent, "--model", "openai/gpt-4o-mini", "--api-base", api_base, "run", "--yes", "read a.txt"]
            times.setdefault("first status line on a terminal, after start", []).append(_first_status(cmd, ws, env))
            for twice in (False, True):
                ws = ctx.tmp / f"interrupt-{i}-{int(twice)}"
                ws.mkdir(parents=True, exist_ok=True)
                (ws / "a.txt").write_text("hello\n")
                _asked.clear()
                cmd = [agent, "--model", "openai/gpt-4o-mini", "--api-base", api_base, "run", "--yes", "read a.txt"]
                label = f"model call in flight, {'second Ctrl-C at once' if twice else 'one Ctrl-C'}"
                times.setdefault(label, []).append(_exit_after_sigint(cmd, ws, env, _asked.is_set, twice))
                if not twice and not _recorded(ws, '"reason":"interrupted"'):
                    raise RuntimeError("the interrupted run did not record reason interrupted")
                sh = ctx.tmp / f"interrupt-sh-{i}-{int(twice)}"
                sh.mkdir(parents=True, exist_ok=True)
                plan = {"schema_version": "1", "id": f"sh{i}", "task": "wait", "created_at": "2026-12-01T00:00:00Z",
                        "model": "local/smollm2", "steps": [{"id": "s1", "title": "wait", "kind": "tool",
                                                             "tool": "run_shell", "risk": "exec",
                                                             "args": {"command": "sleep 60", "timeout": 90}}]}
                (sh / "plan.json").write_text(json.dumps(plan))
                label = f"`sleep 60` step running, {'second Ctrl-C at once' if twice else 'one Ctrl-C'}"
                times.setdefault(label, []).append(_exit_after_sigint(
                    [agent, "run", "--plan", "plan.json", "--yes"], sh, env,
                    lambda sh=sh: _recorded(sh, '"type":"tool_intent"'), twice))  # type: ignore[misc]
    finally:
        _release.set()
        server.shutdown()
    for label, values in times.items():
        s = Summary.of(values, "s")
        if label.startswith("first"):
            res.rows.append(Row(SECTION, label, s, target=f"≤ {TARGET_FIRST_S:g} s", met=s.median <= TARGET_FIRST_S))
            continue
        res.rows.append(Row(SECTION, f"exit after Ctrl-C, {label}", s, target=f"≤ {TARGET_S:g} s",
                            met=s.median <= TARGET_S))
    res.notes.append(f"{reps} fresh processes per row; time from SIGINT to the process's exit (exit code 130 "
                     "checked). The server holds each request for 60 s; before, a run waited for the request's "
                     "worker thread to return before exiting (and a second Ctrl-C did not end it).")
    return res
