"""Streaming: how soon a person sees the model's text, against how long the whole answer takes.

An OpenAI-compatible server on loopback streams the planner's answer as a slow model does: the
first word after ``FIRST_S`` seconds, then one word every ``WORD_S`` seconds (``WORDS`` words).
`agent run` runs on a pseudo-terminal; from the moment the server has the request, two times are
taken: the first streamed text on the screen (the ``│`` line under the status line) and the whole
answer sent (the server's ``[DONE]``). Without streaming (before, or through a pipe) the first text
a person saw came after the whole answer. The embedded model (``local/smollm2``) is measured the
same way at the backend: its first piece of text against its whole answer.
"""

from __future__ import annotations

import http.server
import json
import os
import pty
import select
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.report import Row, SectionResult
from bench.stats import Summary

SECTION = "stream"
FIRST_S = 0.5
WORD_S = 0.05
WORDS = 60

_asked = threading.Event()
_times: dict[str, float] = {}


def _plan() -> str:
    title = " ".join(f"word{i}" for i in range(WORDS))
    return json.dumps({"steps": {"s1": {"call": {"tool": "list_files", "args": {"pattern": "*.md"}},
                                        "depends_on": [], "title": title}}})


class _Streaming(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _event(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> None:
        body = {"id": "b", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if delta or finish else [],
                **extra}
        self._chunk(f"data: {json.dumps(body)}\n\n".encode())

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        _times.setdefault("asked", time.perf_counter())
        _asked.set()
        words = _plan().split(" ")
        if not body.get("stream"):
            time.sleep(FIRST_S + WORD_S * len(words))
            data = json.dumps({"object": "chat.completion", "model": "gpt-4o-mini", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": _plan()}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1000, "completion_tokens": 100}}).encode()
            _times.setdefault("done", time.perf_counter())
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        time.sleep(FIRST_S)
        for i, word in enumerate(words):
            self._event({"content": word if i == 0 else " " + word})
            time.sleep(WORD_S)
        self._event({}, "stop")
        self._event({}, usage={"prompt_tokens": 1000, "completion_tokens": 100})
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")
        _times.setdefault("done", time.perf_counter())


def _watch(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Seconds from the request's arrival to the first streamed text on the screen, and to the
    whole answer sent."""
    _times.clear()
    _asked.clear()
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, cwd=cwd, env={**env, "TERM": "xterm-256color", "COLUMNS": "120"}, stdin=slave,
                            stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    seen = b""
    try:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 120 and not {"shown", "done"} <= set(_times):
            ready, _, _ = select.select([master], [], [], 0.01)
            if not ready:
                continue
            try:
                seen += os.read(master, 65536)
            except OSError:
                break
            if "shown" not in _times and "│ ".encode() in seen:  # only streamed text is drawn after it
                _times["shown"] = time.perf_counter()
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    if not {"asked", "shown", "done"} <= set(_times):
        raise RuntimeError(f"no streamed text seen: {sorted(_times)}; screen: {seen[-500:]!r}")
    return _times["shown"] - _times["asked"], _times["done"] - _times["asked"]


def _local(ctx: Context) -> tuple[float, float] | None:
    """The embedded model: seconds to its first piece of text and to its whole answer."""
    import asyncio

    try:
        from agentcli.models.local.model import LocalBackend
        from agentcli.models.types import ModelRequest
    except ImportError:
        return None
    os.environ.setdefault("AGENT_ALLOW_MODEL_REQUESTS", "1")
    first: list[float] = []
    req = ModelRequest(model="local/smollm2", messages=[{"role": "user", "content": "Write three sentences "
                       "about the sea."}], max_tokens=80, temperature=0.0, seed=0,
                       on_text=lambda _: first.append(time.perf_counter()) if not first else None)
    backend = LocalBackend()
    asyncio.run(backend.request(ModelRequest(model="local/smollm2", messages=[{"role": "user", "content": "hi"}],
                                             max_tokens=4, temperature=0.0, seed=0)))  # loaded
    t0 = time.perf_counter()
    asyncio.run(backend.request(req))
    return first[0] - t0, time.perf_counter() - t0


def run(ctx: Context) -> SectionResult:
    res = SectionResult(SECTION)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Streaming)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api_base = f"http://127.0.0.1:{server.server_address[1]}/v1"
    env = ctx.env(AGENT_MEMORY__ENABLED="false", AGENT_PLANNER__SURVEY_CALLS="0", AGENT_ALLOW_MODEL_REQUESTS="1",
                  OPENAI_API_KEY="sk-bench-0000")
    reps = 1 if ctx.smoke else 5
    shown: list[float] = []
    whole: list[float] = []
    try:
        for i in range(reps):
            ws = ctx.tmp / f"stream-{i}"
            ws.mkdir(parents=True, exist_ok=True)
            cmd = [str(ctx.agent), "--model", "openai/gpt-4o-mini", "--api-base", api_base, "run", "--yes",
                   "list the markdown files"]
            first, done = _watch(cmd, ws, env)
            shown.append(first)
            whole.append(done)
    finally:
        server.shutdown()
    res.rows.append(Row(SECTION, "loopback model: first streamed text on the screen, after the request",
                        Summary.of(shown, "s")))
    res.rows.append(Row(SECTION, "loopback model: the whole answer, after the request", Summary.of(whole, "s")))
    ratio = Summary.of([w / s for s, w in zip(shown, whole, strict=True)], "x")
    res.rows.append(Row(SECTION, "loopback model: whole answer / first text on screen", ratio))
    local = None if ctx.smoke else _local(ctx)
    if local is not None:
        res.rows.append(Row(SECTION, "local/smollm2 (80 tokens): first piece of text, whole answer",
                            text=f"{local[0]:.2f} s, {local[1]:.2f} s ({local[1] / local[0]:.1f}x)"))
    res.notes.append(f"{reps} fresh `agent run` processes on a pseudo-terminal (120 columns); the server sends "
                     f"the planner's answer (a plan whose title is {WORDS} words, {len(_plan().split(' '))} words "
                     "in all) "
                     f"word by word, the first after {FIRST_S:g} s, then {WORD_S:g} s apart. Times from "
                     "the server's receipt of the planner's request. Without streaming (a pipe, or before), the "
                     "first text a person sees comes after the whole answer.")
    return res
