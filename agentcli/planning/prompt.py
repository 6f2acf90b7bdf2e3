"""What the planner model is given: the draft JSON Schema, the tool catalogue, a bounded
workspace summary, recalled memory and the rules. See :mod:`agentcli.planning.planner` for the design
of the draft (steps keyed ``s1, s2, ...``, dependencies only on earlier steps), and
:mod:`agentcli.planning.local` for what a small local model is given instead.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentcli.config import Config
from agentcli.errors import WorkspaceError
from agentcli.planning.plan import STEP_ID_RE
from agentcli.planning.testenv import ShellView, environment_note
from agentcli.tools import Tool
from agentcli.tools.paths import WorkspaceWalker
from agentcli.tools.text import head_tail

# Bounds keep the grammar small (a local model's decoding slows down with every long string)
# and stop a small model from looping inside a string until max_tokens.
TITLE_MAX = 60
PROMPT_MAX = 400
ARG_STRING_MAX = 200
ARRAY_MAX = 8
#: What the reviewer, which writes a run's answer from the step outputs, writes and reads at most
#: (``agentcli.engine.reviewer``: ``Review.answer``, ``STEP_CHARS``; a test keeps them equal): a
#: hosted planner plans an llm step that only writes the answer when it needs more than that.
REVIEW_ANSWER_CHARS = 4000
REVIEW_OUTPUT_CHARS = 4000
#: An llm step's prompt for a hosted planner: room for real instructions (the local grammar keeps PROMPT_MAX).
HOSTED_PROMPT_MAX = 4000
MEMORY_MAX_ITEMS = 5
MEMORY_ITEM_CHARS = 400
CONTEXT_MAX_CHARS = 6000
#: A hosted planner's re-plan context (the steps so far, the changes) is bounded by its own builder.
HOSTED_CONTEXT_MAX_CHARS = 24000

#: ``recall(task)`` returns remembered snippets relevant to the task (the memory hook).
Recall = Callable[[str], list[str]]
#: ``past_plans(task, accept)`` returns plans of past runs of similar tasks that completed and
#: that ``accept`` takes (:meth:`agentcli.memory.Memory.recall_plans`): the local planner's
#: few-shot examples from memory.
PastPlans = Callable[[str, Callable[[Any], bool]], list[Any]]


# --------------------------------------------------------------------------- the draft schema


def _deref(node: Any, defs: dict[str, Any], depth: int = 0) -> Any:
    # Tool schemas may use $defs; inlined, a tool's args can sit inside the bigger draft schema.
    if isinstance(node, list):
        return [_deref(x, defs, depth) for x in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = defs.get(ref.rsplit("/", 1)[-1])
        if target is None or depth > 8:  # unknown or recursive: accept anything there
            return {}
        return _deref({**target, **{k: v for k, v in node.items() if k != "$ref"}}, defs, depth + 1)
    # The names under "properties" are arguments, not keywords: an argument called "title" is kept.
    return {k: ({name: _deref(sub, defs, depth) for name, sub in v.items()} if k == "properties" and isinstance(v, dict)
                else _deref(v, defs, depth)) for k, v in node.items() if k not in ("$defs", "description", "title")}


def _bound(node: Any) -> Any:
    if isinstance(node, list):
        return [_bound(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _bound(v) for k, v in node.items()}
    types = out.get("type")
    types = {types} if isinstance(types, str) else set(types or [])
    if "string" in types and "enum" not in out and "const" not in out:
        out["maxLength"] = min(int(out.get("maxLength", ARG_STRING_MAX)), ARG_STRING_MAX)
    if "array" in types:
        out["maxItems"] = min(int(out.get("maxItems", ARRAY_MAX)), ARRAY_MAX)
    return out


def _compact(node: Any) -> Any:
    """The same constraints in fewer tokens: ``anyOf [X, null]`` as X with ``"null"`` among its
    types, and no ``"default": null`` (an optional argument left out is null)."""
    if isinstance(node, list):
        return [_compact(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _compact(v) for k, v in node.items() if not (k == "default" and v is None)}
    alts = out.get("anyOf")
    if isinstance(alts, list) and len(alts) == 2 and {"type": "null"} in alts:
        other = next(a for a in alts if a != {"type": "null"})
        if isinstance(other, dict) and isinstance(other.get("type"), str) and "anyOf" not in other:
            rest = {k: v for k, v in out.items() if k != "anyOf"}
            return {**other, **rest, "type": [other["type"], "null"]}
    return out


def tool_args_schema(tool: Tool, *, bounded: bool = True) -> dict[str, Any]:
    """A tool's args schema as it appears in the draft: refs inlined, descriptions dropped
    (the prompt's catalogue has them), strings and arrays bounded unless ``bounded`` is False
    (the bounds keep a small local model's grammar finite; a hosted model gets the tool's own
    constraints, written compactly: :func:`_compact`)."""
    schema = tool.parameters_schema()
    inlined: dict[str, Any] = _deref(schema, schema.get("$defs", {}))
    return _bound(inlined) if bounded else _compact(inlined)


#: JSON Schema keywords a hosted model's callable tool is sent without: bounds and closedness the
#: tool's own validation enforces at the call (an error the model is shown), not guidance it needs.
_CHECKED_IN_CODE = frozenset({"minLength", "maxLength", "pattern", "additionalProperties"})


def _lean(node: Any) -> Any:
    if isinstance(node, list):
        return [_lean(x) for x in node]
    if not isinstance(node, dict):
        return node
    # The names under "properties" are arguments, not keywords: list_files' argument "pattern" is kept.
    return {k: ({name: _lean(sub) for name, sub in v.items()} if k == "properties" and isinstance(v, dict)
                else _lean(v)) for k, v in node.items() if k not in _CHECKED_IN_CODE}


def callable_tool_spec(tool: Tool) -> dict[str, Any]:
    """A tool as a hosted model is given it to call (the planner's survey, an investigate step): the
    OpenAI function format of :meth:`Tool.openai_schema`, its arguments written compactly
    (:func:`_compact`: an optional argument's type as ``["integer", "null"]``, no ``default: null``)
    and without the constraints the tool checks itself when called (:data:`_CHECKED_IN_CODE`), nor the
    args model's docstring: the same arguments, descriptions and defaults in about 20% fewer tokens."""
    spec = tool.openai_schema()
    params = {k: v for k, v in spec["function"]["parameters"].items() if k != "description"}
    return {**spec, "function": {**spec["function"], "parameters": _lean(_compact(params))}}


def _deps_schema(k: int) -> dict[str, Any]:
    # Step k may only name s1..s(k-1): a self- or forward dependency cannot even be written.
    if k == 1:
        return {"const": []}
    return {"type": "array", "items": {"enum": [f"s{i}" for i in range(1, k)]},
            "maxItems": min(k - 1, ARRAY_MAX)}


def draft_schema(tools: list[Tool], max_steps: int) -> dict[str, Any]:
    """The JSON Schema of the planner's reply (see the module docstring)::

        {"steps": {"s1": {"call": {"tool": "list_files", "args": {...}}, "depends_on": [], "title": "..."},
                   "s2": {"prompt": "...", "depends_on": ["s1"], "title": "..."}}}

    Everything but ``depends_on`` is shared through ``$defs``, so the schema grows with
    tools + steps, not tools x steps.
    """
    defs: dict[str, Any] = {
        "title": {"type": "string", "minLength": 1, "maxLength": TITLE_MAX},
        "prompt": {"type": "string", "minLength": 1, "maxLength": PROMPT_MAX},
        "approval": {"type": "boolean"},
    }
    calls: list[dict[str, Any]] = []
    for i, t in enumerate(tools):
        defs[f"args{i}"] = tool_args_schema(t)
        calls.append({
            "type": "object",
            "properties": {"tool": {"const": t.name}, "args": {"$ref": f"#/$defs/args{i}"}},
            "required": ["tool", "args"],
            "additionalProperties": False,
        })
    defs["call"] = {"anyOf": calls}
    heads = ("call", "prompt") if calls else ("prompt",)  # an empty anyOf is no valid grammar
    slots: dict[str, Any] = {}
    for k in range(1, max_steps + 1):
        defs[f"deps{k}"] = _deps_schema(k)
        # The call (or prompt) comes first: the model commits to what the step does before
        # anything else, and the grammar's branches part at the first key (fast decoding).
        slots[f"s{k}"] = {"anyOf": [
            {
                "type": "object",
                "properties": {
                    head: {"$ref": f"#/$defs/{head}"},
                    "depends_on": {"$ref": f"#/$defs/deps{k}"},
                    "title": {"$ref": "#/$defs/title"},
                    "requires_approval": {"$ref": "#/$defs/approval"},
                },
                "required": [head, "depends_on", "title"],
                "additionalProperties": False,
            }
            for head in heads
        ]}
    return {
        "$defs": defs,
        "type": "object",
        "properties": {
            "steps": {"type": "object", "properties": slots, "required": ["s1"], "additionalProperties": False}
        },
        "required": ["steps"],
        "additionalProperties": False,
    }


def hosted_draft_schema(tools: list[Tool], max_steps: int, *, investigate: bool = False) -> dict[str, Any]:
    """The draft schema for a hosted model: the same draft shape as :func:`draft_schema` (slots
    ``s1..s<max_steps>``, ``s1`` required, a call or a prompt per step), but every slot refers to
    one shared ``$defs/step`` and ``depends_on`` is a bounded list of step ids, so the schema does
    not grow with the steps. The per-slot dependency enums are a grammar aid for the local model; a
    hosted model's self- and dangling dependencies and cycles are caught by
    :func:`agentcli.planning.planner.interpret_draft` and re-asked.
    The steps are any ``s<N>`` keys (at most ``max_steps``), so the schema is the same for a first
    plan and for every re-plan, whose steps are numbered after the kept ones: one byte-identical
    prefix for a provider's prompt cache. The numbering is checked in code
    (:func:`agentcli.planning.planner.interpret_draft`) and re-asked, as other problems are.
    A call names one of the tools (an enum) and gives its args as an object: the arguments of each
    tool are in the request once, as its signature in the catalogue (:func:`tool_catalogue`), and a
    draft's args are checked against the tool's own schema in code, every problem re-asked
    (:func:`agentcli.planning.plan.validate_steps`), as the grammar cannot do for a hosted model. Every
    other object is closed (``additionalProperties: false``); a step is one object whose head (``call``,
    ``prompt``, or with ``investigate`` also ``{"investigate": QUESTION, ...}``: :data:`INVESTIGATE_RULE`)
    is one of its properties, exactly one of them required (``oneOf``), and a prompt may be longer than
    the grammar's.
    """
    # One step object: what every kind of step has is written once, each kind's head is an optional
    # property, and ``oneOf`` its required key says a step has exactly one head (the code checks it
    # too: interpret_draft). Three anyOf branches repeating the shared properties cost ~150 tokens.
    text = {"type": "string", "minLength": 1, "maxLength": HOSTED_PROMPT_MAX}
    props: dict[str, Any] = {}
    if tools:  # an empty enum is no valid schema
        # The tool by name; its args an object, checked against the tool's own schema in code
        # (validate_steps) and re-asked: each tool's arguments are written once in the request, as
        # the catalogue's signature (tool_catalogue), not again here (about 1,100 tokens a request).
        props["call"] = {
            "type": "object",
            "properties": {"tool": {"enum": [t.name for t in tools]}, "args": {"type": "object"}},
            "required": ["tool", "args"],
            "additionalProperties": False,
        }
    props["prompt"] = {"$ref": "#/$defs/text"}
    if investigate:
        props["investigate"] = {"$ref": "#/$defs/text"}
    heads = list(props)
    props.update({
        # An llm step may declare its answer's shape (Step.answer); only a tool step runs a command,
        # so only a tool step's expected exit codes are read (the others are ignored).
        "answer": {"enum": ["text", "json", "edits"]}, "answer_schema": {"type": "object"},
        "expect_exit_codes": {"type": "array", "items": {"type": "integer"}, "maxItems": 16},
        "depends_on": {"type": "array", "items": {"type": "string", "pattern": STEP_ID_RE.pattern},
                       "maxItems": min(max(max_steps - 1, 0), ARRAY_MAX)},
        "title": {"type": "string", "minLength": 1, "maxLength": TITLE_MAX},
        "requires_approval": {"type": "boolean"},
    })
    step: dict[str, Any] = {"type": "object", "properties": props, "required": ["depends_on", "title"],
                            "additionalProperties": False}
    if len(heads) > 1:
        step["oneOf"] = [{"required": [h]} for h in heads]
    else:
        step["required"] = [*heads, "depends_on", "title"]
    return {
        "$defs": {"step": step, "text": text},
        "type": "object",
        "properties": {
            "steps": {"type": "object", "patternProperties": {STEP_ID_RE.pattern: {"$ref": "#/$defs/step"}},
                      "minProperties": 1, "maxProperties": max_steps, "additionalProperties": False}
        },
        "required": ["steps"],
        "additionalProperties": False,
    }


# --------------------------------------------------------------------------- the workspace

_LANGUAGES = {
    ".py": "Python", ".js": "JavaScript", ".jsx": "JavaScript", ".ts": "TypeScript", ".tsx": "TypeScript",
    ".rs": "Rust", ".go": "Go", ".java": "Java", ".kt": "Kotlin", ".rb": "Ruby", ".php": "PHP",
    ".c": "C", ".h": "C", ".cc": "C++", ".cpp": "C++", ".hpp": "C++", ".cs": "C#", ".swift": "Swift",
    ".sh": "Shell", ".md": "Markdown", ".html": "HTML", ".css": "CSS", ".toml": "TOML",
    ".yaml": "YAML", ".yml": "YAML", ".json": "JSON", ".sql": "SQL",
}
_KEY_FILES = ("README.md", "README.rst", "README", "pyproject.toml", "package.json", "Cargo.toml",
              "go.mod", "setup.py", "requirements.txt", "Makefile")


def _head(path: Path, max_chars: int, max_lines: int) -> str:
    # Only the first few KB are read: a key file may be huge (a generated README).
    with path.open("rb") as f:
        raw = f.read(max_chars * 4)
    lines = raw.decode("utf-8", errors="replace").splitlines()[:max_lines]
    text = "\n".join(line.rstrip() for line in lines)
    return text[:max_chars]


#: The most a manifest's digest holds: about a file head's room (tokens are paid in every planner request).
DIGEST_MAX_CHARS = 700
#: A test script's command is shown up to this many characters, another script's up to SCRIPT_CHARS.
TEST_SCRIPT_CHARS = 100
SCRIPT_CHARS = 32
#: Dependency names shown per list before "+N more".
DEPENDENCY_NAMES = 12


def _clip(text: Any, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _names(items: Any, n: int) -> str:
    names = [str(x) for x in items]
    more = len(names) - n
    return ", ".join(names[:n]) + (f", +{more} more" if more > 0 else "")


def _scripts(scripts: dict[str, Any], terse: bool) -> list[str]:
    """Every script: a test script (named ``test``, ``pretest``, ``test:e2e``, ...) with its
    command, the others with theirs cut short, or by name alone when ``terse``."""
    tests = [k for k in scripts if "test" in k.lower()]
    others = [k for k in scripts if k not in tests]
    lines = [f"scripts ({len(scripts)}):"]
    lines += [f"  {k}: {_clip(scripts[k], TEST_SCRIPT_CHARS if k in ('test', 'pretest') or not terse else 40)}"
              for k in tests]
    if others:
        lines.append("  " + (", ".join(others) if terse else
                             "; ".join(f"{k}: {_clip(scripts[k], SCRIPT_CHARS)}" for k in others)))
    return lines


def _package_json_digest(raw: bytes, terse: bool) -> list[str]:
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    ident = " ".join(str(data[k]) for k in ("name", "version") if isinstance(data.get(k), str))
    facts = [ident] if ident else []
    for key in ("type", "main"):
        if isinstance(data.get(key), str):
            facts.append(f"{key}: {data[key]}")
    exports = data.get("exports")
    if isinstance(exports, str):
        facts.append(f"exports: {exports}")
    elif isinstance(exports, dict):  # the entry points, not each one's conditions
        facts.append("exports: " + _clip(", ".join(exports), 60))
    bin_ = data.get("bin")
    if isinstance(bin_, str):
        facts.append(f"bin: {bin_}")
    elif isinstance(bin_, dict):
        facts.append("bin: " + _clip(", ".join(f"{k} -> {v}" for k, v in bin_.items()), 80))
    lines = ["; ".join(facts)] if facts else []
    scripts = data.get("scripts")
    if isinstance(scripts, dict) and scripts:
        lines += _scripts(scripts, terse)
    for key in ("dependencies", "peerDependencies", "devDependencies"):
        deps = data.get(key)
        if isinstance(deps, dict) and deps:
            lines.append(f"{key} ({len(deps)}): {_names(deps, DEPENDENCY_NAMES // (2 if terse else 1))}")
    return lines


def _requirement_name(req: Any) -> str:
    """``litellm==1.106.2`` -> ``litellm`` (a PEP 508 requirement's name and extras)."""
    text = str(req).strip()
    end = next((i for i, c in enumerate(text) if c in " <>=!~;@(" ), len(text))
    return text[:end]


def _pyproject_digest(raw: bytes, terse: bool) -> list[str]:
    import tomllib

    data = tomllib.loads(raw.decode("utf-8"))
    tool: dict[str, Any] = data["tool"] if isinstance(data.get("tool"), dict) else {}
    project: dict[str, Any] = data["project"] if isinstance(data.get("project"), dict) else \
        tool["poetry"] if isinstance(tool.get("poetry"), dict) else {}  # Poetry keeps it under [tool.poetry]
    lines: list[str] = []
    dynamic: list[Any] = project["dynamic"] if isinstance(project.get("dynamic"), list) else []
    version = project.get("version") or ("(version dynamic)" if "version" in dynamic else "")
    ident = " ".join(str(x) for x in (project.get("name", ""), version) if x)
    facts = [f"project: {ident}"] if ident else []
    if isinstance(project.get("requires-python"), str):
        facts.append(f"requires-python: {project['requires-python']}")
    if facts:
        lines.append("; ".join(facts))
    n = DEPENDENCY_NAMES // (2 if terse else 1)
    deps = project.get("dependencies")
    if isinstance(deps, list) and deps:
        lines.append(f"dependencies ({len(deps)}): {_names((_requirement_name(d) for d in deps), n)}")
    elif isinstance(deps, dict) and deps:  # Poetry: a table, python among them
        named = [k for k in deps if k != "python"]
        lines.append(f"dependencies ({len(named)}): {_names(named, n)}")
    extras = project.get("optional-dependencies")
    if isinstance(extras, dict) and extras:
        lines.append("optional-dependencies: " + _clip(", ".join(extras), 80))
    scripts = project.get("scripts")
    if isinstance(scripts, dict) and scripts:
        lines.append("scripts: " + _clip("; ".join(f"{k} = {v}" for k, v in scripts.items()), 160))
    pytest = tool.get("pytest", {}).get("ini_options") if isinstance(tool.get("pytest"), dict) else None
    if isinstance(pytest, dict) and pytest:
        lines.append("[tool.pytest.ini_options] " + "; ".join(
            f"{k} = {_clip(json.dumps(v), 40 if terse else 80)}" for k, v in pytest.items()))
    return lines


_DIGESTS: dict[str, Callable[[bytes, bool], list[str]]] = {
    "package.json": _package_json_digest, "pyproject.toml": _pyproject_digest}


def _digest(path: Path, name: str) -> str | None:
    """A manifest's digest: what a planner needs of it (name and version, entry points, every
    script, the test configuration, dependency names), within DIGEST_MAX_CHARS, terser when the
    full one does not fit; ``None`` for a file that is not a known manifest or does not parse
    (its head is shown instead). A function of the file alone, so the prompt prefix stays cached."""
    make = _DIGESTS.get(name)
    if make is None:
        return None
    with path.open("rb") as f:
        raw = f.read(512_000)
    text = ""
    for terse in (False, True):
        try:
            lines = make(raw, terse)
        except (ValueError, UnicodeDecodeError, AttributeError, TypeError):
            return None
        text = "\n".join(lines)
        if len(text) <= DIGEST_MAX_CHARS:
            return text or None
    cut = text[: DIGEST_MAX_CHARS - 6]
    return cut[: cut.rfind("\n") + 1 or len(cut)] + "[...]"


def workspace_summary(
    workspace: Path, data_dir: Path | None = None, *, max_chars: int = 1800, max_files: int = 2000,
    shell: ShellView | None = None,
) -> str:
    """A compact, bounded description of the workspace for the planner: top-level entries,
    file count and languages (from extensions; .gitignored, .git and .venv skipped, at most
    ``max_files`` visited), and up to three key files: a manifest (``package.json``,
    ``pyproject.toml``) as its digest, the others by their head. Given what a command sees
    (``shell``), the test environment's traps follow, each with what works here
    (:mod:`agentcli.planning.testenv`; nothing when there are none), never cut."""
    walker = WorkspaceWalker(workspace, data_dir)
    root = walker.root
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as e:
        raise WorkspaceError(f"cannot list workspace {root}: {e.strerror}") from None
    top = [f"{e.name}/" if e.is_dir() else e.name for e in entries
           if not walker.is_ignored(e.name, is_dir=e.is_dir())]
    shown = ", ".join(top[:40]) + (f", ... ({len(top)} in all)" if len(top) > 40 else "")
    langs: Counter[str] = Counter()
    count = 0
    for _path, rel in walker.iter_files():
        count += 1
        lang = _LANGUAGES.get(os.path.splitext(rel)[1].lower())
        if lang:
            langs[lang] += 1
        if count >= max_files:
            break
    more = "+" if count >= max_files else ""
    lines = [
        f"top level: {shown or '(empty)'}",
        f"files: {count}{more}",
        "languages: " + (", ".join(f"{k} ({v})" for k, v in langs.most_common(6)) or "none detected"),
    ]
    keys = [n for n in _KEY_FILES if (root / n).is_file() and not walker.is_ignored(n, is_dir=False)][:3]
    for name in keys:
        try:
            digest = _digest(root / name, name)
            if digest is not None:
                lines.append(f"--- {name} (digest)\n{digest}")
                continue
            head = _head(root / name, 300, 12)
        except OSError:
            continue
        lines.append(f"--- {name} (head)\n{head}")
    text = "\n".join(lines)
    text = text if len(text) <= max_chars else text[: max_chars - 15] + "\n[... cut ...]"
    note = environment_note(workspace, shell) if shell is not None else ""
    return f"{text}\n{note}" if note else text


# --------------------------------------------------------------------------- the prompt

_SYSTEM = """You are the planner of a developer agent. Turn the task into a short plan.
Reply with only a JSON object: {"steps": {"s1": {...}, "s2": {...}, ...}}.
Steps are named s1, s2, s3, ... in order. Each step is either
- a tool step: {"call": {"tool": "<tool name>", "args": {...}}, "depends_on": [], "title": "..."}
- or an llm step: {"prompt": "...", "depends_on": [], "title": "..."}, for work whose content
  depends on earlier results (writing code, summarising findings); another model answers it.
To use the output of an earlier step, write {{s1.output}} in args or a prompt, or a path into
JSON output: {{s2.output[0]}}, {{s3.output.matches[1].path}}.
depends_on lists the earlier steps whose output a step uses; it is [] for s1.
Add "requires_approval": true to a step the user should confirm first.
Use only the tools listed, with their exact argument names. Use as few steps as the task needs."""


#: The reference examples of the hosted planner's prompt, each with the tool whose declared output
#: it reaches into (tests check that every one resolves).
HOSTED_REFERENCE_EXAMPLES = {"{{s2.output[0].file}}": "search_code", "{{s3.output.exit_code}}": "run_shell"}

_HOSTED_SYSTEM = """You are the planner of a developer agent. Reply with only a JSON plan for the task, as few steps as
it needs: {"steps": {"s1": {...}, "s2": {...}, ...}}, numbered in order, each with "depends_on", a "title"
and either
- "call": {"tool": "<tool name>", "args": {...}}: a tool step (only the tools listed, with their exact
  argument names), or
- "prompt": "...": an llm step; another model, seeing only the prompt, writes what depends on earlier
  results (code, text a step writes); "answer": "text" (the default), "json" (optional "answer_schema") or
  "edits" (a list of {path, search, replace}). The run's answer (at most {answer} characters) is written
  after the steps from their outputs (each shown up to {shown} characters): no llm step only to write
  it, unless it needs more.
depends_on: the earlier steps whose output a step uses ([] for s1). Steps run in parallel once their
depends_on are done: one that must follow another (two edits to one file, tests after an edit) lists it.
"requires_approval": true: the user confirms the step first.
{{sN.output}} in args or a prompt is sN's output; a path reaches into it by the tool's -> shape:
{{s2.output[0].file}} is search_code's first match's file, {{s3.output.exit_code}} run_shell's exit code;
a "json" step's output is its JSON value. A prompt gets an output as text (a file as it is).
Change a file: read_file it; an llm step with "answer": "edits" whose prompt holds the file ({{sN.output}})
and says what to change; apply_edits {"edits": "{{sM.output}}"}, sM that llm step (only changed lines are
written, each search text checked first). New files: write_file.
An llm step's answer is at most {limit} tokens (~{lines} lines of code): stay within it (edits, not a
long file rewritten)."""


def hosted_system(step_output_tokens: int) -> str:
    """The hosted planner's rules, with the output limit of an llm step."""
    # About 10 tokens a line of code (measured on python-slugify: 1,057 tokens for 112 lines).
    return (_HOSTED_SYSTEM.replace("{limit}", str(step_output_tokens))
            .replace("{answer}", f"{REVIEW_ANSWER_CHARS:,}").replace("{shown}", f"{REVIEW_OUTPUT_CHARS:,}")
            .replace("{lines}", str(max(step_output_tokens // 10, 1))))


_TYPE_WORDS = {"string": "text", "integer": "int", "number": "number", "boolean": "bool", "object": "object"}


def _arg_type(node: Any, depth: int = 0) -> str:
    """An argument's JSON Schema as a short type: ``text``, ``int 1-20``, ``"log"|"show"``,
    ``list of {path: text, search: text}``; ``any`` for what it cannot say briefly."""
    if not isinstance(node, dict) or depth > 4:
        return "any"
    if "enum" in node:
        return "|".join(json.dumps(v) for v in node["enum"])
    if "const" in node:
        return json.dumps(node["const"])
    alts = node.get("anyOf") or node.get("oneOf")
    if isinstance(alts, list):
        kinds = [_arg_type(a, depth + 1) for a in alts if a != {"type": "null"}]
        return " or ".join(dict.fromkeys(kinds)) or "any"
    kind = node.get("type")
    if isinstance(kind, list):  # ["integer", "null"]: an optional argument, written compactly
        kinds = [k for k in kind if k != "null"]
        if len(kinds) != 1:
            return " or ".join(_arg_type({**node, "type": k}, depth + 1) for k in kinds) or "any"
        kind = kinds[0]
    if kind == "array":
        return f"list of {_arg_type(node.get('items', {}), depth + 1)}"
    if kind == "object" and node.get("properties"):
        return "{" + ", ".join(f"{k}: {_arg_type(v, depth + 1)}" for k, v in node["properties"].items()) + "}"
    word = _TYPE_WORDS.get(str(kind), "any")
    if kind in ("integer", "number") and "minimum" in node and "maximum" in node:
        word += f" {node['minimum']:g}-{node['maximum']:g}"
    return word


def tool_signature(tool: Tool) -> str:
    """A tool's arguments as one line, from its own schema: ``read_file(path: text, start_line?: int,
    end_line?: int)``; ``?`` marks an optional argument, ``= value`` its default (when not null)."""
    schema = tool_args_schema(tool, bounded=False)
    required = set(schema.get("required", []))
    args = []
    for name, sub in (schema.get("properties") or {}).items():
        opt = "" if name in required else "?"
        default = sub.get("default") if isinstance(sub, dict) else None
        shown = f" = {json.dumps(default)}" if default is not None and name not in required else ""
        args.append(f"{name}{opt}: {_arg_type(sub)}{shown}")
    return f"{tool.name}({', '.join(args)})"


#: The first line of a hosted planner's tool catalogue: how to read an entry.
HOSTED_CATALOGUE_NOTE = ("name(arguments; ? optional, = default) [risk, approval] -> output shape (text when "
                         "not shown): what it does (not said of the tools you are given).")


def tool_catalogue(tools: list[Tool], config: Config, *, hosted: bool = False,
                   given: frozenset[str] = frozenset()) -> str:
    """One entry per tool: name, risk and approval policy, description, args JSON Schema. For a
    ``hosted`` planner the arguments as a one-line signature (:func:`tool_signature`: the only place
    its request gives them, the draft schema naming the tool only) and the shape of its output
    (``-> shape``; left out when it is text, ``any`` when the tool declares none); a tool in ``given``
    (sent as a callable tool with the request, with its description and arguments: the survey's) is
    named, with its policy and output, not described again."""
    out = [HOSTED_CATALOGUE_NOTE] if hosted else []
    for t in tools:
        policy = getattr(config.approval, t.risk, "ask")
        note = {"auto": "runs without asking", "ask": "needs approval", "deny": "denied: do not use"}[policy]
        if not hosted:
            out.append(f"- {t.name} [{t.risk}, {note}]: {' '.join(t.description.split())}"
                       f"\n  args: {json.dumps(t.parameters_schema(), separators=(',', ':'))}")
            continue
        shape = t.output_shape()
        entry = f"- {t.name if t.name in given else tool_signature(t)} [{t.risk}, {note}]"
        if shape != "text":
            entry += f" -> {shape}"
        if t.name not in given:
            entry += f": {' '.join(t.description.split())}"
        out.append(entry)
    return "\n".join(out)


_HOSTED_RULES = """
A run_shell step fails on a non-zero exit code unless "expect_exit_codes" lists it (e.g. [0, 1]: grep
finding nothing). Do not pipe into tail or head: the exit code would be lost; the output's end is shown.
Read what you will change; change only what the task needs."""


#: What a hosted planner is told about investigate steps (when its schema offers them).
INVESTIGATE_RULE = """
For a fact the plan needs that no read shows (why a test fails, what a command prints, which commit
changed a behaviour): an investigate step {"investigate": "the question", ...}; a model answers it with
read-only tools and commands (tests run, nothing changes): {"established": ..., "evidence": [...],
"commands": [{"command", "exit_code"}]}. An "edits" llm step can fix what it found (evidence quotes lines
exactly; the file read in a step or named in the question)."""


def survey_rule(calls: int) -> str:
    """What a hosted planner is told when it may look before it plans."""
    return (f"\nBefore the plan you may call the read-only tools you are given (at most {calls} calls, all in one "
            "reply: they run together) for what the plan depends on (a file you will change, the tests pinning "
            "it; search_code with \"context\" shows the code around each match). An edit written from text so "
            "read may go straight into apply_edits (checked when it runs); else steps read the files they "
            "change.")


def build_messages(task: str, tools: list[Tool], config: Config, summary: str,
                   memories: list[str], context: str | None = None, *, hosted: bool = False,
                   step_output_tokens: int = 1024, repo_map: str = "", survey_calls: int = 0,
                   ledger: str = "", investigate: bool = False,
                   survey_tools: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """The planner's request. A small model's: rules, then task, tools, budgets, workspace, recalled
    memory and (when re-planning) what happened so far, exactly as it was measured.

    A ``hosted`` planner's request is laid out for a provider's prompt cache, what is stable first
    and what changes last: the system message holds the rules (answer shapes, edits, the output
    limit of an llm step (``step_output_tokens``), how steps run and fail, the survey of
    ``survey_calls`` read-only calls), the tool catalogue (the ``survey_tools``, sent as callable
    tools with the request, named but not described again), the step budget and the verification rule,
    all fixed for a configuration; the user message holds the workspace summary, the repository map
    (:mod:`agentcli.planning.repomap`, ranked for the task), recalled memory, the session's ledger
    of earlier turns (``ledger``, its own section: it grows by a turn at a time, so it comes after
    what a provider's cache can serve from the previous turn's request), the re-plan context, and
    the task last."""
    b = config.budget
    budgets = (f"at most {b.max_steps} steps; model spend <= ${b.max_cost_usd:g}; "
               f"<= {b.max_tokens} tokens; <= {b.max_seconds:g} s")
    if hosted:
        # Only the step budget shapes a draft; spend, tokens and time are checked in code as the run goes
        # (a capable model's plan is already as short as the task allows).
        return _hosted_messages(task, tools, config, summary, memories, context, f"at most {b.max_steps} steps",
                                step_output_tokens=step_output_tokens, repo_map=repo_map, survey_calls=survey_calls,
                                ledger=ledger, investigate=investigate, survey_tools=survey_tools)
    parts = [f"# Task\n{task}", f"# Tools\n{tool_catalogue(tools, config)}",
             f"# Budgets\n{budgets}", f"# Workspace\n{summary}"]
    if memories:
        parts.append("# Recalled from earlier runs\n" + "\n".join(f"- {m}" for m in memories))
    if ledger:
        parts.append(ledger_section(ledger))
    if context:
        cut = context if len(context) <= CONTEXT_MAX_CHARS else context[:CONTEXT_MAX_CHARS] + "\n[... cut ...]"
        parts.append(f"# Context\n{cut}")
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


def _hosted_messages(task: str, tools: list[Tool], config: Config, summary: str, memories: list[str],
                     context: str | None, budgets: str, *, step_output_tokens: int, repo_map: str,
                     survey_calls: int, ledger: str = "", investigate: bool = False,
                     survey_tools: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    system = hosted_system(step_output_tokens) + _HOSTED_RULES
    if investigate:
        system += INVESTIGATE_RULE
    if survey_calls > 0:
        system += survey_rule(survey_calls)
    given = survey_tools if survey_calls > 0 else frozenset()
    stable = [system, f"# Tools\n{tool_catalogue(tools, config, hosted=True, given=given)}", f"# Budgets\n{budgets}"]
    if config.verify.command:
        stable.append(f"# Verification\nWhen the steps are done, if files changed, `{config.verify.command}` runs "
                      "in the workspace; if it fails you are asked for a new plan with its output. Run it in "
                      "a step yourself when the plan needs its result.")
    parts = [f"# Workspace\n{summary}"]
    if repo_map:
        parts.append(f"# Repository map\n{repo_map}")
    if memories:
        parts.append("# Recalled from earlier runs\n" + "\n".join(f"- {m}" for m in memories))
    if ledger:
        parts.append(ledger_section(ledger))
    if context:
        # The end of the context is the newest: what just failed. Keep it whole.
        parts.append(f"# Context\n{head_tail(context, HOSTED_CONTEXT_MAX_CHARS, head_share=0.4)}")
    parts.append(f"# Task\n{task}")
    return [{"role": "system", "content": "\n\n".join(stable)}, {"role": "user", "content": "\n\n".join(parts)}]


#: The heading of the session's ledger in a planner request.
LEDGER_HEADING = "# Earlier turns of this session"


def ledger_section(ledger: str) -> str:
    """The planner request's section holding a session's ledger of earlier turns (built and
    folded to its budget by :mod:`agentcli.record.ledger`; whole here, never cut again)."""
    return f"{LEDGER_HEADING}\n{ledger}"


def recall_snippets(recall: Recall | None, task: str) -> list[str]:
    """What the memory hook recalls for ``task``, bounded: at most 5 snippets of 400 chars."""
    if recall is None:
        return []
    out = []
    for item in recall(task)[:MEMORY_MAX_ITEMS]:
        text = " ".join(str(item).split())
        out.append(text if len(text) <= MEMORY_ITEM_CHARS else text[:MEMORY_ITEM_CHARS] + "...")
    return out
