"""The reviewer's prompt text is pinned: replay finds recorded responses by the request's hash,
so the fast digest encoder must give exactly ``json.dumps(..., indent=1, ensure_ascii=False)``."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from agentcli.engine import reviewer
from agentcli.engine.reviewer import _digest_json

_TRICKY = ['', 'ok', 'a "quoted" \\ back\\slash', 'line\nbreak\r\ttab\b\f', '\x00\x01\x1f\x7f', 'é ü ß 漢字 🙂',
           '\u2028\u2029\ufeff', '\ud800 lone surrogate', '{"json": [1, 2]}', '   leading and trailing   ',
           ',\n   "fake": "separator"', '}\n ]\n}']
_NUMBERS = [0, -1, 7, 2**70, -(2**63), 0.0, -0.0, 1.5, 1e16, 1e-7, 3.141592653589793, float("nan"),
            float("inf"), float("-inf"), True, False, None]


def _value(rng: random.Random, strings: float = 0.6) -> Any:
    if rng.random() < strings:
        chars = "".join(rng.choice(_TRICKY) for _ in range(rng.randint(0, 3)))
        return chars + "".join(chr(rng.randint(0, 0x2FFF)) for _ in range(rng.randint(0, 5)))
    return rng.choice(_NUMBERS)


def _reference(task: Any, plan_id: Any, steps: list[Any]) -> str:
    return json.dumps({"task": task, "plan_id": plan_id, "steps": steps}, indent=1, ensure_ascii=False)


@pytest.mark.parametrize("strings", [1.0, 0.9, 0.6])
def test_matches_json_dumps_on_random_digests(strings: float) -> None:
    rng = random.Random(20240611)
    for _ in range(400):
        steps = []
        for i in range(rng.randint(0, 6)):
            item: dict[str, Any] = {"id": f"s{i}", "title": _value(rng, strings), "status": "ok"}
            for key in rng.sample(["action", "output", "error", "extra é\n\"key\""], rng.randint(0, 3)):
                item[key] = _value(rng, strings)
            steps.append(item)
        task, plan_id = _value(rng, strings), _value(rng, strings)
        assert _digest_json(task, plan_id, steps) == _reference(task, plan_id, steps)


def test_every_character_is_escaped_as_json_dumps_does(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    steps = [{"id": "s1", "output": text[i:i + 4096]} for i in range(0, len(text), 4096)]
    expected = _reference(text[:300], "p", steps)
    monkeypatch.setattr(reviewer, "json", None)  # the fast path, not json.dumps, wrote it
    assert _digest_json(text[:300], "p", steps) == expected


@pytest.mark.parametrize("steps", [
    [],
    [{}],
    [{"id": "s1", "output": ["a", "b"]}],
    [{"id": "s1", "output": {"nested": {"deep": [1, {}]}}}, {"id": "s2", "output": []}],
    [{"id": "s1", 2: "int key"}],
    [{"id": "s1", "output": ("tuple", 1)}],
    [["not", "a", "dict"]],
])
def test_other_shapes_match_json_dumps(steps: list[Any]) -> None:
    assert _digest_json("task", "plan-1", steps) == _reference("task", "plan-1", steps)
    assert _digest_json(["odd", "task"], {"id": 1}, steps) == _reference(["odd", "task"], {"id": 1}, steps)
