"""Secrets by format and by length: a credential that came from no known source is masked by its
shape (agentcli.redact.TOKEN_PATTERNS) wherever agentcli writes or shows text, ordinary code is
left alone (agentcli's own source is the test), and a secret too short to mask is named, not
masked."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.models.fakes import ScriptedModel
from agentcli.redact import REDACTED, TOKEN_PATTERNS, Redactor, find_tokens, mask_tokens

ROOT = Path(__file__).resolve().parent.parent

# One sample per format (made up: right shape, no real key), and what the masked text keeps.
SAMPLES = {
    "openai/anthropic key": ("key sk-proj-Ab3dEfGhIjKlMnOpQrStUvWx0123 here", "key [REDACTED] here"),
    "openai/anthropic key (anthropic)": ("sk-ant-api03-AbCdEf0123456789abcdefGHIJ-xyz", REDACTED),
    "github token": ("token ghp_" + "a1B2" * 9, f"token {REDACTED}"),
    "github token (fine-grained)": ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz.", f"{REDACTED}."),
    "aws access key id": ("id=AKIAIOSFODNN7EXAMPLE;", f"id={REDACTED};"),
    "aws secret access key": ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                              f"aws_secret_access_key = {REDACTED}"),
    "aws secret access key (cli json)": ('"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
                                         f'"SecretAccessKey": "{REDACTED}"'),
    "slack token": ("xoxb-123456789012-abcdefABCDEF", REDACTED),
    "google api key": ("AIzaSyA1234567890abcdefghijklmnopqrstuv", REDACTED),
    "stripe key": ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", REDACTED),
    "jwt": ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            REDACTED),
    "private key": ("-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----\nafter",
                    f"{REDACTED}\nafter"),
    "private key (cut short)": ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA", REDACTED),
    "authorization header": ("Authorization: Bearer abc.def-ghi_jkl", f"Authorization: Bearer {REDACTED}"),
    "authorization header (basic)": ("curl -H 'Authorization: Basic dXNlcjpwYXNz'",
                                     f"curl -H 'Authorization: Basic {REDACTED}'"),
    "bearer token": ("sent Bearer 0123456789abcdefghijklmnop", f"sent Bearer {REDACTED}"),
    "url password": ("postgres://admin:hunter2x@db.internal/app", f"postgres://admin:{REDACTED}@db.internal/app"),
    "credential assignment": ("OPENAI_API_KEY=not-a-known-format-1\nDEBUG=1",
                              f"OPENAI_API_KEY={REDACTED}\nDEBUG=1"),
    "credential assignment (export, quoted)": ("export DB_PASSWORD='correct horse'x\nexport GH_TOKEN=\"abcdefgh1234\"",
                                               f"export DB_PASSWORD='correct horse'x\nexport GH_TOKEN=\"{REDACTED}\""),
}
# Text of the same neighbourhoods that is not a credential.
ORDINARY = [
    "sk-learn is a library", "risk-assessment-framework-for-everyone-2024", "task-sk-00000000000000000000",
    "Bearer tokens are sent in headers", "authorization = request.headers['Authorization']",
    "curl -H 'Authorization: Bearer $TOKEN'", "Authorization: Bearer ${TOKEN}", "https://user:password@host/x",
    "f'{scheme}://{user}:{pw}@{host}'", "git@github.com:org/repo.git", "ssh://git@host/repo",
    "mail a@b.com, see http://x.org", "ASIAN markets", "the eyJ prefix", "-----BEGIN PUBLIC KEY-----\nMIIB",
    "AKIA is the prefix of an access key id", "def ghp_like(): pass",
    "API_KEY=os.environ.get('API_KEY')", "SECRET_KEY=$SECRET_KEY", "MAX_TOKENS=4096", "TOKEN_PATTERNS=(",
    "x = API_KEY=abcdefghijkl", "API_KEY = 'spaced-is-code-1234'", "GITHUB_TOKEN=${{ secrets.GITHUB_TOKEN }}",
]


@pytest.mark.parametrize("name", list(SAMPLES))
def test_each_credential_format_is_masked(name: str) -> None:
    text, masked = SAMPLES[name]
    assert mask_tokens(text) == masked
    assert find_tokens(text) == [name.split(" (")[0]]
    assert mask_tokens(masked) == masked  # idempotent: masking what was sent masks nothing more


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert mask_tokens(text) == text


def test_no_false_positive_on_agentcli_own_source() -> None:
    # Everything the repository ships except the tests (whose fixtures hold fake keys on purpose).
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    files = [ROOT / f for f in listed.split() if not f.startswith("tests/") and (ROOT / f).is_file()]
    assert len(files) > 100
    changed = {}
    for f in files:
        text = f.read_text(encoding="utf-8", errors="replace")
        if mask_tokens(text) != text:
            changed[str(f.relative_to(ROOT))] = find_tokens(text)
    assert changed == {}


def test_every_pattern_has_a_sample() -> None:
    assert {p.name for p in TOKEN_PATTERNS} == {n.split(" (")[0] for n in SAMPLES}


@pytest.mark.parametrize("name", list(SAMPLES))
def test_each_format_is_masked_at_the_start_of_a_line_of_json_text(name: str) -> None:
    # A tool's output embedded in a prompt or a record as JSON: its newlines are "\n", two
    # characters, and the token after one follows an "n". Masked all the same.
    text, masked = SAMPLES[name]
    lines_only = name.startswith("credential assignment")  # a NAME=value line: after a newline only
    for before in ("first line\n", "a\tb\t", "x\r\n", *(() if lines_only else ("\u2028",))):
        assert mask_tokens(json.dumps(before + text)) == json.dumps(before + masked)


def test_a_secret_value_is_masked_in_json_text_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOY_SECRET", 'quote"and\\back-slash-9')
    text = json.dumps({"output": 'DEPLOY=quote"and\\back-slash-9'})
    assert Redactor().text(text) == json.dumps({"output": f"DEPLOY={REDACTED}"})


def test_the_redactor_masks_formats_in_nested_data_and_keeps_the_shape() -> None:
    token = SAMPLES["github token"][0].split()[1]
    data = {"messages": [{"role": "user", "content": f"use {token}"}], "n": 1}
    assert Redactor().strings(data) == {"messages": [{"role": "user", "content": f"use {REDACTED}"}], "n": 1}


# --------------------------------------------------------------------------- short secret values


def _invoke(ws: Path, argv: list[str], script: list[object] | None = None,
            env: dict[str, str] | None = None) -> object:
    return CliRunner().invoke(app, argv, obj=State(backend=ScriptedModel(list(script or [])), environ={
        "AGENT_MODEL": "test/scripted", "AGENT_MEMORY__ENABLED": "false", **(env or {})}, use_user_config=False))


def test_a_secret_too_short_to_mask_is_named_not_masked(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # "abc" masked everywhere would corrupt every word holding it: it is named, once, instead.
    (workspace / "agent.toml").write_text('[telemetry.headers]\nx-short = "abc"\nx-long = "long-enough-value-1"\n')
    monkeypatch.setenv("SHORT_DEPLOY_TOKEN", "xy12")
    monkeypatch.setenv("HF_HUB_DISABLE_TOKEN", "1")  # a setting, not a secret: no warning
    plan = {"steps": [{"title": "list", "tool": "list_files", "args": {"pattern": "*.toml"}}]}
    review = {"outcome": "complete", "answer": "the abc of it", "reason": ""}
    r = _invoke(workspace, ["run", "explain the abc of xy12", "--yes", "--json"], [plan, review])
    assert r.exit_code == 0, r.output
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: SHORT_DEPLOY_TOKEN, telemetry.headers.x-short: shorter than 8 characters, so "
                        "not masked in records, prompts or output (masking a value that short would corrupt "
                        "ordinary text); use a longer secret"]
    assert "xy12" not in warnings[0]
    out = json.loads(r.stdout)
    assert out["answer"] == "the abc of it"  # not "the [REDACTED] of it"
    task = json.loads((workspace / ".agent" / "plans" / f"{out['run_id']}.json").read_text())["task"]
    assert task == "explain the abc of xy12"

    doctor = _invoke(workspace, ["doctor"])
    [line] = [x for x in doctor.stdout.splitlines() if " secrets:" in x]
    assert line.startswith("warn secrets: SHORT_DEPLOY_TOKEN, telemetry.headers.x-short: shorter than 8")
    assert "FAIL" not in doctor.stdout or doctor.exit_code == 1


def test_no_warning_without_short_secrets(workspace: Path) -> None:
    (workspace / "agent.toml").write_text('[telemetry.headers]\nx-long = "long-enough-value-1"\n')
    r = _invoke(workspace, ["tools", "call", "list_files", "--args", '{"pattern": "*.toml"}'])
    assert r.exit_code == 0 and "warning" not in r.stderr, r.output
    doctor = _invoke(workspace, ["doctor"])
    [line] = [x for x in doctor.stdout.splitlines() if " secrets:" in x]
    assert line.startswith("ok   secrets: ") and "masked by value" in line
