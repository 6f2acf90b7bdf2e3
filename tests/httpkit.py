"""An OpenAI-compatible model on loopback for tests over litellm's real HTTP path.

:class:`ModelServer` answers /v1/chat/completions from a queue of answers, in order, and behaves
as a provider does with an output limit: an answer longer than the request's ``max_tokens``
(tiktoken tokens) is cut there and sent with ``finish_reason: "length"``. Every request body is
kept, so a test can assert what agentcli sent.

It also caches prompts as OpenAI's automatic prefix cache does: a request whose messages share a
prefix of at least 1,024 tokens with an earlier request's is reported with
``usage.prompt_tokens_details.cached_tokens``, counted in 128-token steps (its own reading of the
rule, written apart from agentcli's :mod:`agentcli.models.cache`).

With ``delay``, every answer waits that many seconds first (a slow model, for what a user sees
while a call is in flight and for Ctrl-C during one); :meth:`ModelServer.release` ends the waits.

A request with ``stream: true`` is answered as OpenAI streams: server-sent events, one chunk per
word of the answer (``chunk_delay`` seconds apart), the ``finish_reason`` in the last, then the usage
in a chunk of its own when ``stream_options.include_usage`` asks for it, then ``[DONE]``. With
``cut_after`` set, an answer (streamed or not) is cut off mid-way: the connection closes after
that many chunks (or, whole, after half the body).
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from agentcli.models import tokens

#: The model the tests configure (priced by litellm, 16,384 output tokens at most).
MODEL = "openai/gpt-4o-mini"


class ModelServer:
    """Serves queued answers (text, or JSON-able objects sent as their JSON), cut at max_tokens."""

    def __init__(self, server: HTTPServer, *, delay: float = 0.0) -> None:
        self.server = server
        #: Seconds each answer waits before it is sent.
        self.delay = delay
        #: Seconds between the chunks of a streamed answer.
        self.chunk_delay = 0.0
        #: Cut every answer off mid-way: after this many chunks (a whole answer: after half its body).
        self.cut_after: int | None = None
        #: Per answer: whether it was asked for streamed.
        self.streamed: list[bool] = []
        #: When set, a streamed answer holds its last chunk until this is set (a test looks at the
        #: screen while the answer is known to be unfinished).
        self.finish_gate: threading.Event | None = None
        #: How many streamed answers were sent whole.
        self.finished_streams = 0
        self._released = threading.Event()
        self.queue: deque[str] = deque()
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.sent: list[dict[str, Any]] = []
        self.cached: list[int] = []
        self._prompts: list[list[int]] = []
        server.expect_request("/v1/chat/completions", method="POST").respond_with_handler(self._handle)

    def add(self, *answers: Any) -> ModelServer:
        self.queue.extend(a if isinstance(a, str) else json.dumps(a) for a in answers)
        return self

    def release(self) -> None:
        """Stop delaying: waiting and later answers go out at once."""
        self._released.set()

    def _handle(self, request: Request) -> Response:
        if self.delay:
            self._released.wait(self.delay)
        body = json.loads(request.data)
        self.bodies.append(body)
        self.headers.append(dict(request.headers))
        if not self.queue:
            return Response("no answer queued", status=599)
        full = self.queue.popleft()
        limit = int(body.get("max_tokens") or body.get("max_completion_tokens") or 1 << 30)
        text, cut = tokens.cut_text(full, limit, MODEL)
        finish = "length" if cut else "stop"
        prompt = tokens.count_messages(body.get("messages", []), MODEL)
        out = tokens.count_text(text, MODEL)
        cached = min(self._cached(body), prompt)
        self.cached.append(cached)
        self.sent.append({"text": text, "finish_reason": finish, "max_tokens": limit})
        usage = {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out,
                 "prompt_tokens_details": {"cached_tokens": cached}}
        self.streamed.append(bool(body.get("stream")))
        if body.get("stream"):
            with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return Response(self._events(text, finish, usage if with_usage else None),
                            status=200, content_type="text/event-stream")
        if self.cut_after is not None:
            whole = json.dumps({"choices": [{"message": {"content": text}}]}).encode()
            return Response(self._cut(whole), status=200, content_type="application/json",
                            headers={"Content-Length": str(len(whole))})
        return Response(json.dumps({
            "id": f"chatcmpl-{len(self.bodies)}", "object": "chat.completion", "created": 1,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out,
                      "prompt_tokens_details": {"cached_tokens": cached}},
        }), status=200, content_type="application/json")

    def _events(self, text: str, finish: str, usage: dict[str, Any] | None) -> Any:
        def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> bytes:
            data = {"id": f"chatcmpl-{len(self.bodies)}", "object": "chat.completion.chunk", "created": 1,
                    "model": "gpt-4o-mini-2024-07-18",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}], **extra}
            return f"data: {json.dumps(data)}\n\n".encode()

        pieces = re.findall(r"\s*\S+\s*", text) or [text]
        yield chunk({"role": "assistant", "content": ""})
        for n, piece in enumerate(pieces):
            if self.cut_after is not None and n >= self.cut_after:
                raise ConnectionAbortedError("cut off mid-way (test)")  # the server closes the connection
            if self.chunk_delay:
                self._released.wait(self.chunk_delay)
            yield chunk({"content": piece})
        if self.finish_gate is not None:
            self.finish_gate.wait(120)
        yield chunk({}, finish)
        if usage is not None:
            data = {"id": "u", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini-2024-07-18",
                    "choices": [], "usage": usage}
            yield f"data: {json.dumps(data)}\n\n".encode()
        yield b"data: [DONE]\n\n"
        self.finished_streams += 1

    @staticmethod
    def _cut(whole: bytes) -> Any:
        yield whole[: len(whole) // 2]
        raise ConnectionAbortedError("cut off mid-way (test)")

    def forget_prompts(self) -> None:
        """Empty the prefix cache (a second run then sees what the first one saw)."""
        self._prompts.clear()

    def _cached(self, body: dict[str, Any]) -> int:
        """The prefix of this request's messages already seen, by the 1,024 + 128·k rule."""
        text = json.dumps(body.get("tools")) + "".join(
            f"{m.get('role')}:{m.get('content')}" for m in body.get("messages", []))
        seq = tokens.encode(text, MODEL)
        best = 0
        for old in self._prompts:
            n = 0
            for a, b in zip(old, seq, strict=False):
                if a != b:
                    break
                n += 1
            best = max(best, n)
        self._prompts.append(seq)
        return 0 if best < 1024 else 1024 + (best - 1024) // 128 * 128

    @property
    def api_base(self) -> str:
        return self.server.url_for("/v1")

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of an ``agent`` command that uses this server."""
        return {"AGENT_MODEL": MODEL, "AGENT_API_BASE": self.api_base,
                "AGENT_LLM__BACKOFF_BASE_SECONDS": "0", "AGENT_LLM__MAX_RETRIES": "0",
                "AGENT_MEMORY__ENABLED": "false", **extra}
