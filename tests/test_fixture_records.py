"""Committed records replay: those of this release (``make records`` makes them, see tests/records.py),
and a record made by other prompts says which prompts in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from records import ROOT, SCENARIOS, cli_invoke, version_dir

from agentcli import __version__
from agentcli.engine import prompts, reviewer
from agentcli.record.reader import RunRecord

RECORDS = sorted(p.parent for p in ROOT.glob("*/*/events.jsonl") if p.parent.parent.name[:1].isdigit())


def _install(record: Path, workspace: Path) -> str:
    """The record copied into the workspace's runs, as `agent replay` finds it; its run id."""
    run_id = RunRecord.read(record / "events.jsonl").run_id
    dest = workspace / ".agent" / "runs" / run_id
    dest.mkdir(parents=True)
    shutil.copyfile(record / "events.jsonl", dest / "events.jsonl")
    return run_id


def _replay(run_id: str, *flags: str) -> tuple[int, str, str]:
    r = cli_invoke(["replay", run_id, *flags], [])
    return r.exit_code, r.stdout, r.stderr


def test_this_release_has_its_committed_records() -> None:
    # A release without its records would test nothing: `make records` makes them.
    assert sorted(p.name for p in version_dir().iterdir()) == sorted(s.name for s in SCENARIOS)
    for s in SCENARIOS:
        start = RunRecord.read(version_dir() / s.name / "events.jsonl").start
        assert start is not None and start.versions["agentcli"] == __version__
        assert start.prompts == prompts.prompt_hashes(), (
            f"{s.name} was recorded with other prompts ({', '.join(prompts.changed_prompts(start.prompts))}): "
            "re-record with `make records` and say so in CHANGELOG.md")


@pytest.mark.parametrize("record", RECORDS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_committed_record_replays_identical(record: Path, workspace: Path) -> None:
    code, out, err = _replay(_install(record, workspace))
    assert code == 0 and out.startswith("identical"), out + err


def test_a_record_made_by_other_prompts_says_which_in_one_line(workspace: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = _install(version_dir() / "read-and-summarise", workspace)
    monkeypatch.setattr(reviewer, "_SYSTEM", reviewer._SYSTEM.replace("Decide:", "Decide now:"))
    prompts._hashes.cache_clear()
    try:
        code, out, err = _replay(run_id, "--json")
        assert code == 1
        cause = json.loads(out)["divergence"]["cause"]
        assert cause == (f"the record was made by other prompts (agentcli {__version__}; this is {__version__}): "
                         "reviewer.system changed, so its model requests differ")
        code, out, err = _replay(run_id)
        assert code == 1 and cause in err and "is not in the recording" not in err
    finally:
        prompts._hashes.cache_clear()


def test_a_record_without_prompt_hashes_reads_and_replays(workspace: Path) -> None:
    # A record of 0.1.0 has no prompts field: it reads, and, made by the same prompts, replays.
    src = version_dir() / "read-and-summarise" / "events.jsonl"
    lines = [json.loads(x) for x in src.read_text().splitlines()]
    for e in lines:
        if e["type"] == "run_started":
            del e["data"]["prompts"]
    old = workspace / "old"
    old.mkdir()
    (old / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    rec = RunRecord.read(old / "events.jsonl")
    assert not rec.warnings and rec.start is not None and rec.start.prompts == {}
    code, out, err = _replay(_install(old, workspace))
    assert code == 0 and out.startswith("identical"), out + err


def test_a_record_of_0_1_0_that_diverges_says_it_recorded_no_prompts(workspace: Path) -> None:
    # Its reviewer was asked with the prompts of 0.1.0 (the "stop" verdict came later).
    code, _, err = _replay(_install(ROOT / "v1-replan", workspace))
    assert code == 1
    assert err.strip() == (f"the record was made by agentcli 0.1.0 (this is {__version__}), which did not record its "
                           "prompts: a prompt changed since would explain this divergence")
