"""The repository map a hosted planner sees: bounded, ranked by the task, blind to ignored files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentcli.models import tokens
from agentcli.planning.repomap import CACHE_SCHEMA_VERSION, repo_map

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # bench/mapcover.py: the count of definitions tree-sitter finds


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    ws = tmp_path / "proj"
    (ws / "pkg").mkdir(parents=True)
    (ws / "pkg" / "__init__.py").write_text("")
    (ws / "pkg" / "cli.py").write_text(
        "import argparse\nfrom pkg.core import slugify\n\n\nclass Runner:\n    def go(self, n: int = 3) -> str:\n"
        "        return ''\n\n\ndef main(argv: list[str] | None = None) -> int:\n    return 0\n")
    (ws / "pkg" / "core.py").write_text("MAX = 3\n\n\nasync def slugify(text: str, *, sep: str = '-') -> str:\n"
                                        "    return text\n")
    (ws / "tests").mkdir()
    (ws / "tests" / "test_cli.py").write_text(
        "from pkg.cli import main\n\n\ndef test_main():\n    assert main([]) == 0\n")
    (ws / "web.ts").write_text("export function render(x: number): string {\n  return ''\n}\n")
    for i in range(60):
        (ws / "pkg" / f"mod{i:02}.py").write_text("".join(f"def func_{i}_{j}(a, b=1):\n    pass\n\n\n"
                                                            for j in range(20)))
    (ws / "secret_build").mkdir()
    (ws / "secret_build" / "gen.py").write_text("def generated():\n    pass\n")
    (ws / "local_only.py").write_text("def excluded_by_info():\n    pass\n")
    (ws / ".gitignore").write_text("secret_build/\n")
    subprocess.run(["git", "init", "-q"], cwd=ws, check=True)
    (ws / ".git" / "info" / "exclude").write_text("# local\nlocal_only.py\n")
    (ws / ".agent" / "runs").mkdir(parents=True)
    (ws / ".agent" / "runs" / "note.py").write_text("def in_data_dir():\n    pass\n")
    return ws


def test_the_map_outlines_what_the_task_names_first(repo: Path) -> None:
    text = repo_map(repo, repo / ".agent", "add a --verbose flag to main in pkg/cli.py", max_tokens=1500)
    outline = text.split("outline (line, definition), most relevant first:\n", 1)[1]
    assert outline.startswith("pkg/cli.py\n")
    assert "   10 def main(argv: list[str] | None = None) -> int" in outline
    assert "    5 class Runner" in outline and "    6   def go(self, n: int = 3) -> str" in outline
    assert "pkg/: __init__.py cli.py core.py" in text  # the tree, best-ranked directories named in full


def test_the_tests_of_a_named_file_come_next_when_the_task_asks_for_a_test(repo: Path) -> None:
    text = repo_map(repo, repo / ".agent", "add a --verbose flag to pkg/cli.py and a test for it", max_tokens=1500)
    files = [line for line in text.split("most relevant first:\n", 1)[1].splitlines() if not line.startswith(" ")]
    assert files[:2] == ["pkg/cli.py", "tests/test_cli.py"]


def test_the_map_stays_within_its_budget(repo: Path) -> None:
    for budget in (200, 600, 3000):
        text = repo_map(repo, repo / ".agent", "rename slugify", max_tokens=budget)
        assert 0 < tokens.count_text(text) <= budget
    assert repo_map(repo, repo / ".agent", "anything", max_tokens=0) == ""


def test_the_map_never_shows_ignored_files_or_the_data_dir(repo: Path) -> None:
    text = repo_map(repo, repo / ".agent", "generated excluded_by_info in_data_dir", max_tokens=50_000)
    for hidden in ("secret_build", "generated", "local_only", "excluded_by_info", ".agent", "in_data_dir"):
        assert hidden not in text
    assert "web.ts" in text and "export function render(x: number): string" in text


def test_a_hosted_planner_gets_the_map_and_the_local_one_does_not(repo: Path) -> None:
    import asyncio

    from agentcli.config import load_settings
    from agentcli.models.client import LLMClient
    from agentcli.models.fakes import ScriptedModel
    from agentcli.planning.planner import make_plan
    from agentcli.tools import build_registry

    draft = {"steps": {"s1": {"call": {"tool": "read_file", "args": {"path": "pkg/cli.py"}},
                              "depends_on": [], "title": "read"}}}
    for model, expect in (("openai/gpt-4o-mini", True), ("local/smollm2", False)):
        settings = load_settings(workspace=repo, use_user_config=False, environ={},
                                 overrides={"model": model, "memory.enabled": False})
        registry = asyncio.run(build_registry(settings, plugins=False, mcp=False))
        backend = ScriptedModel([draft] * 3)
        client = LLMClient(settings.config, backend=backend)
        asyncio.run(make_plan("add a flag to main in pkg/cli.py", settings=settings, registry=registry,
                              client=client, save=False))
        sent = "\n".join(str(m["content"]) for m in backend.requests[0].messages)
        assert ("# Repository map" in sent and "def main(argv" in sent) is expect, model
        assert ("run in parallel" in sent) is expect


# --------------------------------------------------------------------------- every language

# Small repositories in the forms real code is written in (qs, React components, Go and Rust
# crates, Java services), one per language; each file is a few definitions long.
PROJECTS: dict[str, dict[str, str]] = {
    "javascript": {
        "lib/parse.js": """'use strict';
