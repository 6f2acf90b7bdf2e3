"""What the model is sent holds no secret, and what it writes back holds no mask.

A tool's output (a file, a command's output) holding a registered secret value or a
credential-shaped token reaches the model as ``[REDACTED]``; a file write whose text would put
such a mask into the file is an ``invalid_args`` error (``masked_secret``) that tells the model
why, so it corrects the call (or the step fails) and the file keeps its real value. Real runs
with the in-package fakes; each run is replayed at the end of the session (tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from runkit import Harness, config, plan, review, step
from toolkit import call, make_registry

from agentcli.models.fakes import ScriptedModel
from agentcli.redact import REDACTED

REGISTERED = "mk-deploy-value-5d1e9f27"           # the value of a secret-looking variable
TOKEN = "ghp_" + "Qm7xK2pL9vR4" * 3                 # a GitHub token in a file, from no known source
SETTINGS = f'DEBUG = True\nGITHUB_TOKEN = "{TOKEN}"\nDEPLOY = "{REGISTERED}"\n'


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DEPLOY_SECRET", REGISTERED)
    root = tmp_path / "proj"
    root.mkdir()
    (root / "settings.py").write_text(SETTINGS)
    return root


def sent(model: ScriptedModel) -> str:
    return json.dumps([r.messages for r in model.requests])


def edit(search: str, replace: str) -> dict[str, Any]:
    return {"edits": [{"path": "settings.py", "search": search, "replace": replace}]}


def edits_plan() -> Any:
    return plan(step("s1", "read_file", path="settings.py"),
                step("s2", prompt="Turn DEBUG off.\n{{s1.output}}", deps=["s1"]).model_copy(
                    update={"answer": "edits"}),
                step("s3", "apply_edits", deps=["s2"], edits="{{s2.output}}"))


def test_a_tool_output_reaches_the_model_masked(ws: Path) -> None:
    p = plan(step("s1", "read_file", path="settings.py"),
             step("s2", prompt="What does this configure?\n{{s1.output}}", deps=["s1"]))
    h = Harness(ws, config(), ScriptedModel(["a debug flag and two credentials", review()]), [p], yes=True)
    out = h.run()
    assert out.status == "COMPLETE"
    text = sent(h.model)
    assert TOKEN not in text and REGISTERED not in text
    assert f'GITHUB_TOKEN = \\"{REDACTED}\\"' in text and f'DEPLOY = \\"{REDACTED}\\"' in text
    assert (ws / "settings.py").read_text() == SETTINGS
    assert TOKEN not in h.events_path.read_text() and REGISTERED not in h.events_path.read_text()


def test_an_edit_that_writes_the_mask_is_refused_and_corrected(ws: Path) -> None:
    # The model saw the masked file and rewrites the lines around the secret, mask and all.
    masked = edit("DEBUG = True\n", f'DEBUG = False\nBACKUP_TOKEN = "{REDACTED}"\n')
    fixed = edit("DEBUG = True\n", "DEBUG = False\n")
    h = Harness(ws, config(), ScriptedModel([masked, fixed, review()]), [edits_plan()], yes=True)
    out = h.run()
    assert out.status == "COMPLETE", out.steps
    s3 = out.steps[2]
    assert (s3["status"], s3["corrections"]) == ("ok", 1)
    correction = h.model.requests[1].messages[-1]["content"]
    assert "edits.0.replace:" in correction and "masked before you saw it" in correction
    assert "Do not write [REDACTED]" in correction
    assert (ws / "settings.py").read_text() == SETTINGS.replace("DEBUG = True", "DEBUG = False")
    [fix] = [e for e in h.recording().events if e.type == "review" and e.data.get("kind") == "args_corrected"]
    assert fix.data["error"]["details"][0]["type"] == "masked_secret"


def test_a_search_text_holding_the_mask_says_why_it_was_not_found(ws: Path) -> None:
    wrong = edit(f'GITHUB_TOKEN = "{REDACTED}"\n', "")
    h = Harness(ws, config(executor={"max_arg_corrections": 1}),
                ScriptedModel([wrong, wrong, review("complete", "could not")]), [edits_plan()], yes=True)
    out = h.run()
    s3 = out.steps[2]
    assert (s3["status"], s3["error"]["type"]) == ("failed", "invalid_args")
    assert "the mask of a secret you were not shown" in s3["error"]["details"][0]["msg"]
    assert (ws / "settings.py").read_text() == SETTINGS


def test_write_file_with_the_mask_is_refused_unless_the_file_had_it(ws: Path) -> None:
    reg = make_registry(ws)
    r = call(reg, "write_file", {"path": "settings.py", "content": f'GITHUB_TOKEN = "{REDACTED}"\n'})
    assert r.error is not None and r.error.type == "invalid_args"
    assert r.error.details[0]["type"] == "masked_secret" and r.error.details[0]["loc"] == ["content"]
    assert (ws / "settings.py").read_text() == SETTINGS
    # A file that already says [REDACTED] (docs about masking) may be rewritten keeping it.
    (ws / "notes.md").write_text(f"secrets show as {REDACTED}\n")
    ok = call(reg, "write_file", {"path": "notes.md", "content": f"Secrets show as {REDACTED}.\n"})
    assert ok.error is None, ok.error
    edit_ok = call(reg, "edit_file", {"path": "notes.md", "search": f"as {REDACTED}", "replace": f"as {REDACTED}!"})
    assert edit_ok.error is None, edit_ok.error
    bad = call(reg, "edit_file", {"path": "notes.md", "search": "Secrets", "replace": f"{REDACTED} secrets"})
    assert bad.error is not None and bad.error.details[0]["type"] == "masked_secret"


def test_a_token_the_model_writes_through_an_llm_step_lands_and_replays(ws: Path) -> None:
    # A model-written fixture key (from no secret source) is data: written as the model wrote it,
    # masked in the record, and the replay (built from the masked record) is identical.
    from agentcli.engine.replay import replay_run

    fixture = 'TEST_KEY = "sk-proj-Fx7testfixture0123456789"\n'
    p = plan(step("s1", prompt="Write a test fixture module."),
             step("s2", "write_file", deps=["s1"], path="fixture.py", content="{{s1.output}}"))
    h = Harness(ws, config(), ScriptedModel([fixture, review()]), [p], yes=True)
    out = h.run()
    assert out.status == "COMPLETE", out.steps
    assert (ws / "fixture.py").read_text() == fixture
    assert "sk-proj-Fx7testfixture" not in h.events_path.read_text()
    import asyncio

    result = asyncio.run(replay_run(h.events_path, make_registry(ws)))
    assert result.identical, result.divergence
