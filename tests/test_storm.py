"""A small kill -9 storm (bench/storm.py; `python -m bench.storm --runs 50` for the large one):
runs with side effects killed at random moments and resumed never repeat a side effect unasked,
never lose one, and stay readable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.storm import storm


@pytest.mark.slow
def test_a_small_kill9_storm(tmp_path: Path) -> None:
    report = storm(int(os.environ.get("AGENTCLI_STORM_RUNS", "3")), seed=7, root=tmp_path)
    t = report["totals"]
    assert t["unasked_repeats"] == 0, report["results"]
    assert t["missing"] == 0 and t["unreadable"] == 0, report["results"]
    assert t["not_replayable"] == 0, report["results"]  # killed and resumed, each run replays identical
    assert t["killed"] >= 1, report["results"]  # the storm did kill something