var utils = require('./utils');
var has = Object.prototype.hasOwnProperty;
var defaults = { allowDots: false, depth: 5 };
var parseValues = function parseQueryStringValues(str, options) {
    var inner = function () { return 1; };
    return inner();
};
var parseKeys = function parseQueryStringKeys(givenKey, val, options) {
    return utils.merge(givenKey, val);
};
module.exports = function (str, opts) {
    return parseKeys(str, parseValues(str, opts), opts);
};
""",
        "lib/utils.js": """'use strict';
var formats = require('./formats');
var merge = function merge(target, source, options) { return target; };
var compact = function compact(value) { return value; };
function isRegExp(obj) { return false; }
module.exports = {
    compact: compact,
    isRegExp,
    merge: merge,
    decode: function (str, decoder) { return str; },
    encode(str) { return str; }
};
""",
        "lib/formats.js": """'use strict';
module.exports = {
    'default': 'RFC3986',
    formatters: {
        RFC1738: function (value) { return value; },
        RFC3986: function (value) { return String(value); }
    }
};
""",
        "src/Button.jsx": """import React from 'react';
import { merge } from '../lib/utils';
export const Button = ({ label, onClick }) => <button onClick={onClick}>{label}</button>;
export default function Toolbar(props) { return <div>{props.children}</div>; }
export class Panel extends React.Component {
  state = { open: false };
  toggle = () => this.setState({ open: !this.state.open });
  render() { return <div />; }
}
""",
        "src/api.mjs": """import { compact } from '../lib/utils.js';
export async function fetchAll(urls) { return Promise.all(urls.map(fetch)); }
export const retry = async (fn, times = 3) => fn();
export default { compact, fetchAll };
""",
        "src/legacy.cjs": """const parse = require('../lib/parse');
exports.parseAll = function parseAll(list) { return list.map(parse); };
Store.prototype.save = function save(key, value) { this.data[key] = value; };
function Store() { this.data = {}; }
module.exports.Store = Store;
""",
    },
    "typescript": {
        "src/types.ts": """export interface Options<T = unknown> extends Base {
  depth: number;
  decoder?(value: string): T;
}
export type Id = string | number;
export enum Level { Low, High }
declare function globalHelper(x: number): string;
namespace Internal { export function hidden(): void {} }
""",
        "src/client.ts": """import { Options, Id } from './types';
import { log } from './util/log';
export abstract class Client<T> implements Runner {
  abstract connect(url: string): Promise<void>;
  private readonly retries: number = 3;
  protected handle = (e: Error): void => { log(e.message); };
  constructor(private opts: Options<T>) {}
  async get(id: Id): Promise<T | undefined> { return undefined; }
  static create<T>(opts: Options<T>): Client<T> { return new HttpClient(opts); }
}
export class HttpClient<T> extends Client<T> {
  async connect(url: string): Promise<void> {}
}
export function createClient(opts: Options): Client<unknown> { return Client.create(opts); }
export const defaultClient = createClient({ depth: 1 });
export default createClient;
""",
        "src/util/log.ts": """import { Level } from '../types';
export const log = (msg: string, level: Level = Level.Low): void => { console.log(msg); };
export function warn(msg: string): void { log(msg, Level.High); }
""",
        "src/App.tsx": """import React, { useState } from 'react';
import { createClient } from './client';
export interface AppProps { title: string }
export const App: React.FC<AppProps> = ({ title }) => {
  const [n, setN] = useState(0);
  return <h1 onClick={() => setN(n + 1)}>{title}</h1>;
};
export function useClient() { return createClient({ depth: 2 }); }
const Memo = React.memo(function Inner(props: AppProps) { return <p>{props.title}</p>; });
export default Memo;
""",
    },
    "go": {
        "go.mod": "module example.com/shop\n\ngo 1.21\n",
        "cart/cart.go": """package cart

