"""Tables that fit the terminal, and the short cells they hold.

Every table of the command line goes through :func:`fitted_table`, so none wraps inside a
cell at 80 columns (the width without a terminal): short columns keep their full width,
long ones are cut with an ellipsis, and a wider terminal shows more. Only rich is imported
here (command modules import this at start-up).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from rich import box
from rich.markup import escape
from rich.table import Table


def short_cost(cost: float | None) -> str:
    """A cost for a table cell: ``$0.0012``, ``$1.23``, ``<$0.0001``, ``$0``; ``unknown`` if unpriced."""
    if cost is None:
        return "unknown"
    if cost == 0:
        return "$0"
    if cost < 0.0001:
        return "<$0.0001"
    return f"${cost:.4f}" if cost < 1 else f"${cost:.2f}"


def short_time(ts: float | str | datetime | None, *, now: datetime | None = None) -> str:
    """A start time for a table cell, in local time: ``12-01 10:10`` (``2025-12-01`` if another year)."""
    if ts is None or ts == "":
        return "-"
    if isinstance(ts, datetime):
        when = ts
    else:
        try:
            when = datetime.fromisoformat(ts) if isinstance(ts, str) else datetime.fromtimestamp(ts)
        except (ValueError, OverflowError, OSError):
            return str(ts)
    when = when.astimezone() if when.tzinfo is not None else when
    this_year = (now or datetime.now()).year
    return when.strftime("%m-%d %H:%M") if when.year == this_year else when.strftime("%Y-%m-%d")


def cut(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    text = " ".join(text.split())
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass(frozen=True)
class Col:
    """A column of :func:`fitted_table`. A ``flex`` column is cut to the room the others leave
    (never below ``min_width``); the others keep their full width."""

    name: str
    flex: bool = False
    justify: Literal["left", "right"] = "left"
    style: str | None = None
    min_width: int = 8


#: Characters between two columns of a fitted table.
COLUMN_GAP = 2


def fitted_table(cols: Sequence[Col], rows: Sequence[Sequence[str]], width: int, *,
                 title: str | None = None) -> Table:
    """A table of plain-text cells that fits ``width`` columns, one line per row.

    Flex columns share what the fixed ones leave, each at most its longest cell; cells are
    cut with an ellipsis, never wrapped. Cells are plain text (escaped here, not markup)."""
    cells = [[" ".join(str(c).split()) for c in row] for row in rows]
    natural = [max([len(col.name), *(len(r[i]) for r in cells)]) for i, col in enumerate(cols)]
    widths = list(natural)
    flex = [i for i, col in enumerate(cols) if col.flex]
    room = width - COLUMN_GAP * (len(cols) - 1) - sum(w for i, w in enumerate(natural) if i not in flex)
    # Narrowest first: a short flex column keeps its width and leaves the rest to the long ones.
    for n, i in enumerate(sorted(flex, key=lambda i: natural[i])):
        share = room // (len(flex) - n)
        widths[i] = max(min(natural[i], share), min(cols[i].min_width, natural[i]))
        room -= widths[i]
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True,
                  header_style="bold", title=escape(cut(title, width)) if title else None, title_justify="left")
    for col, w in zip(cols, widths, strict=True):
        table.add_column(escape(cut(col.name, w)), justify=col.justify, style=col.style, no_wrap=True,
                         width=w, overflow="ellipsis")
    for row in cells:
        table.add_row(*(escape(cut(c, w)) for c, w in zip(row, widths, strict=True)))
    return table
