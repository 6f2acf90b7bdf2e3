"""Two processes at once: one adds notes and searches memory (as `agent memory add/search` do),
the other records run episodes and searches (as runs do): nothing is lost, no search fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agentcli.config import load_settings
from agentcli.memory import Memory

_WORKER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from agentcli.config import load_settings
    from agentcli.memory import Memory, store
    store.OPTIMIZE_MIN_INTERVAL, store.OPTIMIZE_SMALL_FRAGMENTS = 0.0, 3  # collide as much as possible
    ws, role, n, start = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    mem = Memory.from_settings(load_settings(workspace=ws, use_user_config=False,
                                             environ={"AGENT_MEMORY__EMBEDDING_MODEL": "test/hash"}))
    while time.time() < start:
        time.sleep(0.005)
    searches = 0
    for i in range(n):
        if role == "notes":
            mem.add_text(f"note {i}: the parser handles case {i * 7} of the grammar")
        else:
            mem.record_episode(run_id=f"run-{i:03d}", task=f"fix bug {i} in the parser", plan_summary="s1 read",
                               status="COMPLETE", reason="complete", answer=f"fixed {i}", cost_usd=0.0)
        mem.recall(f"parser case {i}", min_score=0.0)
        searches += 1
    print(json.dumps({"role": role, "writes": n, "searches": searches}))
""")


@pytest.mark.slow
def test_adding_and_searching_while_runs_record_episodes_loses_nothing(workspace: Path) -> None:
    n = 25
    start = time.time() + 4.0  # both interpreters up before the first write
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(workspace), role, str(n), str(start)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for role in ("notes", "episodes")]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1])["searches"] == n
    mem = Memory.from_settings(load_settings(workspace=workspace, use_user_config=False,
                                             environ={"AGENT_MEMORY__EMBEDDING_MODEL": "test/hash"}))
    notes = {r["text"] for r in mem.list_items("semantic", limit=10_000)}
    assert notes == {f"note {i}: the parser handles case {i * 7} of the grammar" for i in range(n)}
    episodes = {r["id"] for r in mem.list_items("episodic", limit=10_000)}
    assert episodes == {f"run-{i:03d}" for i in range(n)}
