"""`agent undo RUN_ID` and `agent runs diff RUN_ID`: what a run changed in the workspace, and
putting it back, from the run's checkpoints (:mod:`agentcli.record.checkpoints`).

Exit codes: 0 done (or nothing to do); 1 stopped at conflicts (files changed after the run;
``--force`` overrides); 2 bad input (no such run, step or checkpoint); 4 not confirmed (no
terminal and no ``--yes``).
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from agentcli.cli.commands.common import MAX_LIST, console, counted, err_console, in_range, print_error, state_of
from agentcli.errors import ApprovalDenied, ExitCode, UsageError

if TYPE_CHECKING:
    from agentcli.config import Settings
    from agentcli.record.checkpoints import ShadowRepo, UndoResult
    from agentcli.record.reader import RunRecord


def _repo(settings: Settings) -> ShadowRepo:
    from agentcli.record.checkpoints import ShadowRepo

    return ShadowRepo(settings.workspace, settings.data_dir, settings.config.tools.max_file_bytes)


def _open(settings: Settings, run_id: str) -> tuple[ShadowRepo, RunRecord]:
    from agentcli.record.reader import RunRecord

    rec = RunRecord.open(settings.data_dir, run_id)
    return _repo(settings), rec


def diff(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    step: Annotated[str | None, typer.Option("--step", help="Only what this step changed (e.g. s2).")] = None,
    stat: Annotated[bool, typer.Option("--stat", help="Files and line counts only.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Changed files as JSON.")] = False,
) -> None:
    """What a run (or one step) changed in the workspace, shell commands' changes included."""
    from agentcli.errors import UsageError
    from agentcli.record.checkpoints import run_checkpoints

    repo, rec = _open(state_of(ctx).settings, run_id)
    cps = run_checkpoints(rec)
    if cps.first is None:
        raise UsageError(f"run {rec.run_id} has no checkpoints (no step of it could change the workspace)")
    old, new = (cps.before_step(step), cps.after_step(step)) if step else (str(cps.first), str(cps.last))
    if json_out:
        files = [{"status": f.status, "path": f.path} for f in repo.changes(old, new)]
        typer.echo(json.dumps({"run_id": rec.run_id, "step": step, "from": old, "to": new, "files": files},
                              indent=2))
        return
    text = repo.diff(old, new, stat=stat)
    if not text.strip():
        err_console.print(f"run {rec.run_id}{' step ' + step if step else ''} changed nothing", highlight=False)
        return
    typer.echo(text, nl=not text.endswith("\n"))


def _render(res: UndoResult, *, verb: str) -> None:
    if res.unfinished:
        err_console.print("[yellow]the run did not finish (killed?): everything changed since its first "
                          "checkpoint counts as the run's[/yellow]")
    labels = {"A": "created", "M": "modified", "D": "deleted", "T": "type changed"}
    for f in res.files:
        mark = " [red](changed since the run)[/red]" if f.path in res.conflicts else ""
        err_console.print(f"  {labels.get(f.status, f.status):>12}  {escape(f.path)}{mark}", highlight=False)
    for p in res.not_restorable:
        err_console.print(f"  [yellow]not restorable[/yellow] (over tools.max_file_bytes): {escape(p)}",
                          highlight=False)
    if res.applied:
        what = counted(len(res.files), "file")
        console.print(f"{verb} {res.run_id}: restored {what}"
                      + (f" to before step {res.to_step}" if res.to_step else "")
                      + (" (forced over conflicts)" if res.forced and res.conflicts else ""), highlight=False)
        again = f"agent undo {res.run_id} --redo" if res.kind == "undo" else f"agent undo {res.run_id}"
        err_console.print(f"[dim]to reverse this: {again}[/dim]", highlight=False)


