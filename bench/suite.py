"""A small fixture workspace and a scripted task suite over it (for the calls and local-model benches).

Each task lists the tool calls a competent agent makes for it, and optionally the prompt
of one ``llm`` step (work done by a model on the tools' results). The fake model of
:mod:`bench.calls` answers both agents from this script, so they do the same work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_MODELS = '''"""Domain objects of the inventory."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass
class Item:
    """One kind of thing we stock."""

    sku: str
    name: str
    quantity: int = 0
    unit_price: float = 0.0
    tags: list[str] = field(default_factory=list)

    def value(self) -> float:
        return self.quantity * self.unit_price


@dataclass
class Movement:
    """Stock coming in (positive) or going out (negative)."""

    sku: str
    delta: int
    on: date
    note: str = ""
'''

_STORE = '''"""Persistence: the inventory lives in one JSON file."""

from __future__ import annotations

import json
from pathlib import Path

from inventory.models import Item, Movement


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: dict[str, Item] = {}
        self.movements: list[Movement] = []

    def load(self) -> None:
        if not self.path.exists():
            return
        raw = json.loads(self.path.read_text())
        self.items = {d["sku"]: Item(**d) for d in raw.get("items", [])}

    def save(self) -> None:
        # TODO: write to a temp file and rename, so a crash cannot leave half a file
        data = {"items": [vars(i) for i in self.items.values()]}
        self.path.write_text(json.dumps(data, indent=2))

    def add(self, item: Item) -> None:
        if item.sku in self.items:
            raise ValueError(f"duplicate sku {item.sku}")
        self.items[item.sku] = item

    def move(self, movement: Movement) -> None:
        item = self.items[movement.sku]
        if item.quantity + movement.delta < 0:
            raise ValueError("stock cannot go negative")
        item.quantity += movement.delta
        self.movements.append(movement)  # TODO: persist movements too

    def total_value(self) -> float:
        return sum(i.value() for i in self.items.values())
