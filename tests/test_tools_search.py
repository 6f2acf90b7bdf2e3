"""search_code: the reference schema, literal and regex matching, skipped files."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agentcli.config import load_settings
from agentcli.tools import ToolRegistry, ToolResult, build_registry


def make_registry(ws: Path, **tools_cfg: Any) -> ToolRegistry:
    overrides = {f"tools.{k}": v for k, v in tools_cfg.items()}
    settings = load_settings(workspace=ws, use_user_config=False, environ={}, overrides=overrides)
    return asyncio.run(build_registry(settings, plugins=False, mcp=False))


def search(reg: ToolRegistry, **args: Any) -> ToolResult:
    return asyncio.run(reg.call("search_code", args))


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text("import os\n\nclass Parser:\n    def parse(self):\n        return 1\n")
    (tmp_path / "notes.md").write_text("The Parser reads input.\nparser notes\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "util.py").write_text("def helper():\n    return Parser()\n")
    (tmp_path / "data.bin.py").write_bytes(b"class Parser\x00\x01")
    (tmp_path / "other.rb").write_text("class Parser\n")
    return tmp_path


def test_schema_is_the_reference_one(ws: Path) -> None:
    reg = make_registry(ws)
    params = reg.get("search_code").openai_schema()["function"]["parameters"]  # type: ignore[union-attr]
    props = params["properties"]
    assert set(props) == {"query", "glob", "max_results", "regex", "context"}
    assert (props["context"]["minimum"], props["context"]["default"]) == (0, 0) and "maximum" not in props["context"]
    assert params["required"] == ["query"] and params["additionalProperties"] is False
    assert (props["query"]["minLength"], props["query"]["maxLength"]) == (1, 200)
    assert (
        props["max_results"]["minimum"],
        props["max_results"]["maximum"],
        props["max_results"]["default"],
    ) == (
        1,
        20,
        5,
    )
    assert props["regex"] == {
        "default": False,
        "description": props["regex"]["description"],
        "type": "boolean",
    }
    text = next(s for s in props["glob"]["anyOf"] if s.get("type") == "string")
    assert (text["minLength"], text["maxLength"]) == (1, 200)


def test_literal_search_returns_file_line_snippet(ws: Path) -> None:
    res = search(make_registry(ws), query="class Parser")
    assert res.ok
    assert res.output == [{"file": "app.py", "line": 3, "snippet": "class Parser:"},
                          {"file": "other.rb", "line": 1, "snippet": "class Parser"}]


def test_a_snippet_keeps_its_indentation(ws: Path) -> None:
    # A model copies an edit's search text from it: the line as it is in the file.
    (ws / "indented.py").write_text("class A:\n    def method_xyz(self):\n        return 1\n")
    [hit] = search(make_registry(ws), query="def method_xyz").output
    assert hit["snippet"] == "    def method_xyz(self):"


def test_smart_case_and_every_text_file(ws: Path) -> None:
    reg = make_registry(ws)
    hits = search(reg, query="parser", max_results=20).output
    assert {(h["file"], h["line"]) for h in hits} == {
        ("app.py", 3),
        ("notes.md", 1),
        ("notes.md", 2),
        ("lib/util.py", 2),
        ("other.rb", 1),
    }
    hits = search(reg, query="Parser", glob="*.md").output
    assert [(h["file"], h["line"]) for h in hits] == [("notes.md", 1)]


def test_javascript_and_typescript_files_of_every_kind_are_searched(ws: Path) -> None:
    # .mjs, .cjs, .jsx and .tsx were invisible to a search by a fixed list of extensions.
    for name in ("esm.mjs", "common.cjs", "view.jsx", "src/app.tsx", "src/deep/types.ts", "Makefile", "run.bash"):
        (ws / name).parent.mkdir(parents=True, exist_ok=True)
        (ws / name).write_text("export const needleValue = 1\n")
    reg = make_registry(ws)
    every = {h["file"] for h in search(reg, query="needleValue", max_results=20).output}
    assert every == {"esm.mjs", "common.cjs", "view.jsx", "src/app.tsx", "src/deep/types.ts", "Makefile", "run.bash"}
    by_glob = {
        "*.tsx": {"src/app.tsx"},
        "*.{ts,tsx}": {"src/app.tsx", "src/deep/types.ts"},
        "src/**": {"src/app.tsx", "src/deep/types.ts"},
        "src/*": {"src/app.tsx"},
        "./src/**/*.ts": {"src/deep/types.ts"},
        "*.?js": {"esm.mjs", "common.cjs"},
        "Makefile": {"Makefile"},
    }
    for glob, want in by_glob.items():
        assert {h["file"] for h in search(reg, query="needleValue", glob=glob, max_results=20).output} == want, glob


def test_a_glob_cannot_leave_the_workspace(ws: Path) -> None:
    reg = make_registry(ws)
    for glob in ("../*.py", "/etc/*", "src/../../x"):
        res = search(reg, query="Parser", glob=glob)
        assert res.error is not None and res.error.type == "path_outside_workspace", glob


def test_regex_and_max_results(ws: Path) -> None:
    reg = make_registry(ws)
    hits = search(reg, query=r"def \w+\(", regex=True).output
    assert [(h["file"], h["line"]) for h in hits] == [("app.py", 4), ("lib/util.py", 1)]
    assert search(reg, query="def (", regex=False).ok  # literal: no regex parsing
    assert len(search(reg, query="parser", max_results=1).output) == 1


@pytest.mark.parametrize(
    ("args", "loc", "err_type"),
    [
        ({}, ["query"], "missing"),
        ({"query": ""}, ["query"], "string_too_short"),
        ({"query": "x" * 201}, ["query"], "string_too_long"),
        ({"query": "abc", "max_results": 0}, ["max_results"], "greater_than_equal"),
        ({"query": "abc", "max_results": 21}, ["max_results"], "less_than_equal"),
        ({"query": "abc", "glob": ""}, ["glob"], "string_too_short"),
        ({"query": "abc", "extensions": [".py"]}, ["extensions"], "extra_forbidden"),
        ({"query": "abc", "regex": "maybe"}, ["regex"], "bool_parsing"),
        ({"query": "abc", "context": -1}, ["context"], "greater_than_equal"),
        ({"query": "abc", "path": "src"}, ["path"], "extra_forbidden"),
        ({"query": "a(b", "regex": True}, [], "value_error"),
    ],
)
def test_invalid_args(ws: Path, args: dict[str, Any], loc: list[Any], err_type: str) -> None:
    res = search(make_registry(ws), **args)
    assert res.error is not None and res.error.type == "invalid_args"
    assert res.error.details[0]["loc"] == loc and res.error.details[0]["type"] == err_type


def test_the_old_extensions_setting_still_loads_and_changes_nothing(ws: Path) -> None:
    reg = make_registry(ws, search_extensions=[".py"])
    assert [h["file"] for h in search(reg, query="class Parser", glob="*.rb").output] == ["other.rb"]


def test_skips_binary_huge_and_ignored_files(ws: Path) -> None:
    (ws / ".gitignore").write_text("generated/\n")
    (ws / "generated").mkdir()
    (ws / "generated" / "g.py").write_text("class Parser\n")
    (ws / "big.py").write_text("class Parser\n" + "x = 1\n" * 1000)
    (ws / ".venv").mkdir()
    (ws / ".venv" / "v.py").write_text("class Parser\n")
    hits = search(make_registry(ws, max_file_bytes=2000), query="class Parser", max_results=20).output
    assert [h["file"] for h in hits] == ["app.py", "other.rb"]  # not data.bin.py (binary), big.py, generated/, .venv/


def test_long_snippets_are_cut(ws: Path) -> None:
    (ws / "long.py").write_text("needle " + "y" * 1000 + "\n")
    hit = search(make_registry(ws), query="needle").output[0]
    assert len(hit["snippet"]) <= 210 and hit["snippet"].endswith("...")


def test_context_shows_the_lines_around_each_match_as_read_file_numbers_them(ws: Path) -> None:
    # A search with context stands for the read that would follow it: the survey's one round.
    lines = [f"line {i}" for i in range(1, 31)]
    lines[9] = "    target = 1  # first"
    lines[11] = "    target = 2  # inside the first's context"
    lines[25] = "target = 3"
    (ws / "m.js").write_text("\r\n".join(lines) + "\r\n")
    reg = make_registry(ws)
    hits = search(reg, query="target =", context=3, max_results=20).output
    assert hits == [
        {"file": "m.js", "line": 10, "from_line": 7, "snippet": "\n".join(lines[6:15])},
        # Already shown with the first match: only its line, not the same lines again.
        {"file": "m.js", "line": 12, "snippet": lines[11]},
        {"file": "m.js", "line": 26, "from_line": 23, "snippet": "\n".join(lines[22:29])},
    ]
    read = asyncio.run(reg.call("read_file", {"path": "m.js", "start_line": 7, "end_line": 15})).output
    assert read.replace("\r\n", "\n").rstrip("\n") == hits[0]["snippet"]
    # At a file's start and end the context stops there; without context nothing changes.
    first = search(reg, query="line 1", context=5, max_results=1).output[0]
    assert (first["line"], first["from_line"], first["snippet"].splitlines()[0]) == (1, 1, "line 1")
    last = search(reg, query="line 30", context=5).output[0]
    assert last["snippet"].splitlines()[-1] == "line 30"
    assert search(reg, query="target = 3").output == [{"file": "m.js", "line": 26, "snippet": "target = 3"}]


def test_a_context_over_the_most_is_taken_as_the_most(ws: Path) -> None:
    # Refusing it would cost a planner's survey a round (measured: context 45 refused, asked again).
    (ws / "big.py").write_text("".join(f"x{i} = {i}\n" for i in range(1, 400)) + "needle = 1\n"
                               + "".join(f"y{i} = {i}\n" for i in range(1, 400)))
    [hit] = search(make_registry(ws), query="needle", context=500).output
    assert (hit["line"], hit["from_line"]) == (400, 300) and len(hit["snippet"].splitlines()) == 201


def test_context_lines_are_cut_like_snippets(ws: Path) -> None:
    (ws / "long.py").write_text("before " + "y" * 1000 + "\nneedle\n")
    hit = search(make_registry(ws), query="needle", context=1).output[0]
    before = hit["snippet"].splitlines()[0]
    assert len(before) <= 210 and before.endswith("...")


def test_a_one_character_query_is_a_search_like_any_other(ws: Path) -> None:
    # A decorator or an operator is a fair thing to look for; max_results bounds the answer.
    (ws / "deco.py").write_text("x = 1\n@cache\ndef f():\n    pass\n")
    res = search(make_registry(ws), query="@", glob="deco.py")
    assert res.ok and res.output == [{"file": "deco.py", "line": 2, "snippet": "@cache"}]