def _choose_run(settings: Settings) -> str:
    """``agent undo`` without an id: the user picks one of the latest runs that changed files, at
    a terminal; without one nothing is guessed (a usage error, exit 2)."""
    from agentcli.cli.commands.runs import status_text
    from agentcli.errors import UsageError
    from agentcli.record.runs import list_runs

    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise UsageError("give the run to undo: agent undo RUN_ID (or `agent undo last` for the latest run)")
    recent = list_runs(settings.data_dir, _LOOK_BACK)
    if not recent:
        raise UsageError(f"no runs yet in {settings.data_dir / 'runs'}")
    runs = [r for r in recent if r.changed_files][:_OFFERED]
    if not runs:
        raise UsageError(f"nothing to undo: none of the last {counted(len(recent), 'run')} changed files "
                         "(or they are undone already)")
    width = err_console.width
    for i, r in enumerate(runs, start=1):
        head = f"  [{i}] {r.run_id}  {status_text(r)}  "
        task = " ".join(r.task.split())
        room = max(width - len(head) - 1, 10)  # one column spare: a full line wraps on some terminals
        if len(task) > room:
            task = task[:room - 1] + "…"
        err_console.print(head + task, highlight=False, markup=False, no_wrap=True, overflow="ellipsis")
    from agentcli.cli.prompts import ask

    answer = ask("undo which run?", [(str(i), f"[{i}]") for i in range(1, len(runs) + 1)] + [("n", "[n]one")],
                 default="1")
    if answer == "n":
        raise ApprovalDenied("undo: no run chosen")
    return runs[int(answer) - 1].run_id


#: ``agent undo`` without an id offers at most this many runs, of the latest this many.
_OFFERED, _LOOK_BACK = 5, 50