'''

_CLI = '''"""Command line: inventory add|move|report."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from inventory.models import Item, Movement
from inventory.store import Store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inventory")
    parser.add_argument("--db", type=Path, default=Path("inventory.json"))
    sub = parser.add_subparsers(dest="cmd", required=True)
    add = sub.add_parser("add", help="add a new item")
    add.add_argument("sku")
    add.add_argument("name")
    add.add_argument("--price", type=float, default=0.0)
    move = sub.add_parser("move", help="record stock in or out")
    move.add_argument("sku")
    move.add_argument("delta", type=int)
    sub.add_parser("report", help="print the stock value")
    args = parser.parse_args(argv)
    store = Store(args.db)
    store.load()
    if args.cmd == "add":
        store.add(Item(args.sku, args.name, unit_price=args.price))
    elif args.cmd == "move":
        store.move(Movement(args.sku, args.delta, date.today()))
    else:
        print(f"total value: {store.total_value():.2f}")  # TODO: per-item table
    store.save()
    return 0
'''

_TESTS = '''from pathlib import Path

import pytest

from inventory.models import Item, Movement
from inventory.store import Store


def test_add_and_value(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.json")
    s.add(Item("A1", "bolt", quantity=10, unit_price=0.5))
    assert s.total_value() == 5.0


def test_duplicate_sku(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.json")
    s.add(Item("A1", "bolt"))
    with pytest.raises(ValueError):
        s.add(Item("A1", "nut"))


def test_stock_never_negative(tmp_path: Path) -> None:
    from datetime import date

    s = Store(tmp_path / "db.json")
    s.add(Item("A1", "bolt", quantity=1))
    with pytest.raises(ValueError):
        s.move(Movement("A1", -2, date.today()))


def test_save_and_load(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.json")
    s.add(Item("A1", "bolt", quantity=3))
    s.save()
    t = Store(tmp_path / "db.json")
    t.load()
    assert t.items["A1"].quantity == 3
'''

FILES: dict[str, str] = {
    "README.md": "# inventory\n\nA tiny stock-keeping tool: items, stock movements and a value report.\n\n"
                 "    inventory add A1 bolt --price 0.5\n    inventory move A1 10\n    inventory report\n",
    "pyproject.toml": '[project]\nname = "inventory"\nversion = "0.3.0"\nrequires-python = ">=3.10"\n'
                      'dependencies = []\n\n[project.optional-dependencies]\ndev = ["pytest>=7"]\n\n'
                      '[project.scripts]\ninventory = "inventory.cli:main"\n',
    "src/inventory/__init__.py": '"""Stock keeping."""\n\n__version__ = "0.3.0"\n',
    "src/inventory/models.py": _MODELS,
    "src/inventory/store.py": _STORE,
    "src/inventory/cli.py": _CLI,
    "tests/test_store.py": _TESTS,
    "docs/usage.md": "# Usage\n\nThe database is a JSON file (`--db`, default `inventory.json`).\n"
                     "Movements are not saved yet.\n",
}


def make_workspace(root: Path) -> Path:
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


Call = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Task:
    text: str
    calls: list[Call]
    llm_prompt: str | None = None  # an llm step after the tool steps, using all their outputs
    answer: str = "Done."
    tags: list[str] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.calls) + (1 if self.llm_prompt else 0)

    def steps_planned(self, writeup: bool = True) -> int:
        """The steps of :func:`draft_for` ``(self, writeup)``."""
        return len(self.calls) + (1 if self.llm_prompt and writeup else 0)


TASKS: list[Task] = [
    Task("Find where the Item class is defined and list its fields.",
         [("list_files", {"pattern": "**/*.py"}), ("search_code", {"query": "class Item"}),
          ("read_file", {"path": "src/inventory/models.py"})],
         answer="Item is in src/inventory/models.py: sku, name, quantity, unit_price, tags."),
    Task("Explain how the store saves and loads data.",
         [("list_files", {"pattern": "src/**/*.py"}), ("search_code", {"query": "def save"}),
          ("read_file", {"path": "src/inventory/store.py"}), ("read_file", {"path": "src/inventory/models.py"})],
         answer="Store keeps items in a dict and writes them as JSON in save(); load() reads them back."),
    Task("Which tests cover the store, and what does each check?",
         [("list_files", {"pattern": "tests/**/*.py"}), ("read_file", {"path": "tests/test_store.py"}),
          ("search_code", {"query": "def test_"}), ("read_file", {"path": "src/inventory/store.py"})],
         llm_prompt="Summarise what each test checks, one line per test.",
         answer="Four tests: value, duplicate sku, no negative stock, save/load round trip."),
    Task("Write a usage section for the README from the CLI's commands.",
         [("list_files", {"pattern": "**/*"}), ("read_file", {"path": "src/inventory/cli.py"}),
          ("search_code", {"query": "add_parser"}), ("read_file", {"path": "README.md"}),
          ("read_file", {"path": "docs/usage.md"})],
         llm_prompt="Write a Markdown usage section covering every subcommand and option.",
         answer="A usage section for add, move and report with --db and --price."),
    Task("List the TODO comments and say which matter most.",
         [("search_code", {"query": "TODO", "max_results": 10}), ("read_file", {"path": "src/inventory/store.py"}),
          ("read_file", {"path": "src/inventory/cli.py"})],
         answer="Three TODOs; the atomic save matters most."),
    Task("What Python version and dependencies does the project need?",
         [("read_file", {"path": "pyproject.toml"}), ("search_code", {"query": "^(from|import) ", "regex": True,
                                                                       "max_results": 20}),
          ("list_files", {"pattern": "**/*.toml"})],
         answer="Python >= 3.10, no runtime dependencies; pytest for development."),
]


def draft_for(task: Task, writeup: bool = True) -> dict[str, Any]:
    """The planner's draft for ``task``: its tool steps in order, then the llm step (if any and
    ``writeup``; without it, the answer is written from the tool outputs by whoever ends the run:
    a hosted planner's rules leave a question's write-up to the reviewer)."""
    steps: dict[str, Any] = {}
    for i, (name, args) in enumerate(task.calls, start=1):
        steps[f"s{i}"] = {"call": {"tool": name, "args": args}, "depends_on": [], "title": f"{name} {i}"}
    if task.llm_prompt and writeup:
        k = len(task.calls) + 1
        refs = "\n".join(f"{{{{s{i}.output}}}}" for i in range(1, k))
        steps[f"s{k}"] = {"prompt": f"{task.llm_prompt}\n{refs}", "depends_on": [f"s{i}" for i in range(1, k)],
                          "title": "write it up"}
    return {"steps": steps}


def find_task(text: str) -> Task:
    for t in TASKS:
        if t.text in text:
            return t
    raise KeyError(f"no scripted task in: {text[:120]!r}")
