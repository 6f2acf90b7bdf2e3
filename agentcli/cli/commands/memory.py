"""`agent memory search | add | list | forget | stats | reindex`: the agent's memory by hand.

Working memory lives only inside a run, so from here it is always empty; these commands
work on the stored tiers (episodic: past runs; semantic: ingested files and notes).
The memory package (lancedb, the embedder) is imported inside each command, never at
import time, so `agent --help` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.markup import escape

from agentcli.cli.commands.common import (
    MAX_HITS,
    MAX_LIST,
    console,
    counted,
    err_console,
    in_range,
    print_warning,
    state_of,
)
from agentcli.cli.tables import Col, fitted_table, short_time
from agentcli.errors import UsageError

if TYPE_CHECKING:
    from agentcli.memory import Memory, Progress, Tier

app = typer.Typer(help="Search, add to and maintain the agent's memory.", no_args_is_help=True)

TierOpt = Literal["working", "episodic", "semantic", "all"]
#: Below this many texts to embed no progress bar is drawn (it would only flicker).
PROGRESS_MIN = 32


def _memory(ctx: typer.Context) -> Memory:
    from agentcli.memory import Memory

    return Memory.from_settings(state_of(ctx).settings, on_warning=print_warning)


def _tiers(tier: str) -> tuple[Tier, ...]:
    from agentcli.memory import TIERS

    if tier == "all":
        return TIERS
    if tier not in TIERS:
        raise UsageError(f"--tier must be one of working, episodic, semantic, all (got {tier!r})")
    return (tier,)


def _dump(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


@contextmanager
def _progress_bar() -> Iterator[Progress | None]:
    """A rich progress bar on stderr, drawn only for phases with PROGRESS_MIN+ items, and only
    when stderr is a terminal (piped or in CI, nothing: the summary line says what was done)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if not err_console.is_terminal:
        yield None
        return
    bar: Progress | None = None
    tasks: dict[str, Any] = {}

    def update(phase: str, done: int, total: int) -> None:
        nonlocal bar
        # Embedding few texts is quick; an index build (total 1) is not, so it always shows.
        if phase != "indexing" and total < PROGRESS_MIN and phase not in tasks:
            return
        if bar is None:
            bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TimeRemainingColumn(), console=err_console, transient=True)
            bar.start()
        if phase not in tasks:
            tasks[phase] = bar.add_task(phase, total=total)
        bar.update(tasks[phase], completed=done, total=total)

    try:
        yield update
    finally:
        if bar is not None:
            bar.stop()


@app.command(short_help="Recall from memory: the best hits of every tier.")
def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What to look for.")],
    tier: Annotated[str, typer.Option("--tier", "-t", help="working, episodic, semantic or all.")] = "all",
    k: Annotated[int | None, typer.Option(
        "-k", callback=in_range(1, MAX_HITS), help="At most this many hits (default: per tier, from config).")] = None,
    min_score: Annotated[float | None, typer.Option(
        "--min-score", callback=in_range(0.0, 1.0), help="Override every tier's score threshold.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the hits as JSON.")] = False,
) -> None:
    """Recall from memory: hits from every tier asked, best first (score 0..1)."""
    mem = _memory(ctx)
    result = mem.recall(query, tiers=_tiers(tier), k=k, min_score=min_score)
    if json_out:
        _dump({"query": result.query, "took_ms": round(result.took_ms, 2),
               "hits": [h.as_dict() for h in result.hits]})
        return
    if not result.hits:
        err_console.print("[dim]no memories above the threshold[/dim]")
        return
    cols = [Col("tier"), Col("score"), Col("source / run", flex=True), Col("snippet", flex=True)]
    rows = [[h.tier, f"{h.score:.3f}", h.source, h.snippet(120)] for h in result.hits]
    console.print(fitted_table(cols, rows, console.width))
    err_console.print(f"[dim]{counted(len(result.hits), 'hit')} in {result.took_ms:.0f} ms[/dim]")


@app.command(short_help="Add files or folders to memory (chunked, deduplicated).")
def add(
    ctx: typer.Context,
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or directories inside the workspace.")] = None,
    text: Annotated[str | None, typer.Option("--text", help="Remember this note instead of files.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the write summary as JSON.")] = False,
) -> None:
    """Add files (chunked, deduplicated, re-added files replace their old chunks) or a note."""
    if bool(paths) == (text is not None):
        raise UsageError("give PATH... or --text, not both and not neither")
    state_of(ctx).settings.ensure_data_dir()
    mem = _memory(ctx)
    with _progress_bar() as progress:
        if text is not None:
            result = mem.add_text(text, progress=progress)
        else:
            result = mem.add_paths([str(p) for p in paths or []], progress=progress)
    if json_out:
        _dump(result.event())
        return
    for s in result.skipped:
        err_console.print(f"[yellow]skipped[/yellow] {escape(s)}")
    if result.masked:
        err_console.print(f"[yellow]masked[/yellow] a secret in {counted(result.masked, 'chunk')} before storing them",
                          highlight=False)
    console.print(
        f"{counted(len(result.sources), 'source')} written: {counted(result.inserted, 'chunk')} added, "
        f"{result.updated} kept, "
        f"{result.deleted} removed; {result.unchanged} unchanged; {result.embedded} embedded "
        f"({result.took_ms / 1000:.1f} s)", highlight=False)