def undo(
    ctx: typer.Context,
    run_id: Annotated[str | None, typer.Argument(
        help="Run id, a unique prefix of one, or `last`; without it, asks which (at a terminal).")] = None,
    to_step: Annotated[str | None, typer.Option(
        "--to-step", help="Undo only from this step on: restore the workspace as it was before it.")] = None,
    redo: Annotated[bool, typer.Option("--redo", help="Undo the run's last undo: restore its result.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Restore even files changed after the run (their later changes are lost).")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    session: Annotated[str | None, typer.Option(
        "--session", help="Roll a session back (an id, a prefix or `last`): undo its turns after --to TURN, "
        "newest first.")] = None,
    to_turn: Annotated[int | None, typer.Option(
        "--to", callback=in_range(0, MAX_LIST),
        help="With --session: the turn to go back to (0: before the first).")] = None,
) -> None:
    """Restore the files a run changed to their state before it: created files are deleted,
    deleted ones come back. Stops, touching nothing, if a file changed after the run.
    `agent undo last` undoes the last run (a session's last turn)."""
    from agentcli.record.checkpoints import undo_run

    settings = state_of(ctx).settings
    if session is not None or to_turn is not None:
        if session is None or to_turn is None or run_id is not None or to_step or redo:
            raise UsageError("roll a session back with: agent undo --session SESSION --to TURN")
        roll_back(settings, session, to_turn, force=force, yes=yes, json_out=json_out)
        return
    repo, rec = _open(settings, run_id if run_id is not None else _choose_run(settings))
    verb = "redo" if redo else "undo"
    plan = undo_run(repo, rec, to_step=to_step, redo=redo, force=force, apply=False)

    def emit(res: UndoResult) -> None:
        if json_out:
            typer.echo(json.dumps(res.as_dict(), indent=2))
        else:
            _render(res, verb=verb)

    if not plan.files:
        emit(plan)
        if not json_out:
            err_console.print(f"{verb} {rec.run_id}: nothing to restore", highlight=False)
        raise typer.Exit(ExitCode.OK)
    if plan.conflicts and not force:
        emit(plan)
        print_error(f"{counted(len(plan.conflicts), 'file')} changed after run {rec.run_id}: "
                    f"{', '.join(plan.conflicts[:5])}{' ...' if len(plan.conflicts) > 5 else ''}; nothing was "
                    "restored (--force restores them anyway)")
        raise typer.Exit(ExitCode.FAILED)
    if not yes:
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            raise ApprovalDenied(f"{verb} of {rec.run_id} would restore {counted(len(plan.files), 'file')} and "
                                 "there is no terminal to confirm: re-run with --yes")
        from agentcli.cli.prompts import ask

        _render(plan, verb=verb)
        if ask(f"{verb} these changes?", [("y", "[y]es"), ("n", "[n]o")], default="n") != "y":
            raise ApprovalDenied(f"{verb} of {rec.run_id} was not confirmed")
    res = undo_run(repo, rec, to_step=to_step, redo=redo, force=force, apply=True)
    _record(settings, rec, res)
    emit(res)


def _record(settings: Settings, rec: RunRecord, res: UndoResult) -> None:
    """The undo as an ``undo`` event of the run it undid."""
    from agentcli.models.calllog import run_dir
    from agentcli.record.events import EVENTS_NAME, EventLog, Undone

    log = EventLog(run_dir(settings.data_dir, rec.run_id) / EVENTS_NAME, rec.run_id,
                   start_seq=max((e.seq for e in rec.events), default=0))
    try:
        log.emit(Undone.model_validate(res.as_dict()), durable=True)
    finally:
        log.close()


def roll_back(settings: Settings, session_id: str, to_turn: int, *, force: bool, yes: bool,
               json_out: bool) -> None:
    """Undo the turns of a session's chain after ``to_turn``, newest first (each as `agent undo`
    of its run would), then record that the chain goes back to ``to_turn``. A turn whose files
    changed after it stops the rollback there (``--force``: restore anyway)."""
    from agentcli.record.checkpoints import undo_run
    from agentcli.record.reader import RunRecord
    from agentcli.record.sessions import SessionRecord

    sess = SessionRecord.open(settings.data_dir, session_id)
    chain = sess.chain()
    if to_turn and to_turn not in {t.turn for t in chain}:
        raise UsageError(f"turn {to_turn} is not in session {sess.session_id}'s chain "
                         f"({', '.join(str(t.turn) for t in chain) or 'no turns'})")
    later = [t for t in chain if t.turn > to_turn][::-1]
    if not later:
        err_console.print(f"session {sess.session_id} is at turn {sess.head}: nothing to roll back", highlight=False)
        return
    if not yes:
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            raise ApprovalDenied(f"rolling session {sess.session_id} back to turn {to_turn} undoes "
                                 f"{counted(len(later), 'turn')} and there is no terminal to confirm: "
                                 "re-run with --yes")
        from agentcli.cli.prompts import ask

        for t in later:
            err_console.print(f"  turn {t.turn} ({t.run_id}): {escape(t.task[:80])}", highlight=False)
        what = "this turn" if len(later) == 1 else f"these {counted(len(later), 'turn')}"
        if ask(f"undo {what}?", [("y", "[y]es"), ("n", "[n]o")], default="n") != "y":
            raise ApprovalDenied(f"rollback of {sess.session_id} was not confirmed")
    repo = _repo(settings)
    undone: list[str] = []
    results = []
    for t in later:
        rec = RunRecord.open(settings.data_dir, t.run_id)
        try:
            plan = undo_run(repo, rec, force=force, apply=False)
        except UsageError:
            undone.append(t.run_id)  # nothing of it to restore (no checkpoints): it changed no files
            continue
        if not plan.files:
            undone.append(t.run_id)
            continue
        if plan.conflicts and not force:
            _render(plan, verb="undo")
            if undone:
                sess.roll_back(t.turn, undone)
            print_error(f"turn {t.turn}: {counted(len(plan.conflicts), 'file')} changed after run {rec.run_id}: "
                        f"{', '.join(plan.conflicts[:5])}; the session stops at turn {t.turn} "
                        "(--force restores them anyway)")
            raise typer.Exit(ExitCode.FAILED)
        res = undo_run(repo, rec, force=force, apply=True)
        _record(settings, rec, res)
        results.append(res)
        undone.append(t.run_id)
    sess.roll_back(to_turn, undone)
    if json_out:
        typer.echo(json.dumps({"session_id": sess.session_id, "to_turn": to_turn, "undone": undone,
                               "files": sum(len(r.files) for r in results)}, indent=2))
        return
    for r in results:
        _render(r, verb="undo")
    console.print(f"session {sess.session_id}: back to turn {to_turn} ({counted(len(undone), 'turn')} undone); "
                  "the next turn follows it", highlight=False)
