"""Layered config: precedence, sources, and one-line errors naming the file and key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.config import Config, load_settings
from agentcli.errors import ConfigError

runner = CliRunner()


def _show(args: list[str], env: dict[str, str] | None = None) -> dict:
    result = runner.invoke(app, [*args, "config", "show", "--json"], obj=State(environ=env or {}))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_defaults_have_sources(workspace: Path) -> None:
    out = _show([])
    assert out["values"]["model"] == {"value": "local/smollm2", "source": "default"}
    assert out["values"]["budget.max_steps"]["source"] == "default"
    assert out["data_dir"] == str(workspace / ".agent")


def test_flag_env_file_precedence_and_sources(workspace: Path) -> None:
    (workspace / "agent.toml").write_text(
        'model = "openai/gpt-4o"\n[budget]\nmax_steps = 7\nmax_cost_usd = 0.5\n[llm]\nmax_retries = 1\n'
    )
    env = {"AGENT_MODEL": "anthropic/claude-sonnet-4-5", "AGENT_BUDGET__MAX_COST_USD": "0.25"}
    out = _show(["--model", "openai/gpt-4o-mini"], env)
    v = out["values"]
    assert v["model"] == {"value": "openai/gpt-4o-mini", "source": "flag"}
    assert v["budget.max_cost_usd"] == {"value": 0.25, "source": "env:AGENT_BUDGET__MAX_COST_USD"}
    cfg_file = str(workspace / "agent.toml")
    assert v["budget.max_steps"] == {"value": 7, "source": f"file:{cfg_file}"}
    assert v["llm.max_retries"] == {"value": 1, "source": f"file:{cfg_file}"}
    assert v["llm.timeout_seconds"]["source"] == "default"
    # env beats file when there is no flag
    assert _show([], env)["values"]["model"]["source"] == "env:AGENT_MODEL"


def test_user_config_is_lowest_file_layer(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    xdg = tmp_path / "xdg2"
    (xdg / "agentcli").mkdir(parents=True)
    (xdg / "agentcli" / "config.toml").write_text('model = "user/model"\nfallbacks = ["a/b"]\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    (workspace / "agent.toml").write_text('model = "project/model"\n')
    s = load_settings(environ={})
    assert s.config.model == "project/model"
    assert s.config.fallbacks == ["a/b"]
    assert s.source_of("fallbacks").endswith("xdg2/agentcli/config.toml")


def test_explicit_config_file_replaces_project_file(workspace: Path, tmp_path: Path) -> None:
    (workspace / "agent.toml").write_text('model = "project/model"\n')
    other = tmp_path / "other.toml"
    other.write_text('model = "other/model"\n[approval]\nwrite = "deny"\n')
    s = load_settings(config_file=other, environ={})
    assert s.config.model == "other/model"
    assert s.config.approval.write == "deny"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('modle = "x"\n', "unknown key 'modle'"),
        ("[budget]\nmax_steps = \"many\"\n", "key 'budget.max_steps'"),
        ("[approval]\nwrite = \"sometimes\"\n", "key 'approval.write'"),
        ("[budget]\nmax_steps = -1\n", "greater than 0"),
        ("model = \n", "invalid TOML"),
    ],
)
def test_bad_file_is_one_line_exit_2(workspace: Path, toml: str, expected: str) -> None:
    (workspace / "agent.toml").write_text(toml)
    result = runner.invoke(app, ["config", "show"], obj=State(environ={}))
    assert result.exit_code == 2
    err = result.stderr.strip()
    assert err.count("\n") == 0, err
    assert "agent.toml" in err and expected in err
    assert "Traceback" not in result.output


def test_bad_env_var_names_the_variable(workspace: Path) -> None:
    with pytest.raises(ConfigError, match="AGENT_BUDGET__MAX_STEPS"):
        load_settings(environ={"AGENT_BUDGET__MAX_STEPS": "lots"})


def test_env_list_as_json(workspace: Path) -> None:
    s = load_settings(environ={"AGENT_FALLBACKS": '["openai/gpt-4o-mini", "ollama/llama3"]'})
    assert s.config.fallbacks == ["openai/gpt-4o-mini", "ollama/llama3"]


def test_missing_config_file(workspace: Path) -> None:
    result = runner.invoke(app, ["--config", "nope.toml", "config", "show"], obj=State(environ={}))
    assert result.exit_code == 2
    assert "nope.toml" in result.stderr and "not found" in result.stderr


def test_roles_fall_back_to_model() -> None:
    c = Config.model_validate({"model": "a/b", "roles": {"reviewer": "c/d"}})
    assert c.model_for("planner") == "a/b"
    assert c.model_for("reviewer") == "c/d"


def test_example_config_is_valid_and_complete() -> None:
    import tomllib

    example = Path(__file__).parents[1] / "config.example.toml"
    data = tomllib.loads(example.read_text())
    Config.model_validate(data)
    # Every key of the model is documented in the example.
    from agentcli.config import _flatten

    documented = set(_flatten(data))
    defaults = set(_flatten(Config().model_dump(mode="json")))
    missing = {k for k in defaults if not any(k == d or k.startswith(d + ".") for d in documented)}
    assert not missing, f"config.example.toml lacks {sorted(missing)}"


def test_config_path_works_with_broken_config(workspace: Path) -> None:
    (workspace / "agent.toml").write_text("broken = = \n")
    result = runner.invoke(app, ["config", "path"], obj=State(environ={}))
    assert result.exit_code == 0
    assert "agent.toml" in result.stdout


def test_version_and_help() -> None:
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout.startswith("agentcli ")
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0 and "doctor" in r.stdout


def test_the_newest_changelog_release_is_the_version() -> None:
    """The release policy (CHANGELOG.md): a release raises ``__version__`` and adds its section."""
    import re

    from agentcli import __version__

    text = (Path(__file__).resolve().parents[1] / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## (\d+\.\d+\.\d+) — \d{4}-\d{2}-\d{2}$", text, flags=re.M)
    assert releases and releases[0] == __version__
    assert runner.invoke(app, ["--version"]).stdout.split() == ["agentcli", __version__]


def test_unknown_flag_exits_2() -> None:
    r = runner.invoke(app, ["--no-such-flag"])
    assert r.exit_code == 2