import (
\t"fmt"

\t"example.com/shop/money"
)

// MaxItems bounds a cart.
const MaxItems = 100

type Item struct {
\tSKU   string
\tPrice money.Cents
}

type Store interface {
\tLoad(id string) (*Cart, error)
\tSave(c *Cart) error
}

type Cart struct{ Items []Item }

func New() *Cart { return &Cart{} }

func (c *Cart) Add(it Item) error {
\tif len(c.Items) >= MaxItems {
\t\treturn fmt.Errorf("full")
\t}
\tc.Items = append(c.Items, it)
\treturn nil
}

func (c Cart) Total() money.Cents { return 0 }
""",
        "money/money.go": """package money

type Cents int64

func (c Cents) String() string { return "" }

func Sum[T ~int64](xs ...T) T { var s T; return s }
""",
        "main.go": """package main

import "example.com/shop/cart"

func main() { _ = cart.New() }
""",
    },
    "rust": {
        "Cargo.toml": "[package]\nname = \"shapes\"\nversion = \"0.1.0\"\n",
        "src/lib.rs": """pub mod geometry;
mod util;

pub use geometry::Point;

pub const VERSION: &str = "0.1";

pub trait Shape {
    fn area(&self) -> f64;
    fn name(&self) -> String { String::from("shape") }
}

#[derive(Debug, Clone)]
pub struct Circle { pub r: f64 }

impl Shape for Circle {
    fn area(&self) -> f64 { 3.14 * self.r * self.r }
}

pub enum Kind { Round, Square }

pub fn largest<T: Shape>(shapes: &[T]) -> Option<&T> { shapes.first() }

macro_rules! square { ($x:expr) => { $x * $x }; }
""",
        "src/geometry.rs": """use crate::util::clamp;

#[derive(Debug, Default)]
pub struct Point { pub x: f64, pub y: f64 }

impl Point {
    pub fn new(x: f64, y: f64) -> Self { Point { x, y } }
    pub fn distance(&self, other: &Point) -> f64 { clamp(0.0) }
}

pub type Pair = (Point, Point);
""",
        "src/util.rs": """pub(crate) fn clamp(v: f64) -> f64 { v.max(0.0) }

pub(crate) async fn later() {}
""",
    },
    "java": {
        "src/main/java/com/shop/Order.java": """package com.shop;

import java.util.List;
import com.shop.util.Money;

@Entity
public class Order implements Comparable<Order> {
    public static final int MAX_LINES = 50;
    private final List<Line> lines;

    public Order(List<Line> lines) { this.lines = lines; }

    @Override
    public int compareTo(Order other) { return 0; }

    public Money total() { return Money.ZERO; }

    public record Line(String sku, int qty) {}

    enum Status { OPEN, PAID; boolean done() { return this == PAID; } }
}
""",
        "src/main/java/com/shop/util/Money.java": """package com.shop.util;

public interface Money {
    Money ZERO = null;
    long cents();
    default Money plus(Money other) { return other; }
}
""",
    },
    "python": {
        "pkg/__init__.py": "from pkg.core import slugify\n",
        "pkg/core.py": """import re
from typing import TYPE_CHECKING

MAX_LENGTH = 100

if TYPE_CHECKING:
    from pkg.cli import Runner


def slugify(text: str, *, sep: str = "-") -> str:  # the public entry
    return text


@dataclass
class Options:
    sep: str = "-"

    @property
    def regex(self) -> re.Pattern[str]:
        return re.compile(self.sep)


async def fetch(url,
                timeout=10):
    def helper():
        pass
    return helper
""",
        "pkg/cli.py": """from pkg.core import slugify, Options


class Runner:
    def run(self, argv: list[str]) -> int:
        return 0
