"""Tables that fit the terminal, and the short cells they hold.

Every table of the command line goes through :func:`fitted_table`, so none wraps inside a
cell at 80 columns (the width without a terminal): short columns keep their full width,
long ones are cut with an ellipsis, and a wider terminal shows more. Only rich is imported
here (command modules import this at start-up).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.markup import escape
from rich.padding import Padding
from rich.segment import Segment
from rich.table import Table
from rich.text import Text


def format_cost(cost: float | None) -> str:
    """A cost in a line of text: ``$0.000123`` (six places under a cent, four above), ``$0`` for
    nothing at all (a local model), ``unknown`` for an unknown price (never a misleading $0)."""
    if cost is None:
        return "unknown"
    if cost == 0:
        return "$0"
    return f"${cost:.6f}" if cost < 0.01 else f"${cost:.4f}"


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
    shown, details, widths = _layout(cols, cells, width)
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


def _layout(cols: Sequence[Col], cells: list[list[str]], width: int) -> tuple[list[int], list[int], dict[int, int]]:
    """Which columns a fitted table of ``cells`` shows in its rows, which go under them (detail),
    and each shown column's width within ``width``."""
    natural = [max([len(col.name), *(len(r[i]) for r in cells)]) for i, col in enumerate(cols)]
    every = list(range(len(cols)))
    shown: list[int] = every
    details: list[int] = []
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
    return shown, details, widths


def _fit(cols: Sequence[Col], cells: list[list[str]], width: int) -> list[int] | None:
    """Each column's width in a fitted table of ``cells`` (one line each) within ``width``; None
    when the table leaves a column out or moves one under its rows (rich draws that)."""
    shown, details, widths = _layout(cols, cells, width)
    if details or len(shown) != len(cols):
        return None
    return [widths[i] for i in shown]


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


def quick_fitted_table(cols: Sequence[Col], rows: Sequence[Sequence[str]], width: int, *,
                       title: str | None = None) -> QuickTable:
    """:func:`fitted_table` for a table that may be long (one row per step of a run): printed as
    rich prints the fitted table, without building it unless it must (see :class:`QuickTable`)."""
    return QuickTable(lambda: fitted_table(cols, rows, width, title=title), (cols, rows, width, title))


