"""The plan model: references, validation, cycles, the hash and approval derivation.

Also holds the small test registry the other plan/planner tests import.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from agentcli.config import ApprovalConfig, Config
from agentcli.planning.plan import (
    Plan,
    ReferenceResolutionError,
    Step,
    derive_approval,
    find_cycle,
    find_references,
    resolve_references,
    validate_steps,
)
from agentcli.tools import ArgsModel, ToolContext, ToolRegistry, tool

# ------------------------------------------------------------------ shared helpers


class ListArgs(ArgsModel):
    pattern: str = Field("**/*", min_length=1, description="Glob.")


class ReadArgs(ArgsModel):
    path: str = Field(..., min_length=1, description="File path.")
    start_line: int | None = Field(None, ge=1, description="First line.")


class WriteArgs(ArgsModel):
    path: str = Field(..., min_length=1, description="File path.")
    content: str = Field(..., description="New content.")


class ShellArgs(ArgsModel):
    command: str = Field(..., min_length=1, description="Command.")


class FetchArgs(ArgsModel):
    url: str = Field(..., description="URL.")
    max_items: list[int] = Field(default_factory=list, description="Numbers.")


def make_registry(workspace: Path, config: Config | None = None) -> ToolRegistry:
    """Five tools, one per risk class (two reads), independent of the built-in tools."""
    cfg = config or Config()
    reg = ToolRegistry(ToolContext(workspace=workspace, config=cfg.tools, data_dir=workspace / ".agent"))

    @tool(risk="read")
    def list_files(args: ListArgs, ctx: ToolContext) -> list[str]:
        """List files matching a glob."""
        return []

    @tool(risk="read")
    def read_file(args: ReadArgs, ctx: ToolContext) -> str:
        """Read a text file."""
        return ""

    @tool(risk="write")
    def write_file(args: WriteArgs, ctx: ToolContext) -> str:
        """Write a text file."""
        return ""

    @tool(risk="exec")
    def run_shell(args: ShellArgs, ctx: ToolContext) -> str:
        """Run a shell command."""
        return ""

    @tool(risk="network")
    def fetch(args: FetchArgs, ctx: ToolContext) -> str:
        """Fetch a URL."""
        return ""

    for t in (list_files, read_file, write_file, run_shell, fetch):
        reg.register(t)
    return reg


def tstep(sid: str, tool_name: str, deps: list[str] | None = None, **args: Any) -> Step:
    return Step(id=sid, title=f"{sid} {tool_name}", kind="tool", tool=tool_name, args=args,
                depends_on=deps or [])


def lstep(sid: str, prompt: str, deps: list[str] | None = None) -> Step:
    return Step(id=sid, title=f"{sid} llm", kind="llm", prompt=prompt, depends_on=deps or [])


def make_plan_obj(*steps: Step, model: str = "test/scripted") -> Plan:
    return Plan(id="p1", task="the task", created_at=datetime(2026, 1, 1, tzinfo=UTC), model=model,
                steps=list(steps)).rehash()


@pytest.fixture
def reg(tmp_path: Path) -> ToolRegistry:
    return make_registry(tmp_path)


def issues_of(steps: list[Step], reg: ToolRegistry, max_steps: int = 20) -> list[str]:
    return [str(i) for i in validate_steps(steps, reg, max_steps=max_steps)]


# ------------------------------------------------------------------ references

RESULTS = {
    "s1": "plain text",
    "s2": {"files": ["a.py", "b.py"], "matches": [{"path": "x.py"}, {"path": "y.py", "line": 3}]},
    "s3": ["first", {"n": 2}],
    "s4": '{"from_text": [10, 20]}',
}


def test_exact_reference_keeps_type() -> None:
    assert resolve_references("{{s2.output}}", RESULTS) == RESULTS["s2"]
    assert resolve_references("{{s2.output.files}}", RESULTS) == ["a.py", "b.py"]
    assert resolve_references("{{ s3.output[1].n }}", RESULTS) == 2


def test_json_paths() -> None:
    assert resolve_references("{{s2.output.files[0]}}", RESULTS) == "a.py"
    assert resolve_references("{{s2.output.matches[1].path}}", RESULTS) == "y.py"
    # A tool that returned JSON as text can still be navigated.
    assert resolve_references("{{s4.output.from_text[1]}}", RESULTS) == 20


def test_embedded_references_become_text_or_json() -> None:
    value = "see {{s2.output.files[1]}} and {{s3.output[1]}}; {{s1.output}}!"
    assert resolve_references(value, RESULTS) == 'see b.py and {"n": 2}; plain text!'


def test_resolution_recurses_through_args() -> None:
    args = {"path": "{{s2.output.files[0]}}", "n": 3, "list": ["{{s3.output[0]}}", "x"]}
    assert resolve_references(args, RESULTS) == {"path": "a.py", "n": 3, "list": ["first", "x"]}


@pytest.mark.parametrize(("ref", "message"), [
    ("{{s9.output}}", "s9 has no result"),
    ("{{s2.output.nope}}", "no key 'nope' (keys: files, matches)"),
    ("{{s2.output.files[5]}}", "has 2 items"),
    ("{{s1.output.key}}", "is text, not JSON"),
    ("{{s2.output[0]}}", "is not a list"),
])
def test_unresolvable_references(ref: str, message: str) -> None:
    with pytest.raises(ReferenceResolutionError, match=message.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)")):
        resolve_references(ref, RESULTS)


def test_find_references() -> None:
    refs = find_references({"a": "{{s1.output}} {{s2.output.x[3].y}}", "b": ["{{s3.output}}"]})
    assert [(r.step_id, r.path) for r in refs] == [("s1", ()), ("s2", ("x", 3, "y")), ("s3", ())]


# ------------------------------------------------------------------ validation, one case each


def test_valid_plan_has_no_issues(reg: ToolRegistry) -> None:
    steps = [tstep("s1", "list_files", pattern="**/*.py"),
             tstep("s2", "read_file", ["s1"], path="{{s1.output[0]}}"),
             lstep("s3", "Summarise {{s2.output}}", ["s2"])]
    assert issues_of(steps, reg) == []


def test_unknown_tool(reg: ToolRegistry) -> None:
    [issue] = issues_of([tstep("s1", "list_file")], reg)
    assert issue.startswith("s1.tool: unknown tool 'list_file'; did you mean 'list_files'?")
    assert "use one of: fetch, list_files, read_file, run_shell, write_file" in issue


def test_bad_args(reg: ToolRegistry) -> None:
    issues = issues_of([tstep("s1", "read_file", start_line=0, colour="red")], reg)
    assert "s1.args.path: required argument is missing" in issues
    assert any(i.startswith("s1.args.start_line: Input should be greater than or equal to 1") for i in issues)
    assert "s1.args.colour: unknown argument; read_file takes: path, start_line" in issues


def test_references_stand_in_for_typed_fields(reg: ToolRegistry) -> None:
    steps = [tstep("s1", "list_files"),
             tstep("s2", "read_file", ["s1"], path="{{s1.output[0]}}", start_line="{{s1.output[1]}}"),
             tstep("s3", "fetch", ["s1"], url="x", max_items="{{s1.output}}"),
             tstep("s4", "fetch", ["s1"], url="x", max_items=["{{s1.output[0]}}", 2])]
    assert issues_of(steps, reg) == []


def test_missing_dependency(reg: ToolRegistry) -> None:
    issues = issues_of([tstep("s1", "list_files", ["s7"])], reg)
    assert issues == ["s1.depends_on: 's7' is not a step; existing steps: s1"]


def test_cycle(reg: ToolRegistry) -> None:
    steps = [tstep("s1", "list_files", ["s3"]), tstep("s2", "list_files", ["s1"]),
             tstep("s3", "list_files", ["s2"])]
    assert issues_of(steps, reg) == [
        "plan: dependency cycle s1 -> s3 -> s2 -> s1; a step may only depend on earlier steps"]


def test_self_dependency(reg: ToolRegistry) -> None:
    assert issues_of([tstep("s1", "list_files", ["s1"])], reg) == [
        "s1.depends_on: a step cannot depend on itself"]


def test_too_many_steps(reg: ToolRegistry) -> None:
    steps = [tstep(f"s{i}", "list_files") for i in range(1, 5)]
    assert issues_of(steps, reg, max_steps=3) == [
        "plan: 4 steps, but at most 3 are allowed (budget.max_steps); merge or drop steps"]


def test_no_steps(reg: ToolRegistry) -> None:
    assert issues_of([], reg) == ["plan: the plan has no steps; add at least one"]


def test_reference_to_step_not_in_depends_on(reg: ToolRegistry) -> None:
    steps = [tstep("s1", "list_files"), tstep("s2", "read_file", path="{{s1.output[0]}}")]
    assert issues_of(steps, reg) == [
        's2: {{s1.output[0]}} refers to s1, which is not in depends_on; add "s1" to depends_on']


def test_reference_to_missing_step(reg: ToolRegistry) -> None:
    steps = [tstep("s1", "list_files"), lstep("s2", "Summarise {{s5.output}}", ["s1"])]
    assert issues_of(steps, reg) == ["s2: {{s5.output}} refers to s5, which does not exist"]


def test_malformed_reference(reg: ToolRegistry) -> None:
    steps = [tstep("s1", "list_files"), tstep("s2", "read_file", ["s1"], path="{{s1.result}}")]
    [issue] = issues_of(steps, reg)
    assert issue.startswith("s2: malformed reference {{s1.result}}")


def test_double_braces_in_code_are_text_not_references(reg: ToolRegistry) -> None:
    # A capable model's edit of parse.py (`PARSE_RE = re.compile(r"({{|}}|...)")`) was refused as
    # "malformed reference {{|}}": code a plan writes may hold double braces.
    code = 'PARSE_RE = re.compile(r"({{|}}|\\{[\\w-]*\\})")\nf"{{{name}}}"\ntemplate = "{{ user.name }}"'
    steps = [tstep("s1", "write_file", path="parse.py", content=code)]
    assert issues_of(steps, reg) == []
    for typo in ("{{step1.output}}", "{{s1.outptu}}", "{{ output }}", "{{S2.output[0}}"):
        bad = [tstep("s1", "list_files"), tstep("s2", "read_file", ["s1"], path=typo)]
        assert any("malformed reference" in i for i in issues_of(bad, reg)), typo


def test_duplicate_ids(reg: ToolRegistry) -> None:
    assert "s1: duplicate step id" in issues_of([tstep("s1", "list_files"), tstep("s1", "list_files")], reg)


def test_step_kind_fields_are_enforced() -> None:
    with pytest.raises(ValueError, match="a tool step needs `tool`"):
        Step(id="s1", title="t", kind="tool")
    with pytest.raises(ValueError, match="an llm step needs `prompt`"):
        Step(id="s1", title="t", kind="llm", prompt="p", tool="read_file")
    with pytest.raises(ValueError, match="String should match pattern"):
        Step(id="step1", title="t", kind="llm", prompt="p")


# ------------------------------------------------------------------ cycles


def test_find_cycle() -> None:
    assert find_cycle({"s1": [], "s2": ["s1"], "s3": ["s1", "s2"]}) is None
    assert find_cycle({"s1": ["s2"], "s2": ["s1"]}) == ["s1", "s2", "s1"]
    assert find_cycle({"s1": [], "s2": ["s4"], "s3": ["s2"], "s4": ["s3"]}) == ["s2", "s4", "s3", "s2"]
    assert find_cycle({"s1": ["s9"]}) is None  # unknown ids are reported elsewhere


# ------------------------------------------------------------------ the hash


def test_hash_is_stable_and_ignores_ids_times_and_estimates() -> None:
    a = make_plan_obj(tstep("s1", "list_files", pattern="*.py"))
    b = a.model_copy(deep=True)
    b.id, b.created_at = "other", datetime(2030, 5, 5, tzinfo=UTC)
    b.steps[0].estimated_cost_usd = 12.0
    assert a.verify_hash() and b.verify_hash()
    assert a.compute_hash() == b.compute_hash()
    # The same plan read back from its JSON has the same hash.
    assert Plan.model_validate_json(a.to_json()).verify_hash()


@pytest.mark.parametrize("change", ["args", "model", "schema_version", "prompt", "approval", "deps"])
def test_hash_changes_with_what_execution_depends_on(change: str) -> None:
    plan = make_plan_obj(tstep("s1", "list_files", pattern="*.py"), lstep("s2", "Say {{s1.output}}", ["s1"]))
    plan.steps[0].tool_schema_version = "aaaaaaaaaaaa"
    plan.rehash()
    before = plan.hash
    if change == "args":
        plan.steps[0].args["pattern"] = "*.md"
    elif change == "model":
        plan.model = "openai/gpt-4o-mini"
    elif change == "schema_version":
        plan.steps[0].tool_schema_version = "bbbbbbbbbbbb"
    elif change == "prompt":
        plan.steps[1].prompt = "Shout {{s1.output}}"
    elif change == "approval":
        plan.steps[0].requires_approval = True
    else:
        plan.steps[1].depends_on = []
    assert not plan.verify_hash()
    assert plan.compute_hash() != before


# ------------------------------------------------------------------ approval


@pytest.mark.parametrize(("policy", "llm_flag", "expected"), [
    ("auto", False, False),
    ("auto", True, True),    # the model may raise it
    ("ask", False, True),    # ...but never lower it
    ("ask", True, True),
    ("deny", False, True),
])
def test_approval_is_llm_flag_or_policy(policy: str, llm_flag: bool, expected: bool) -> None:
    cfg = ApprovalConfig.model_validate({"write": policy})
    assert derive_approval("write", cfg, llm_flag) is expected


def test_llm_steps_need_no_approval_unless_asked() -> None:
    cfg = ApprovalConfig.model_validate({"read": "ask", "write": "ask", "exec": "ask", "network": "ask"})
    assert derive_approval(None, cfg, False) is False
    assert derive_approval(None, cfg, True) is True