""",
    },
}


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.mark.parametrize("lang", sorted(PROJECTS))
def test_the_map_outlines_what_tree_sitter_finds_in_every_language(tmp_path: Path, lang: str) -> None:
    from bench.mapcover import map_coverage

    ws = _write(tmp_path / lang, PROJECTS[lang])
    text = repo_map(ws, ws / ".agent", "", max_tokens=2000)  # the default planner.context_tokens
    cov = map_coverage(ws, text, sorted(PROJECTS[lang]))
    found = sum(len(s) for s in cov.found.values())
    assert found >= 6, cov.found  # the reference finds what there is to find
    assert cov.share() >= 0.9, (cov.share(), cov.missed(), text)


def test_the_forms_real_javascript_is_written_in(tmp_path: Path) -> None:
    ws = _write(tmp_path / "js", PROJECTS["javascript"])
    text = repo_map(ws, ws / ".agent", "", max_tokens=4000)
    for line in (
        "    5 var parseValues = function parseQueryStringValues(str, options)",
        "   12 module.exports = function (str, opts)",
        "    3 var merge = function merge(target, source, options)",
        "    5 function isRegExp(obj)",
        "    6 module.exports = {compact, isRegExp, merge, ...}",
        "   10   decode: function (str, decoder)",
        "   11   encode(str)",
        "    4   formatters: {...}",
        "    5     RFC1738: function (value)",
        "    3 export const Button = ({ label, onClick }) =>",
        "    4 export default function Toolbar(props)",
        "    5 export class Panel extends React.Component",
        "    7   toggle = () =>",
        "    8   render()",
        "    3 export const retry = async (fn, times = 3) =>",
        "    4 export default {compact, fetchAll}",
        "    2 exports.parseAll = function parseAll(list)",
        "    3 Store.prototype.save = function save(key, value)",
    ):
        assert line in text, f"{line!r} not in\n{text}"
    assert "inner" not in text  # a function's own locals are not the module's definitions
    for rel in ("src/Button.jsx", "src/api.mjs", "src/legacy.cjs"):
        assert f"\n{rel}\n" in text


def test_the_forms_real_typescript_go_rust_and_java_are_written_in(tmp_path: Path) -> None:
    expected = {
        "typescript": ["    1 export interface Options<T = unknown> extends Base", "    3   decoder?(value: string): T",
                       "    5 export type Id = string | number", "    6 export enum Level",
                       "    7 declare function globalHelper(x: number): string", "    8 namespace Internal",
                       "    3 export abstract class Client<T> implements Runner",
                       "    4   abstract connect(url: string): Promise<void>",
                       "    6   protected handle = (e: Error): void =>",
                       "    8   async get(id: Id): Promise<T | undefined>",
                       "   14 export function createClient(opts: Options): Client<unknown>",
                       "    4 export const App: React.FC<AppProps> = ({ title }) =>",
                       "    9 const Memo = React.memo(function Inner(props: AppProps)"],
        "go": ["   10 const MaxItems", "   12 type Item struct", "   17 type Store interface",
               "   18   Load(id string) (*Cart, error)", "   24 func New() *Cart",
               "   26 func (c *Cart) Add(it Item) error",
               "    7 func Sum[T ~int64](xs ...T) T"],
        "rust": ["    1 pub mod geometry", "    8 pub trait Shape", "    9   fn area(&self) -> f64",
                 "   16 impl Shape for Circle", "   22 pub fn largest<T: Shape>(shapes: &[T]) -> Option<&T>",
                 "   24 macro_rules! square", "    6 impl Point",
                 "    7   pub fn new(x: f64, y: f64) -> Self", "    1 pub(crate) fn clamp(v: f64) -> f64"],
        "java": ["    7 public class Order implements Comparable<Order>", "   11   public Order(List<Line> lines)",
                 "   14   public int compareTo(Order other)", "   18   public record Line(String sku, int qty)",
                 "   20     boolean done()", "    3 public interface Money", "    6   default Money plus(Money other)"],
        "python": ["   10 def slugify(text: str, *, sep: str = \"-\") -> str", "   15 class Options",
                   "   19   def regex(self) -> re.Pattern[str]", "   23 async def fetch(url, timeout=10)"],
    }
    for lang, lines in expected.items():
        ws = _write(tmp_path / lang, PROJECTS[lang])
        text = repo_map(ws, ws / ".agent", "", max_tokens=4000)
        for line in lines:
            assert line in text, f"{lang}: {line!r} not in\n{text}"


# --------------------------------------------------------------------------- ranking


def test_files_other_files_use_rank_first(tmp_path: Path) -> None:
    files = {f"app/feature{i:02}.ts": f"import {{ shared }} from '../core/shared';\nexport function f{i}() {{}}\n"
             for i in range(12)}
    files["core/shared.ts"] = "export function shared(): void {}\n"
    files["core/unused.ts"] = "export function unused(): void {}\n"
    ws = _write(tmp_path / "ts", files)
    text = repo_map(ws, ws / ".agent", "", max_tokens=3000)
    order = [line for line in text.split("most relevant first:\n", 1)[1].splitlines() if not line.startswith(" ")]
    assert order[0] == "core/shared.ts"  # twelve files import it
    assert order.index("core/unused.ts") > order.index("app/feature00.ts")  # none imports it


def test_an_identifier_the_task_names_finds_the_file_that_defines_it(tmp_path: Path) -> None:
    files = {f"lib/mod{i:02}.js": f"var helper{i} = function () {{}};\nmodule.exports = helper{i};\n"
             for i in range(30)}
    files["lib/mod17.js"] = "var parseKeys = function parseKeys(a) {};\nmodule.exports = parseKeys;\n"
    files["lib/user.js"] = "var parseKeys = require('./mod17');\nparseKeys(1);\n"
    ws = _write(tmp_path / "js", files)
    text = repo_map(ws, ws / ".agent", "why does parseKeys drop empty keys?", max_tokens=400)
    assert text.split("most relevant first:\n", 1)[1].startswith("lib/mod17.js\n")


def test_a_dotted_module_path_names_its_file(tmp_path: Path) -> None:
    files = {"urllib/__init__.py": "", "urllib/request.py": "def urlopen(url, timeout=None):\n    pass\n",
             "urllib/parse.py": "def quote(s):\n    pass\n"}
    files.update({f"test/test_{i}.py": f"import unittest\ndef test_{i}():\n    pass\n" for i in range(20)})
    files["unittest/__init__.py"] = "class TestCase:\n    pass\n"
    ws = _write(tmp_path / "lib", files)
    text = repo_map(ws, ws / ".agent", "add a timeout parameter to urllib.request.urlopen", max_tokens=500)
    assert text.split("most relevant first:\n", 1)[1].startswith("urllib/request.py\n")


# --------------------------------------------------------------------------- the persisted cache


def _cache(ws: Path) -> dict[str, Any]:
    return json.loads((ws / ".agent" / "cache" / "repomap.json").read_text())


def test_outlines_persist_by_path_size_and_mtime_and_a_warm_map_is_the_cold_one(tmp_path: Path) -> None:
    ws = _write(tmp_path / "ts", PROJECTS["typescript"])
    cold = repo_map(ws, ws / ".agent", "fix createClient", max_tokens=2000)
    data = _cache(ws)
    assert data["schema_version"] == CACHE_SCHEMA_VERSION and set(data["files"]) == set(PROJECTS["typescript"])
    entry = data["files"]["src/client.ts"]
    st = (ws / "src" / "client.ts").stat()
    assert (entry["size"], entry["mtime_ns"]) == (st.st_size, st.st_mtime_ns)
    assert any(s[3] == "createClient" for s in entry["symbols"])
    assert repo_map(ws, ws / ".agent", "fix createClient", max_tokens=2000) == cold
    # A changed file is outlined again; a removed one leaves the cache.
    (ws / "src" / "client.ts").write_text("export function renamedClient(): void {}\n")
    (ws / "src" / "App.tsx").unlink()
    warm = repo_map(ws, ws / ".agent", "fix createClient", max_tokens=2000)
    assert "renamedClient" in warm and "createClient(opts" not in warm and "App.tsx" not in warm
    assert "src/App.tsx" not in _cache(ws)["files"]
    shutil.rmtree(ws / ".agent")
    assert repo_map(ws, ws / ".agent", "fix createClient", max_tokens=2000) == warm


def test_a_cache_of_another_version_or_a_broken_one_only_costs_a_cold_map(tmp_path: Path) -> None:
    ws = _write(tmp_path / "go", PROJECTS["go"])
    first = repo_map(ws, ws / ".agent", "", max_tokens=2000)
    path = ws / ".agent" / "cache" / "repomap.json"
    data = _cache(ws)
    data["schema_version"] = 999
    data["files"]["cart/cart.go"]["symbols"] = [[1, 0, "func Bogus()", "Bogus", False]]
    path.write_text(json.dumps(data))
    assert repo_map(ws, ws / ".agent", "", max_tokens=2000) == first
    assert _cache(ws)["schema_version"] == CACHE_SCHEMA_VERSION
    path.write_text("{not json")
    assert repo_map(ws, ws / ".agent", "", max_tokens=2000) == first
    shutil.rmtree(ws / ".agent")
    assert repo_map(ws, None, "", max_tokens=2000) == first  # no data dir: no cache, the same map
    assert not (ws / ".agent").exists()


def test_outlining_stops_when_the_budget_is_full(tmp_path: Path) -> None:
    files = {f"pkg/sub{i // 50}/mod{i:04}.py": f"from pkg.sub0 import mod0000\n\n\ndef function_{i}(x):\n    return x\n"
             for i in range(400)}
    ws = _write(tmp_path / "big", files)
    text = repo_map(ws, ws / ".agent", "rename function_7 in pkg/sub0/mod0007.py", max_tokens=600)
    assert "pkg/sub0/mod0007.py\n    4 def function_7(x)" in text
    entries = _cache(ws)["files"]
    assert len(entries) == 400  # every file's imports are known (they rank files)...
    outlined = [rel for rel, e in entries.items() if "symbols" in e]
    assert 0 < len(outlined) <= 40  # ...but only the files the map had room for were parsed


# --------------------------------------------------------------------------- agent map


def _agent_map(ws: Path, *args: str, model: str = "openai/gpt-4o-mini", **env: str) -> Any:
    from typer.testing import CliRunner

    from agentcli.cli.app import app
    from agentcli.cli.commands.common import State

    state = State(environ={"AGENT_MODEL": model, "AGENT_MEMORY__ENABLED": "false", **env}, use_user_config=False)
    return CliRunner().invoke(app, ["-w", str(ws), "map", *args], obj=state)


def test_agent_map_prints_the_map_the_planner_gets(repo: Path) -> None:
    task = "add a --verbose flag to main in pkg/cli.py"
    result = _agent_map(repo, "--task", task, "--tokens", "700")
    assert result.exit_code == 0, result.output
    assert result.stdout == repo_map(repo, repo / ".agent", task, max_tokens=700, model="openai/gpt-4o-mini") + "\n"
    assert result.stdout.split("most relevant first:\n", 1)[1].startswith("pkg/cli.py\n")
    assert "of 700 tokens" in result.stderr
    # The budget is the planner's own by default, and --json gives the figures.
    data = json.loads(_agent_map(repo, "--json", AGENT_PLANNER__CONTEXT_TOKENS="400").stdout)
    assert data["budget"] == 400 and 0 < data["tokens"] <= 400 and data["planner_gets_it"] is True
    assert data["map"] == repo_map(repo, repo / ".agent", "", max_tokens=400, model="openai/gpt-4o-mini")


def test_agent_map_says_when_the_planner_gets_no_map(repo: Path) -> None:
    small = _agent_map(repo, "--tokens", "300", model="local/smollm2")
    assert small.exit_code == 0 and small.stdout.startswith("files: ")
    assert "small local planner: its requests carry no map" in small.stderr
    off = _agent_map(repo, AGENT_PLANNER__CONTEXT_TOKENS="0")
    assert off.exit_code == 0 and off.stdout == "" and "planner.context_tokens is 0" in off.stderr
    bad = _agent_map(repo, "--tokens", "-1")
    assert bad.exit_code == 2 and "Traceback" not in bad.output


# --------------------------------------------------------------------------- a long function's inner functions


def _long_js(helpers: int = 4, filler: int = 70) -> str:
    body = "\n".join(f"    const v{i} = opts.a + {i};" for i in range(filler))
    inner = "\n".join(
        f"    function helper{i}(arg, key) {{\n      return arg + key;\n    }}" if i % 2 == 0 else
        f"    const helper{i} = (arg) => {{\n      return arg;\n    }};" for i in range(helpers))
    return (f"export class Parser {{\n  parse(args, opts) {{\n{body}\n    const flags = args.map((a) => a.trim());\n"
            f"{inner}\n    return helper0(flags, 1);\n  }}\n}}\n\nfunction shortOne(x) {{\n"
            "  function hidden(y) { return y; }\n  return hidden(x);\n}\n")


_LONG_PY = '''def main(argv):
''' + "".join(f"    v{i} = len(argv) + {i}\n" for i in range(70)) + '''
    def push_positional(arg):
        return arg

    @staticmethod
    def eat_nargs(i, key, args):
        return args[i:]

    total = sum(map(lambda a: len(a), argv))
    return push_positional(total)


def short(x):
    def hidden(y):
        return y
    return hidden(x)
'''


def test_a_long_functions_inner_functions_are_listed_under_it(tmp_path: Path) -> None:
    ws = _write(tmp_path / "ws", {"lib/parser.js": _long_js(), "cli.py": _LONG_PY})
    text = repo_map(ws, ws / ".agent", "", max_tokens=2000)
    for line in ("    2   parse(args, opts)",
                 "   74     function helper0(arg, key)",
                 "   77     const helper1 = (arg) =>",
                 "    1 def main(argv)",
                 "   73   def push_positional(arg)",
                 "   77   def eat_nargs(i, key, args)"):
        assert f"\n{line}\n" in text, f"{line!r} not in\n{text}"
    # A short function's locals, and what a statement computes (a callback, a lambda), stay out.
    assert "hidden" not in text and "flags" not in text and "lambda" not in text and "total" not in text


def test_a_map_short_of_room_drops_inner_functions_before_the_files_own_definitions(tmp_path: Path) -> None:
    ws = _write(tmp_path / "ws", {"lib/parser.js": _long_js(helpers=120)})
    roomy = repo_map(ws, ws / ".agent", "fix parse in lib/parser.js", max_tokens=4000)
    assert "helper119" in roomy and "shortOne" in roomy
    tight = repo_map(ws, ws / ".agent", "fix parse in lib/parser.js", max_tokens=300)
    assert tokens.count_text(tight, "") <= 300
    assert "helper" not in tight and "  parse(args, opts)" in tight and "function shortOne(x)" in tight


# --------------------------------------------------------------------------- test files

_PY_TESTS = '''import pytest

from pkg.core import slugify

CASES = [("a b", "a-b")]


@pytest.fixture
def sample():
    return "a b"


def check(text):
    assert slugify(text)


def test_one(sample):
    check(sample)


def test_two():
    check("x")


def test_three():
    check("y")


def test_four():
    check("z")


def test_five():
    check("w")


class TestSlugify:
    def setup_method(self):
        self.sep = "-"

    def test_sep(self):
        assert self.sep

    def test_empty(self):
        assert slugify("") == ""

    def test_unicode(self):
        assert slugify("é")


class Recorder:
    def test_like(self):
        return None
'''


def _python_tests_ws(tmp_path: Path) -> Path:
    return _write(tmp_path / "py", {
        "pkg/__init__.py": "",
        "pkg/core.py": "def slugify(text, sep='-'):\n    return text\n",
        # Not a test file: functions named test_ there are the library's, shown as they are.
        "pkg/checks.py": "".join(f"def test_{n}(host):\n    return True\n\n\n" for n in ("dns", "disk", "net")),
        "tests/test_core.py": _PY_TESTS,
    })


def _outline_of(text: str, rel: str) -> list[str]:
    """The lines a map shows under ``rel``'s heading."""
    lines = text.splitlines()
    start = lines.index(rel) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith(" ")), len(lines))
    return lines[start:end]