@app.command("list", short_help="List stored episodes and chunks.")
def list_(
    ctx: typer.Context,
    tier: Annotated[str, typer.Option("--tier", "-t", help="episodic, semantic or all.")] = "all",
    limit: Annotated[int, typer.Option("--limit", "-n", callback=in_range(1, MAX_LIST),
                                       help="At most this many per tier.")] = 50,
    json_out: Annotated[bool, typer.Option("--json", help="Print the items as JSON.")] = False,
) -> None:
    """List stored episodes (newest first) and chunks (by source and line)."""
    tiers = _tiers(tier)
    mem = _memory(ctx)
    items = mem.list_items(None if len(tiers) > 1 else tiers[0], limit=limit)
    if json_out:
        _dump(items)
        return
    if not items:
        err_console.print("[dim]memory is empty[/dim]")
        return
    # The id is what `memory forget` takes: whole; the time goes first when the room is short.
    cols = [Col("tier"), Col("id"), Col("source / run", flex=True),
            Col("time", optional=True), Col("text", flex=True)]
    rows = [[it["tier"], it["id"], it["source"], short_time(it.get("time") or None), str(it["text"])]
            for it in items]
    console.print(fitted_table(cols, rows, console.width))


@app.command()
def forget(
    ctx: typer.Context,
    item_id: Annotated[str | None, typer.Argument(metavar="ID", help="An episode (run id) or chunk id.")] = None,
    source: Annotated[str | None, typer.Option(
        "--source", help="Forget every chunk of this file or directory ('text' for notes).")] = None,
) -> None:
    """Delete one episode or chunk, or everything ingested from a path."""
    if (item_id is None) == (source is None):
        raise UsageError("give an ID or --source PATH, not both and not neither")
    mem = _memory(ctx)
    if item_id is not None:
        item_id = _full_run_id(ctx, item_id)
    n = mem.forget(item_id) if item_id is not None else mem.forget_source(source or "")
    if n == 0:
        raise UsageError(f"nothing in memory matches {item_id or source!r}")
    console.print(f"forgot {counted(n, 'item')}", highlight=False)


def _full_run_id(ctx: typer.Context, item_id: str) -> str:
    """An episode's id is its run's: a run id prefix (or ``last``) names it, as everywhere else;
    anything that names no run (a chunk id) is taken as it is."""
    from agentcli.record.runs import find_run

    try:
        return find_run(state_of(ctx).settings.data_dir, item_id).parent.name
    except UsageError:
        return item_id


def _size(n: int | None) -> str:
    if n is None:
        return "n/a (remote)"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


@app.command(short_help="Rows per tier, embedder, versions, indices and size.")
def stats(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON.")] = False,
) -> None:
    """Rows per tier, embedder, dimension, versions, indices and size on disk."""
    st = _memory(ctx).stats()
    if json_out:
        _dump(st.as_dict())
        return
    console.print(f"uri        {escape(st.uri)}", highlight=False)
    console.print(f"episodes   {st.embedder or '(none yet)'}  dim {st.dim or '-'}  "
                  f"(configured: {st.configured_embedder})", highlight=False)
    console.print(f"chunks     {st.chunk_embedder or '(none yet)'}  dim {st.chunk_dim or '-'}  "
                  f"(configured: {st.configured_chunk_embedder or st.configured_embedder})", highlight=False)
    console.print(f"on disk    {_size(st.size_on_disk)}", highlight=False)
    cols = [Col("tier"), Col("table"), *(Col(n, justify="right") for n in ("rows", "version", "versions kept",
                                                                        "fragments")), Col("indices", flex=True)]
    names = {"episodes": "episodic", "chunks": "semantic"}
    rows = [[names.get(name, name), name, str(ts.rows), str(ts.version), str(ts.versions), str(ts.fragments),
             ", ".join(ts.indices)] for name, ts in st.tables.items()]
    console.print(fitted_table(cols, rows, console.width))


@app.command(short_help="Re-embed everything with the configured embedder.")
def reindex(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Re-embed every episode and chunk with the configured embedder (after changing it)."""
    mem = _memory(ctx)
    with _progress_bar() as progress:
        counts = mem.reindex(progress=progress)
    if json_out:
        _dump({"embedder": mem.embedder.name, "rows": counts})
        return
    total = sum(counts.values())
    console.print(f"re-embedded {counted(total, 'row')} with {mem.embedder.name}", highlight=False)