class QuickTable:
    """``table`` as rich prints it, written line by line where its layout is plain: a long table
    (a run's 1,000 steps) costs rich's layout engine about 0.5 ms a row, this a few microseconds.

    Only the shape every table here has is taken (a simple head, no edge, no edge padding, left or
    right justified columns, ASCII cells without markup, one line per cell, the whole table within
    the width); anything else is printed by rich itself, so the output is the same either way.
    """

    def __init__(self, table: RenderableType | Callable[[], RenderableType],
                 fitted: tuple[Sequence[Col], Sequence[Sequence[str]], int, str | None] | None = None) -> None:
        # A fitted table whose detail columns went under its rows is no Table: rich prints it.
        self._table = table
        self._fitted = fitted

    @property
    def table(self) -> RenderableType:
        if callable(self._table) and not hasattr(self._table, "__rich_console__"):
            self._table = self._table()
        return self._table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = (self._fitted_lines(options.max_width) if self._fitted is not None else
                 self._lines(options.max_width) if isinstance(self.table, Table) else None)
        if lines is None:
            yield self.table
            return
        title, header, rows, width = lines
        if title is not None:
            yield Segment(title, console.get_style("table.title"))
            yield Segment.line()
        # A fitted table's header is bold (fitted_table's header_style): its rich Table, a row of
        # objects per step, is not built only to be asked that.
        table = self.table if self._fitted is None else None
        header_style = console.get_style("bold" if table is None or not isinstance(table, Table)
                                         else table.header_style or "")
        for i, cell in enumerate(header):
            if i:
                yield Segment("  ")
            yield Segment(cell, header_style)
        yield Segment.line()
        yield Segment("─" * width + "\n")
        yield Segment("".join(row + "\n" for row in rows))

    def _fitted_lines(self, max_width: int) -> tuple[str | None, list[str], list[str], int] | None:
        # The layout fitted_table gives rich, without building the table.
        assert self._fitted is not None
        cols, rows, width, title = self._fitted
        cells = [[" ".join(str(c).split()) for c in row] for row in rows]
        widths = _fit(cols, cells, width)
        if widths is None:
            return None
        total = sum(widths) + COLUMN_GAP * (len(widths) - 1)
        if total > max_width or any(col.style or not _plain(col.name) for col in cols):
            return None
        title_line = None
        if title is not None:
            cut_title = cut(title, width)
            if not _plain(cut_title) or len(cut_title) > total:
                return None
            title_line = cut_title.ljust(total)
        header = [_justify(cut(col.name, w), w, col.justify) for col, w in zip(cols, widths, strict=True)]
        right = [col.justify == "right" for col in cols]
        lines = []
        for row in cells:  # one line of a cell each, already on one line: cut, justified
            line = "  ".join([(c if len(c) <= w else c[:w - 1] + "…").rjust(w) if r else
                              (c if len(c) <= w else c[:w - 1] + "…").ljust(w)
                              for c, w, r in zip(row, widths, right, strict=True)])
            if not _plain(line):  # a cut cell (the ellipsis), or text rich prints otherwise: rich's table
                return None
            lines.append(line)
        return title_line, header, lines, total

    def _lines(self, max_width: int) -> tuple[str | None, list[str], list[str], int] | None:
        t = self.table
        if not isinstance(t, Table):  # a fitted table with lines under its rows: rich prints it
            return None
        if (t.box is not box.SIMPLE_HEAD or t.show_edge or t.pad_edge or not t.collapse_padding or t.expand
                or not t.show_header or t.show_footer or t.show_lines or t.row_styles or t.caption
                or t.padding != (0, 1, 0, 1) or t.width is not None or t.min_width is not None
                or any(r.style or r.end_section for r in t.rows)):
            return None
        cols = t.columns
        widths: list[int] = []
        for col in cols:
            if col.justify not in ("left", "right") or col.style or col.vertical != "top" or col.ratio:
                return None
            cells = [col.header, *col._cells]
            if not all(type(c) is str and c.isascii() and c.isprintable() and "[" not in c and "\\" not in c
                       for c in cells):
                return None
            natural = max(len(c) for c in cells)  # type: ignore[arg-type]
            if col.width is not None:
                if natural > col.width:
                    return None
                w = col.width
            else:
                w = max(natural, col.min_width or 0)
                if col.max_width is not None and w > col.max_width:
                    return None
            widths.append(w)
        total = sum(widths) + COLUMN_GAP * (len(widths) - 1)
        if total > max_width:
            return None
        title = None
        if t.title is not None:
            if (type(t.title) is not str or not t.title.isascii() or not t.title.isprintable() or "[" in t.title
                    or "\\" in t.title or len(t.title) > total or t.title_justify != "left"):
                return None
            title = t.title.ljust(total)

        def fit(cell: str, w: int, justify: str) -> str:
            return cell.rjust(w) if justify == "right" else cell.ljust(w)

        header = [fit(str(c.header), w, c.justify) for c, w in zip(cols, widths, strict=True)]
        columns = [[fit(str(cell), w, c.justify) for cell in c._cells] for c, w in zip(cols, widths, strict=True)]
        rows = ["  ".join(row) for row in zip(*columns, strict=True)] if columns else []
        return title, header, rows, total


def _plain(text: str) -> bool:
    # One terminal cell per character, and no backslash (escaped for rich, one at the end of a
    # cell prints as two).
    return text.isascii() and text.isprintable() and "\\" not in text


def _justify(cell: str, width: int, justify: str) -> str:
    return cell.rjust(width) if justify == "right" else cell.ljust(width)