def test_a_test_files_consecutive_tests_are_one_line_and_the_rest_of_it_stays(tmp_path: Path) -> None:
    ws = _python_tests_ws(tmp_path)
    text = repo_map(ws, ws / ".agent", "fix slugify in pkg/core.py and its tests", max_tokens=4000)
    assert _outline_of(text, "tests/test_core.py") == [
        "    5 CASES = ...",
        "    9 def sample()",
        "   13 def check(text)",
        "   17-33 5 tests: test_one, test_two, ... test_five",
        "   37 class TestSlugify",
        "   38   def setup_method(self)",
        "   41-47   3 tests: test_sep, test_empty, test_unicode",
        "   51 class Recorder",  # not a test class: its test_ method is not a test
        "   52   def test_like(self)",
    ], text
    # A file that is not a test file keeps its test_ functions one a line.
    assert _outline_of(text, "pkg/checks.py") == ["    1 def test_dns(host)", "    5 def test_disk(host)",
                                                   "    9 def test_net(host)"]


def test_a_test_the_task_names_keeps_its_own_line(tmp_path: Path) -> None:
    ws = _python_tests_ws(tmp_path)
    text = repo_map(ws, ws / ".agent", "tests/test_core.py::test_four fails: fix slugify", max_tokens=4000)
    assert _outline_of(text, "tests/test_core.py")[3:6] == [
        "   17-25 3 tests: test_one, test_two, test_three",
        "   29 def test_four()",
        "   33 def test_five()",  # one test left: its own line, as it costs no more
    ], text
    # Fewer than three tests on either side of a named one stay as they are.
    text = repo_map(ws, ws / ".agent", "test_empty fails", max_tokens=4000)
    assert "   41   def test_sep(self)\n   44   def test_empty(self)\n   47   def test_unicode(self)\n" in text


