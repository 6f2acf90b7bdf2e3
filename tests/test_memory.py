"""Memory: the three tiers' writes and recall, thresholds, dedup, re-ingest, the embedder check.

These use the real built-in embedder (all-MiniLM-L6-v2, offline) and a real LanceDB
directory under the test's workspace; nothing asserts timing.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from agentcli.config import Settings, load_settings
from agentcli.errors import ExitCode, ModelRequestsBlocked, UsageError, WorkspaceError
from agentcli.memory import EmbedderMismatch, Memory, WorkingMemory, flush, record_episode
from agentcli.memory import store as store_mod
from agentcli.memory.chunking import boundary_for, chunk_text, content_hash, count_tokens

PARSER = '''\
"""A tiny configuration parser."""


def parse_config(text):
    """Parse key=value lines into a dict, ignoring comments."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        out[key.strip()] = value.strip()
    return out
'''

DEPLOY = """\
# Deployment

Deploy the service with docker compose. Set the DATABASE_URL environment variable first.

## Rollback

To roll back a bad release, redeploy the previous image tag and restart the workers.
"""


def settings_for(ws: Path, **env: str) -> Settings:
    return load_settings(workspace=ws, environ=env, use_user_config=False)


def memory_for(ws: Path, events: list[tuple[str, dict[str, Any]]] | None = None, **env: str) -> Memory:
    sink = None if events is None else (lambda kind, payload: events.append((kind, payload)))
    return Memory.from_settings(settings_for(ws, **env), on_event=sink)


@pytest.fixture
def project(workspace: Path) -> Path:
    (workspace / "src").mkdir()
    (workspace / "src" / "config_parser.py").write_text(PARSER)
    (workspace / "docs").mkdir()
    (workspace / "docs" / "deploy.md").write_text(DEPLOY)
    return workspace


def chunk_rows(mem: Memory) -> list[dict[str, Any]]:
    return mem.list_items("semantic", limit=10_000)


# ------------------------------------------------------------------ working


def test_working_memory_write_and_recall(workspace: Path) -> None:
    working = WorkingMemory()
    mem = Memory.from_settings(settings_for(workspace), working=working)
    working.add_task("rename the helper function in utils.py")
    working.add_step("s1", "Read utils.py", "def slugify(text): return text.lower().replace(' ', '-')")
    working.add_step("s2", "Run the tests", "3 passed in 0.2s")
    result = mem.recall("what does slugify do?", tiers=("working",))
    assert result.hits, "the step that read slugify should be recalled"
    top = result.hits[0]
    assert top.tier == "working" and "slugify" in top.text and top.source == "working:step:s1"
    assert 0.0 <= top.score <= 1.0
    # Nothing stored on disk for the working tier.
    assert not (workspace / ".agent" / "memory" / "chunks.lance").exists()


def test_working_memory_chunks_long_outputs() -> None:
    working = WorkingMemory()
    long_output = "\n".join(f"line {i}: value {i * 7}" for i in range(400))
    ids = working.add_step("s1", "Read a big file", long_output)
    assert len(ids) > 1
    assert all(it.ref == "s1" for it in working.items())


# ------------------------------------------------------------------ episodic


def test_episode_write_recall_and_idempotent_upsert(workspace: Path) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    mem = memory_for(workspace, events)
    args: dict[str, Any] = {
        "run_id": "20261124-010000-aaaaaa", "task": "fix the failing parser unit test",
        "plan_summary": "s1 read_file src/config_parser.py; s2 edit", "status": "COMPLETE",
        "reason": "complete", "answer": "strip whitespace around keys", "cost_usd": 0.0012,
        "time": "2026-11-24T01:00:00+00:00",
    }
    first = mem.record_episode(**args)
    assert (first.inserted, first.updated, first.ids) == (1, 0, ["20261124-010000-aaaaaa"])
    second = mem.record_episode(**{**args, "answer": "strip whitespace around keys and values"})
    assert (second.inserted, second.updated) == (0, 1)
    items = mem.list_items("episodic")
    assert len(items) == 1 and "keys and values" in items[0]["text"]

    result = mem.recall("what happened when I fixed the parser tests?", tiers=("episodic",))
    assert [h.id for h in result.hits] == ["20261124-010000-aaaaaa"]
    hit = result.hits[0]
    assert hit.meta["status"] == "COMPLETE" and hit.meta["cost_usd"] == pytest.approx(0.0012)
    assert hit.score >= mem.config.episodic_threshold
    kinds = [k for k, _ in events]
    assert kinds == ["memory_write", "memory_write", "memory_recall"]
    assert events[-1][1]["hits"][0] == {"tier": "episodic", "id": "20261124-010000-aaaaaa",
                                        "score": round(hit.score, 4), "source": "run 20261124-010000-aaaaaa"}


def test_an_episode_left_pending_is_complete_and_never_lost(workspace: Path) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    mem = memory_for(workspace, events)
    args: dict[str, Any] = {"task": "tidy the changelog", "plan_summary": "s1 edit", "status": "COMPLETE",
                            "reason": "complete", "answer": "tidied", "cost_usd": None}
    queued = mem.record_episode(run_id="r-bg", wait=False, **args)
    assert queued.queued and queued.ids == ["r-bg"]
    # The event is in the log at once (the run's log closes right after); the counts come later.
    assert events == [("memory_write", {**queued.event(), "queued": True})]
    assert flush(timeout=60)  # nothing runs in the background: the episode waits in its file
    assert [p.name for p in (workspace / ".agent" / "memory-pending").glob("*.json")] == ["r-bg.json"]
    again = memory_for(workspace)  # the next process writes it before it recalls
    assert [h.id for h in again.recall("tidy the changelog", tiers=("episodic",)).hits] == ["r-bg"]
    assert not list((workspace / ".agent" / "memory-pending").glob("*.json"))  # written: nothing pending

    # A process that died before its write finished leaves the episode pending: the next one writes it.
    pending = workspace / ".agent" / "memory-pending"
    (pending / "r-killed.json").write_text(json.dumps({
        "schema_version": 1, "uri": again.uri, "run_id": "r-killed", "time": "2026-11-24T01:00:00+00:00",
        "plan": None, **{**args, "task": "rotate the staging keys"}}))
    later = memory_for(workspace)
    assert "r-killed" in [i["id"] for i in later.list_items("episodic")]
    assert not (pending / "r-killed.json").exists()


def test_record_episode_one_call_form_and_failed_runs(workspace: Path) -> None:
    settings = settings_for(workspace)
    res = record_episode(settings, run_id="r-failed", task="deploy to production", plan_summary="",
                         status="FAILED", reason="budget_exceeded:cost", answer="", cost_usd=None)
    assert res.inserted == 1
    mem = Memory.from_settings(settings)
    [hit] = mem.recall("deploy to production", tiers=("episodic",)).hits
    assert hit.meta["status"] == "FAILED" and hit.meta["cost_usd"] is None
    assert hit.planner_line() == "episode r-failed (FAILED): deploy to production → budget_exceeded:cost"


# ------------------------------------------------------------------ semantic


def test_semantic_add_and_recall_with_source_lines(project: Path) -> None:
    mem = memory_for(project)
    res = mem.add_paths(["src", "docs"])
    assert sorted(res.sources) == ["docs/deploy.md", "src/config_parser.py"]
    assert res.inserted == len(res.ids) >= 2 and res.embedded == res.inserted
    hits = mem.recall("how do I roll back a release?", tiers=("semantic",)).hits
    assert hits and hits[0].source.startswith("docs/deploy.md:")
    start, end = hits[0].meta["start_line"], hits[0].meta["end_line"]
    assert 1 <= start <= end <= DEPLOY.count("\n")
    code = mem.recall("parse key value configuration lines", tiers=("semantic",)).hits
    assert code[0].source.startswith("src/config_parser.py:")


def test_exact_identifiers_get_a_full_text_boost(project: Path) -> None:
    mem = memory_for(project)
    mem.add_paths(["."])
    [hit, *_] = mem.recall("parse_config", tiers=("semantic",), min_score=0.0).hits
    assert hit.meta["path"] == "src/config_parser.py"
    assert hit.meta["fts"] is not None and hit.score > hit.meta["vector_score"]


def test_thresholds_filter_unrelated_and_follow_config(project: Path) -> None:
    mem = memory_for(project)
    mem.add_paths(["."])
    assert mem.recall("a recipe for chocolate cake with cream", tiers=("semantic",)).hits == []
    # With no threshold, the same query returns something (every score is in 0..1).
    loose = mem.recall("a recipe for chocolate cake with cream", tiers=("semantic",), min_score=0.0).hits
    assert loose and all(0.0 <= h.score <= 1.0 for h in loose)
    strict = memory_for(project, AGENT_MEMORY__SEMANTIC_THRESHOLD="0.99")
    assert strict.recall("how do I roll back a release?", tiers=("semantic",)).hits == []
    none_k = memory_for(project, AGENT_MEMORY__SEMANTIC_K="0")
    assert none_k.recall("how do I roll back a release?", tiers=("semantic",)).hits == []
    one = mem.recall("deployment and configuration", tiers=("semantic",), k=1, min_score=0.0)
    assert len(one.hits) == 1


def test_reingesting_a_changed_file_replaces_its_chunks(project: Path) -> None:
    mem = memory_for(project)
    mem.add_paths(["docs/deploy.md"])
    again = mem.add_paths(["docs/deploy.md"])
    assert (again.unchanged, again.embedded, again.inserted) == (1, 0, 0)

    (project / "docs" / "deploy.md").write_text(DEPLOY.replace(
        "redeploy the previous image tag", "run `make rollback VERSION=<tag>` on the bastion host"))
    changed = mem.add_paths(["docs/deploy.md"])
    assert changed.deleted >= 1 and changed.inserted >= 1
    texts = " ".join(r["text"] for r in chunk_rows(mem))
    assert "make rollback" in texts and "redeploy the previous image tag" not in texts
    [hit, *_] = mem.recall("how do I roll back?", tiers=("semantic",), min_score=0.0).hits
    assert "make rollback" in hit.text


def test_files_gone_from_an_added_directory_are_forgotten(project: Path) -> None:
    mem = memory_for(project)
    mem.add_paths(["docs", "src"])
    (project / "docs" / "deploy.md").unlink()
    res = mem.add_paths(["docs"])
    assert res.sources == ["docs/deploy.md"] and res.deleted >= 1
    assert {r["source"].split(":")[0] for r in chunk_rows(mem)} == {"src/config_parser.py"}


def test_duplicate_chunks_are_stored_and_recalled_once(workspace: Path) -> None:
    block = "The answer to the ultimate question is forty-two, computed by Deep Thought."
    (workspace / "a.txt").write_text(block + "\n")
    (workspace / "b.txt").write_text(block + "\n")
    (workspace / "c.md").write_text(block + "\n")
    mem = memory_for(workspace)
    res = mem.add_paths(["a.txt", "b.txt", "c.md"])
    assert res.inserted == 3  # one row per source: provenance stays exact
    hits = mem.recall("what is the answer to the ultimate question?", tiers=("semantic",)).hits
    assert len(hits) == 1
    assert {hits[0].source, *hits[0].meta["also_in"]} == {"a.txt:1-1", "b.txt:1-1", "c.md:1-1"}

    first = mem.add_text("Staging lives at staging.example.com.")
    second = mem.add_text("Staging lives at staging.example.com.")
    assert (first.inserted, second.inserted, second.unchanged) == (1, 0, 1)
    assert sum(1 for r in chunk_rows(mem) if r["source"] == "text") == 1


def test_repeated_blocks_inside_one_file_are_stored_once() -> None:
    text = "\n\n".join(["def helper():\n    return 1"] * 3)
    chunks = chunk_text(text, max_tokens=12, overlap_tokens=0)
    assert len({c.content_hash for c in chunks}) < len(chunks)


def test_chunking_respects_size_lines_and_structure() -> None:
    long_doc = "\n".join(f"Sentence {i} says something about topic {i % 7}." for i in range(120))
    chunks = chunk_text(long_doc, max_tokens=60, overlap_tokens=15)
    assert chunks[0].start_line == 1 and chunks[-1].end_line == 120
    for a, b in pairwise(chunks):
        assert count_tokens(a.text) <= 60
        assert a.start_line < b.start_line <= a.end_line + 1  # moves on, with overlap
    assert any(b.start_line <= a.end_line for a, b in pairwise(chunks))
    lines = long_doc.splitlines()
    for c in chunks:
        assert c.text == "\n".join(lines[c.start_line - 1:c.end_line])

    md = "# Intro\n\nSome words about the project here.\n\n## Rollback\n\nRedeploy the previous tag.\n"
    sections = chunk_text(md, boundary=boundary_for("x.md"))
    assert [c.text.splitlines()[0] for c in sections] == ["# Intro", "## Rollback"]
    code = "import os\nimport sys\n\n\n@decorator\ndef one():\n    return os.sep\n\n\nclass Two:\n    pass\n"
    parts = chunk_text(code, boundary=boundary_for("m.py"))
    assert [c.text.splitlines()[0] for c in parts] == ["import os", "@decorator", "class Two:"]
    one_line = "x = " + " + ".join(str(i) for i in range(400))
    pieces = chunk_text(one_line, max_tokens=50, overlap_tokens=0)
    assert len(pieces) > 1 and all(p.start_line == p.end_line == 1 for p in pieces)


def test_recall_on_a_fresh_workspace_stores_and_loads_nothing(workspace: Path) -> None:
    mem = memory_for(workspace)
    assert mem.recall("anything at all").hits == []
    assert mem.recall_for_planner("anything at all") == []
    assert not (workspace / ".agent").exists()


def test_paths_outside_the_workspace_are_refused(tmp_path: Path, workspace: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("password=hunter2\n")
    (workspace / "link.txt").symlink_to(outside)
    mem = memory_for(workspace)
    for bad in ("../secret.txt", str(outside), "link.txt"):
        with pytest.raises(WorkspaceError) as err:
            mem.add_paths([bad])
        assert err.value.exit_code == ExitCode.USAGE
    assert not (workspace / ".agent" / "memory" / "chunks.lance").exists()
    with pytest.raises(UsageError):
        mem.add_paths(["missing.txt"])


def test_forget_by_id_and_by_source(project: Path) -> None:
    mem = memory_for(project)
    mem.add_paths(["."])
    mem.record_episode(run_id="r1", task="t", plan_summary="", status="COMPLETE", reason="", answer="a",
                       cost_usd=0.0)
    assert mem.forget("r1") == 1 and mem.forget("r1") == 0
    n_docs = sum(1 for r in chunk_rows(mem) if r["source"].startswith("docs/"))
    assert mem.forget_source("docs") == n_docs > 0
    assert all(r["source"].startswith("src/") for r in chunk_rows(mem))
    cid = chunk_rows(mem)[0]["id"]
    assert mem.forget(cid) == 1


def test_recall_merges_tiers_best_first(project: Path) -> None:
    working = WorkingMemory()
    mem = Memory.from_settings(settings_for(project), working=working)
    mem.add_paths(["."])
    mem.record_episode(run_id="r1", task="roll back the release", plan_summary="", status="COMPLETE",
                       reason="", answer="redeployed v1.2", cost_usd=0.0)
    working.add_task("roll back the release")
    result = mem.recall("roll back the release")
    tiers = {h.tier for h in result.hits}
    assert {"episodic", "semantic"} <= tiers
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)
    # The task text held by working memory and the episode's task differ as texts, so both
    # stay; an identical text recalled twice would appear once.
    assert len({content_hash(h.text) for h in result.hits}) == len(result.hits)
    assert result.per_tier.keys() == {"working", "episodic", "semantic"}


def test_unknown_tier_is_a_usage_error(workspace: Path) -> None:
    with pytest.raises(UsageError):
        memory_for(workspace).recall("x", tiers=("procedural",))  # type: ignore[arg-type]


# ------------------------------------------------------------------ the embedder identity


def test_embedder_mismatch_is_a_clear_error_and_reindex_fixes_it(project: Path) -> None:
    builtin = memory_for(project)
    builtin.add_paths(["docs"])
    builtin.record_episode(run_id="r1", task="roll back the release", plan_summary="", status="COMPLETE",
                           reason="", answer="done", cost_usd=0.0)
    other = memory_for(project, AGENT_MEMORY__EMBEDDING_MODEL="test/hash")
    with pytest.raises(EmbedderMismatch) as err:
        other.recall("roll back")
    assert err.value.exit_code == ExitCode.USAGE == 2
    assert "agent memory reindex" in err.value.message and "builtin:all-MiniLM" in err.value.message
    with pytest.raises(EmbedderMismatch):
        other.add_text("a note")

    counts = other.reindex()
    assert counts == {"episodes": 1, "chunks": len(chunk_rows(builtin))}
    stats = other.stats()
    assert (stats.embedder, stats.dim) == ("test/hash-256", 256)
    assert other.recall("roll back the release", tiers=("episodic",)).hits[0].id == "r1"
    # And now the built-in embedder is the stranger.
    with pytest.raises(EmbedderMismatch):
        memory_for(project).recall("roll back")


def test_an_empty_memory_follows_the_configured_embedder(workspace: Path) -> None:
    memory_for(workspace).add_text("a note")
    mem = memory_for(workspace)
    assert mem.forget_source("text") == 1
    hashed = memory_for(workspace, AGENT_MEMORY__EMBEDDING_MODEL="test/hash-64")
    hashed.add_text("another note")  # nothing stored under the old embedder: no error
    assert hashed.stats().chunk_dim == 64


def test_litellm_embedding_models_go_through_llm_py(workspace: Path) -> None:
    mem = memory_for(workspace, AGENT_MEMORY__EMBEDDING_MODEL="openai/text-embedding-3-small")
    assert mem.embedder.name == "openai/text-embedding-3-small" and mem.embedder.dim is None
    with pytest.raises(ModelRequestsBlocked):
        mem.add_text("a note")


@pytest.mark.slow
def test_litellm_embeddings_over_http(workspace: Path, allow_model_requests: None, httpserver: Any,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def answer(request: Any) -> Any:
        from werkzeug import Response

        body = json.loads(request.data)
        data = [{"object": "embedding", "index": i, "embedding": [1.0, float(len(t)), 0.5]}
                for i, t in enumerate(body["input"])]
        return Response(json.dumps({"object": "list", "data": data, "model": body["model"],
                                    "usage": {"prompt_tokens": 3, "total_tokens": 3}}),
                        content_type="application/json")

    httpserver.expect_request("/v1/embeddings", method="POST").respond_with_handler(answer)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")  # for this test only: it is too short to mask
    mem = memory_for(workspace, AGENT_MEMORY__EMBEDDING_MODEL="openai/text-embedding-3-small",
                     AGENT_API_BASE=httpserver.url_for("/v1"))
    res = mem.add_text("a note about staging")
    assert res.inserted == 1
    stats = mem.stats()
    assert (stats.chunk_embedder, stats.chunk_dim) == ("openai/text-embedding-3-small", 3)


# ------------------------------------------------------------------ the planner hook


def test_recall_for_planner_reaches_the_planner_prompt(project: Path) -> None:
    from test_plan import make_registry
    from test_planner import GOOD

    from agentcli.models.client import LLMClient
    from agentcli.models.fakes import ScriptedModel
    from agentcli.planning.planner import make_plan

    settings = load_settings(workspace=project, environ={}, use_user_config=False,
                             overrides={"model": "test/scripted"})
    mem = Memory.from_settings(settings)
    mem.add_paths(["docs"])
    mem.record_episode(run_id="20261124-010000-aaaaaa", task="roll back the release", plan_summary="s1 shell",
                       status="COMPLETE", reason="complete", answer="redeployed the previous tag",
                       cost_usd=0.01)
    lines = mem.recall_for_planner("roll back the bad release")
    assert lines[0] == ("episode 20261124-010000-aaaaaa (COMPLETE): roll back the release → "
                        "redeployed the previous tag")
    assert any(line.startswith("docs/deploy.md:") for line in lines)

    model = ScriptedModel([GOOD])
    client = LLMClient(settings.config, backend=model)
    asyncio.run(make_plan("roll back the bad release", settings=settings,
                          registry=make_registry(project, settings.config), client=client,
                          recall=mem.recall_for_planner, save=False))
    prompt = "\n".join(str(m["content"]) for m in model.requests[0].messages)
    assert "episode 20261124-010000-aaaaaa (COMPLETE): roll back the release" in prompt
    assert "docs/deploy.md:" in prompt
    assert mem.last_recall is not None and mem.last_recall.hits


# ------------------------------------------------------------------ upkeep and concurrency


def test_writes_compact_old_versions(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "OPTIMIZE_MIN_INTERVAL", 0.0)
    monkeypatch.setattr(store_mod, "OPTIMIZE_SMALL_FRAGMENTS", 4)
    mem = memory_for(workspace, AGENT_MEMORY__EMBEDDING_MODEL="test/hash")
    for i in range(12):
        mem.add_text(f"note number {i} about topic {i * 13}")
    stats = mem.stats().tables["chunks"]
    assert stats.rows == 12
    assert stats.fragments < 4  # compacted as it went, not one fragment per write


_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from agentcli.config import load_settings
    from agentcli.memory import Memory, store
    # Compact often, so the two processes' compactions and writes collide as much as possible.
    store.OPTIMIZE_MIN_INTERVAL, store.OPTIMIZE_SMALL_FRAGMENTS = 0.0, 3
    ws, prefix, start = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    settings = load_settings(workspace=ws, environ={"AGENT_MEMORY__EMBEDDING_MODEL": "test/hash"},
                             use_user_config=False)
    mem = Memory.from_settings(settings)
    files = sorted(p.name for p in (ws / prefix).iterdir())
    while time.time() < start:
        time.sleep(0.005)
    for name in files:
        mem.add_paths([f"{prefix}/{name}"])
        mem.record_episode(run_id=f"{prefix}-{name}", task=f"ingest {name}", plan_summary="",
                           status="COMPLETE", reason="", answer="ok", cost_usd=0.0)
    print("done", len(files))
""")


@pytest.mark.slow
def test_two_processes_writing_at_once_lose_nothing(workspace: Path) -> None:
    n_files = 15
    for prefix in ("alpha", "beta"):
        (workspace / prefix).mkdir()
        for i in range(n_files):
            lines = [f"{prefix} file {i} line {j}: " + " ".join(f"w{(i * 31 + j * 7 + k) % 97}" for k in range(12))
                     for j in range(40)]
            (workspace / prefix / f"f{i:02d}.txt").write_text("\n".join(lines) + "\n")
    expected = {}
    for prefix in ("alpha", "beta"):
        for i in range(n_files):
            text = (workspace / prefix / f"f{i:02d}.txt").read_text()
            expected[f"{prefix}/f{i:02d}.txt"] = len({c.content_hash for c in chunk_text(text)})
    start = time.time() + 4.0  # both interpreters are up (lancedb imported) before the first write
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(workspace), prefix, str(start)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for prefix in ("alpha", "beta")]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert out.strip() == f"done {n_files}"
    mem = memory_for(workspace, AGENT_MEMORY__EMBEDDING_MODEL="test/hash")
    rows = mem.list_items("semantic", limit=100_000)
    per_source: dict[str, int] = {}
    for r in rows:
        src = r["source"].rsplit(":", 1)[0]
        per_source[src] = per_source.get(src, 0) + 1
    assert per_source == expected
    assert len(mem.list_items("episodic", limit=1000)) == 2 * n_files


def test_cli_help_does_not_import_lancedb_or_the_embedder() -> None:
    code = ("import sys\nfrom agentcli.cli.app import app\n"
            "try:\n    app(['memory', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('lancedb', 'onnxruntime', 'pyarrow', 'tokenizers')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_lost_commit_races_are_retried_both_kinds() -> None:
    from agentcli.memory.store import is_commit_conflict

    assert is_commit_conflict(RuntimeError("lance error: Retryable commit conflict for version 3: preempted by "
                                           "concurrent transaction Update at version 3"))
    # Two processes creating the same table on object storage: the second create commits as an Overwrite.
    assert is_commit_conflict(RuntimeError("lance error: Incompatible transaction: This Update transaction is "
                                           "incompatible with concurrent transaction Overwrite at version 2."))
    assert not is_commit_conflict(RuntimeError("lance error: Invalid user input: column vector not found"))
