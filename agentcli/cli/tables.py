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
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text


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
    (never below ``min_width``); the others keep their full width. When the table does not fit,
    ``optional`` columns (times, say) go first, then ``detail`` columns (what a decision depends on:
    a task, a step's arguments) leave the row for a line of their own under it, shown whole."""

    name: str
    flex: bool = False
    justify: Literal["left", "right"] = "left"
    style: str | None = None
    min_width: int = 8
    optional: bool = False
    detail: bool = False


#: Characters between two columns of a fitted table.
COLUMN_GAP = 2
#: A detail line longer than this is cut (a whole file's content is not a table cell).
DETAIL_MAX_CHARS = 1000
#: Indent of a detail line under its row.
DETAIL_INDENT = 4


def _fits(widths: Sequence[int], width: int) -> bool:
    return sum(widths) + COLUMN_GAP * (len(widths) - 1) <= width


def fitted_table(cols: Sequence[Col], rows: Sequence[Sequence[str]], width: int, *,
                 title: str | None = None) -> RenderableType:
    """A table of plain-text cells that fits ``width`` columns, one line per row (and, when the
    table cannot hold them, a line under the row for each ``detail`` column).

    Flex columns share what the fixed ones leave, each at most its longest cell; cells are
    cut with an ellipsis, never wrapped. Cells are plain text (escaped here, not markup)."""
    cells = [[" ".join(str(c).split()) for c in row] for row in rows]
    natural = [max([len(col.name), *(len(r[i]) for r in cells)]) for i, col in enumerate(cols)]
    every = list(range(len(cols)))
    shown, details = every, []
    # The first that fits: everything; without the optional columns; the detail columns under
    # their rows; both. Else the last, its flex columns cut.
    for drop_optional, move_details in ((False, False), (True, False), (False, True), (True, True)):
        shown = [i for i in every if not (drop_optional and cols[i].optional)
                 and not (move_details and cols[i].detail)]
        details = [i for i in every if move_details and cols[i].detail]
        if _fits([natural[i] for i in shown], width):
            break
    widths = {i: natural[i] for i in shown}
    flex = [i for i in shown if cols[i].flex]
    room = width - COLUMN_GAP * (len(shown) - 1) - sum(w for i, w in widths.items() if i not in flex)
    # Narrowest first: a short flex column keeps its width and leaves the rest to the long ones.
    for n, i in enumerate(sorted(flex, key=lambda i: natural[i])):
        share = room // (len(flex) - n)
        widths[i] = max(min(natural[i], share), min(cols[i].min_width, natural[i]))
        room -= widths[i]
    if details:
        return _with_details(cols, cells, shown, widths, details, width, title)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True,
                  header_style="bold", title=escape(cut(title, width)) if title else None, title_justify="left")
    for i in shown:
        col = cols[i]
        table.add_column(escape(cut(col.name, widths[i])), justify=col.justify, style=col.style, no_wrap=True,
                         width=widths[i], overflow="ellipsis")
    for row in cells:
        table.add_row(*(escape(cut(row[i], widths[i])) for i in shown))
    return table


def _with_details(cols: Sequence[Col], cells: Sequence[Sequence[str]], shown: Sequence[int],
                  widths: dict[int, int], details: Sequence[int], width: int, title: str | None) -> Group:
    """The table's rows as lines, each followed by its detail columns' whole text (wrapped, indented)."""
    gap = " " * COLUMN_GAP

    def line(values: Sequence[str], style: str | None = None) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        for n, i in enumerate(shown):
            cell = cut(values[i], widths[i])
            cell = cell.rjust(widths[i]) if cols[i].justify == "right" else cell.ljust(widths[i])
            text.append(cell if n < len(shown) - 1 else cell.rstrip(), style=style or cols[i].style or "")
            if n < len(shown) - 1:
                text.append(gap)
        return text

    parts: list[RenderableType] = []
    if title:
        parts.append(Text(cut(title, width), style="italic"))
    parts.append(line([c.name for c in cols], "bold"))
    parts.append(Text("─" * min(width, sum(widths.values()) + COLUMN_GAP * (len(shown) - 1))))
    for row in cells:
        parts.append(line(row))
        for i in details:
            if not row[i]:
                continue
            value = row[i] if len(row[i]) <= DETAIL_MAX_CHARS else (
                row[i][:DETAIL_MAX_CHARS] + f"… (+{len(row[i]) - DETAIL_MAX_CHARS} chars)")
            parts.append(Padding(Text(f"{cols[i].name}: {value}", style="dim"), (0, 0, 0, DETAIL_INDENT),
                                 expand=False))
    return Group(*parts)