def test_a_summarised_map_is_the_same_cold_and_warm(tmp_path: Path) -> None:
    ws = _python_tests_ws(tmp_path)
    task = "test_four fails: fix slugify"
    cold = repo_map(ws, ws / ".agent", task, max_tokens=4000)
    entry = _cache(ws)["files"]["tests/test_core.py"]
    assert [s[3] for s in entry["symbols"] if s[6]] == [
        "test_one", "test_two", "test_three", "test_four", "test_five", "test_sep", "test_empty", "test_unicode"]
    assert repo_map(ws, ws / ".agent", task, max_tokens=4000) == cold  # warm: the outlines read from the cache
    shutil.rmtree(ws / ".agent")
    assert repo_map(ws, None, task, max_tokens=4000) == cold  # no cache at all
    assert "   17-25 3 tests:" in cold and repo_map(ws, ws / ".agent", "fix slugify", max_tokens=4000) != cold


_JS_TESTS = """const assert = require('assert')
const { parse } = require('../lib/parse')

function input (n) {
  return 'x'.repeat(n)
}

exports.testEmpty = function (t) { assert.equal(parse(''), null); t.done() }
exports.testOne = function (t) { t.done() }
exports.testMany = function (t) { t.done() }
exports.testHyphen = function (t) { t.done() }

class ParseSpec {
  setUp () { this.p = parse }
  testShort () {}
  testLong () {}
  testNested () {}
}

describe('parse', () => {
  it('parses', () => { assert.ok(parse(input(3))) })
})
"""


