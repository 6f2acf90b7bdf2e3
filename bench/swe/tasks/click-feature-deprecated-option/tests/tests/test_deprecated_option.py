"""Hidden tests of the feature request: deprecated options (written for the benchmark)."""

import click
import pytest
from click.testing import CliRunner


def make(**option):
    @click.command()
    @click.option("--out", help="Output file.")
    @click.option("--output", "-o", help="Output file.", **option)
    def save(out, output):
        click.echo(f"out={out} output={output}")

    return save


def invoke(cmd, args, **kwargs):
    return CliRunner(mix_stderr=False).invoke(cmd, args, **kwargs)


def test_warns_when_used_on_the_command_line():
    r = invoke(make(deprecated=True), ["--output", "a.txt"])
    assert r.exit_code == 0
    assert r.stdout == "out=None output=a.txt\n"
    assert r.stderr == "DeprecationWarning: The option 'output' is deprecated.\n"


def test_warning_with_a_reason():
    r = invoke(make(deprecated="Use --out instead."), ["-o", "a.txt"])
    assert r.exit_code == 0
    assert r.stdout == "out=None output=a.txt\n"
    assert r.stderr == "DeprecationWarning: The option 'output' is deprecated. Use --out instead.\n"


def test_no_warning_when_not_used():
    r = invoke(make(deprecated=True), ["--out", "b.txt"])
    assert r.exit_code == 0 and r.stderr == ""
    assert r.stdout == "out=b.txt output=None\n"


def test_no_warning_from_default_or_environment():
    r = invoke(make(deprecated=True, default="d.txt"), [])
    assert (r.exit_code, r.stdout, r.stderr) == (0, "out=None output=d.txt\n", "")
    r = invoke(make(deprecated=True, envvar="SAVE_OUTPUT"), [], env={"SAVE_OUTPUT": "e.txt"})
    assert (r.exit_code, r.stdout, r.stderr) == (0, "out=None output=e.txt\n", "")


def test_help_says_deprecated():
    r = invoke(make(deprecated=True), ["--help"])
    assert r.exit_code == 0 and r.stderr == ""
    line = next(x for x in r.stdout.splitlines() if "--output" in x)
    assert "(Deprecated) Output file." in line


def test_help_with_a_reason():
    r = invoke(make(deprecated="Use --out instead."), ["--help"])
    assert r.exit_code == 0
    text = " ".join(r.stdout.split())
    assert "(Deprecated: Use --out instead.) Output file." in text


def test_flag_option():
    @click.command()
    @click.option("--verbose", is_flag=True, deprecated=True)
    def cli(verbose):
        click.echo(f"verbose={verbose}")

    r = invoke(cli, ["--verbose"])
    assert (r.exit_code, r.stdout, r.stderr) == (0, "verbose=True\n",
                                                 "DeprecationWarning: The option 'verbose' is deprecated.\n")
    assert invoke(cli, []).stderr == ""


def test_option_class_takes_it():
    opt = click.Option(["--old"], deprecated="gone soon")
    assert opt.deprecated == "gone soon"
    assert click.Option(["--new"]).deprecated is False


def test_required_option_cannot_be_deprecated():
    with pytest.raises(ValueError):
        click.Option(["--x"], required=True, deprecated=True)


def test_options_that_are_not_deprecated_are_unchanged():
    r = invoke(make(), ["--output", "a.txt"])
    assert (r.exit_code, r.stdout, r.stderr) == (0, "out=None output=a.txt\n", "")
    h = invoke(make(), ["--help"])
    assert "Deprecated" not in h.stdout


def test_deprecated_commands_unchanged():
    @click.command(deprecated=True)
    def old():
        click.echo("ran")

    r = invoke(old, [])
    assert r.exit_code == 0 and r.stdout == "ran\n"
    assert "DeprecationWarning: The command 'old' is deprecated." in r.stderr
