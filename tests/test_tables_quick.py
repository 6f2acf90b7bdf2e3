"""Long tables are printed line by line (QuickTable) exactly as rich prints them."""

from __future__ import annotations

import io
import random
import string
from datetime import UTC, datetime

from rich.console import Console, RenderableType

from agentcli.cli.render import plan_table
from agentcli.cli.tables import Col, QuickTable, fitted_table, quick_fitted_table
from agentcli.planning.plan import Plan, Step


def _printed(r: RenderableType, width: int, terminal: bool = False) -> str:
    c = Console(file=io.StringIO(), width=width, force_terminal=terminal, color_system=None)
    c.print(r, soft_wrap=False, highlight=False)
    out = c.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def _text(rng: random.Random, n: int) -> str:
    odd = rng.random() < 0.2  # markup, backslashes, wide characters: rich's own path
    return "".join(rng.choices(string.ascii_letters + " .-/[" + ("]\\é漢" if odd else ""), k=n))


def test_fitted_tables_print_as_rich_prints_them() -> None:
    rng = random.Random(7)
    quick = 0
    for _ in range(400):
        cols = [Col(_text(rng, rng.randint(1, 9)).strip() or "c", flex=rng.random() < 0.4,
                    justify=rng.choice(["left", "right"])) for _ in range(rng.randint(1, 6))]
        rows = [[_text(rng, rng.randint(0, rng.choice([3, 10, 40, 90]))) for _ in cols]
                for _ in range(rng.randint(0, 6))]
        width = rng.choice([40, 60, 80, 120])
        shown = rng.choice([width, width, 50, 200])
        title = rng.choice([None, "run [x]", "a title longer than the table is wide, surely, by far"])
        q = quick_fitted_table(cols, rows, width, title=title)
        quick += q._fitted_lines(shown) is not None
        for terminal in (False, True):
            assert _printed(q, shown, terminal) == _printed(fitted_table(cols, rows, width, title=title), shown,
                                                             terminal)
    assert quick > 50  # the quick path is taken, not only rich's


def test_plan_tables_print_as_rich_prints_them() -> None:
    rng = random.Random(8)
    quick = 0
    for _ in range(200):
        steps = []
        for i in range(1, rng.randint(1, 6) + 1):
            if rng.random() < 0.6:
                steps.append(Step(id=f"s{i}", title=_text(rng, rng.choice([8, 20, 60])).strip() or "x", kind="tool",
                                  tool=rng.choice(["read_file", "list_files"]),
                                  args={"path": _text(rng, rng.choice([5, 30, 120]))},
                                  depends_on=[f"s{j}" for j in range(1, i) if rng.random() < 0.3]))
            else:
                steps.append(Step(id=f"s{i}", title="summarise", kind="llm", prompt="p " * rng.randint(1, 50)))
        plan = Plan(id="p", task="t", created_at=datetime(2026, 1, 1, tzinfo=UTC), model="m", steps=steps).rehash()
        width = rng.choice([60, 80, 120, 200])
        q = QuickTable(plan_table(plan, width))
        quick += q._lines(width) is not None
        assert _printed(q, width) == _printed(plan_table(plan, width), width)
    assert quick > 5


def test_a_plan_is_shown_as_rich_prints_its_table() -> None:
    """render_plan prints a plan's table without building rich's table, the same lines either way."""
    from rich.console import Group
    from rich.text import Text

    from agentcli.cli.render import plan_header, render_plan

    rng = random.Random(9)
    for _ in range(60):
        steps = [Step(id=f"s{i}", title=_text(rng, rng.choice([8, 30])).strip() or "x", kind="tool",
                      tool="read_file", args={"path": _text(rng, rng.choice([5, 40, 150]))},
                      depends_on=[f"s{i - 1}"] if i > 1 and rng.random() < 0.5 else [])
                 for i in range(1, rng.randint(1, 8) + 1)]
        plan = Plan(id="p", task="t", created_at=datetime(2026, 1, 1, tzinfo=UTC), model="m", steps=steps).rehash()
        width = rng.choice([60, 80, 120])
        for terminal in (False, True):
            c = Console(file=io.StringIO(), width=width, force_terminal=terminal, color_system=None)
            render_plan(plan, c)
            expected = _printed(Group(plan_header(plan), Text(""), plan_table(plan, width)), width, terminal)
            assert c.file.getvalue() == expected  # type: ignore[attr-defined]