def test_javascript_test_files_are_summarised_too(tmp_path: Path) -> None:
    ws = _write(tmp_path / "js", {
        "lib/parse.js": "function parse (s) {\n  return s || null\n}\nmodule.exports = { parse }\n",
        "test/parse.js": _JS_TESTS,
        "src/__tests__/util.js": "exports.testA = () => 1\nexports.testB = () => 2\nexports.testC = () => 3\n",
        "src/format.spec.ts": "export function testX(): void {}\nexport function testY(): void {}\n"
                              "export function testZ(): void {}\nexport function fixture(): string { return '' }\n",
    })
    text = repo_map(ws, ws / ".agent", "fix parse in lib/parse.js: testHyphen fails", max_tokens=4000)
    assert _outline_of(text, "test/parse.js") == [
        "    4 function input (n)",
        "    8-10 3 tests: testEmpty, testOne, testMany",
        "   11 exports.testHyphen = function (t)",
        "   13 class ParseSpec",
        "   14   setUp ()",
        "   15-17   3 tests: testShort, testLong, testNested",
    ], text  # describe/it calls are calls, not definitions: not outlined
    assert _outline_of(text, "src/__tests__/util.js") == ["    1-3 3 tests: testA, testB, testC"]
    assert _outline_of(text, "src/format.spec.ts") == ["    1-3 3 tests: testX, testY, testZ",
                                                        "    4 export function fixture(): string"]


@pytest.mark.parametrize(("rel", "source", "expected"), [
    ("cart/cart_test.go",
     'package cart\n\nimport "testing"\n\nfunc TestMain(m *testing.M) {}\n\n'
     "func newCart(t *testing.T) *Cart { return nil }\n\n"
     "func TestAdd(t *testing.T) {}\n\nfunc TestRemove(t *testing.T) {}\n\nfunc BenchmarkAdd(b *testing.B) {}\n",
     ["    5 func TestMain(m *testing.M)", "    7 func newCart(t *testing.T) *Cart",
      "    9-13 3 tests: TestAdd, TestRemove, BenchmarkAdd"]),
    ("tests/cli.rs",
     "use mycrate::run;\n\nfn setup() -> u32 { 1 }\n\n#[test]\nfn runs() { run(); }\n\n#[test]\n#[should_panic]\n"
     "fn panics() { run(); }\n\n#[tokio::test]\nasync fn runs_async() { run(); }\n",
     ["    3 fn setup() -> u32", "    6-13 3 tests: runs, panics, runs_async"]),
    ("src/test/java/CartTest.java",
     "class CartTest {\n  private Cart cart;\n  @BeforeEach\n  void setUp() {}\n  @Test\n  void adds() {}\n"
     "  @ParameterizedTest\n  void removes(int n) {}\n  @Test void empties() {}\n}\n",
     ["    1 class CartTest", "    4   void setUp()", "    6-9   3 tests: adds, removes, empties"]),
])
def test_go_rust_and_java_tests_are_summarised(tmp_path: Path, rel: str, source: str, expected: list[str]) -> None:
    ws = _write(tmp_path / "ws", {rel: source})
    text = repo_map(ws, ws / ".agent", "", max_tokens=2000)
    assert _outline_of(text, rel) == expected, text


def test_the_map_size_bench_swaps_only_the_map_in_a_recorded_request() -> None:
    from bench.swe.mapsize import _request_tokens, _splice

    request = {"model": "gpt-4o-mini", "tools": [{"type": "function", "function": {"name": "read_file"}}],
               "messages": [{"role": "system", "content": "rules"},
                            {"role": "user",
                             "content": "# Workspace\nx\n\n# Repository map\nold map\n\nline\n\n# Task\nfix"}]}
    spliced = _splice(request, "new map")
    assert spliced["messages"][1]["content"] == "# Workspace\nx\n\n# Repository map\nnew map\n\n# Task\nfix"
    assert spliced["messages"][0] == request["messages"][0] and spliced["tools"] == request["tools"]
    assert _request_tokens(spliced, "gpt-4o-mini") < _request_tokens(request, "gpt-4o-mini")
