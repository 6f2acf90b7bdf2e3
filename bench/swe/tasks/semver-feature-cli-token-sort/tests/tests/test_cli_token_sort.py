"""Hidden tests of the feature request: pysemver's --token options and sort subcommand (written for the
benchmark)."""

import subprocess
import sys

import pytest
from semver.cli import main


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("args, expected", [
    (["bump", "prerelease", "1.2.3", "--token", "beta"], "1.2.3-beta.1"),
    (["bump", "prerelease", "--token", "alpha", "1.2.3-alpha.4"], "1.2.3-alpha.5"),
    (["bump", "build", "1.2.3", "--token", "nightly"], "1.2.3+nightly.1"),
    (["nextver", "1.2.3", "prerelease", "--token", "alpha"], "1.2.4-alpha.1"),
    (["nextver", "--token", "dev", "2.0.0", "prerelease"], "2.0.1-dev.1"),
])
def test_token(capsys, args, expected):
    code, out, err = run(capsys, *args)
    assert (code, out, err) == (0, expected + "\n", "")


@pytest.mark.parametrize("args, expected", [
    (["bump", "prerelease", "1.2.3"], "1.2.3-rc.1"),
    (["bump", "build", "1.2.3"], "1.2.3+build.1"),
    (["nextver", "1.2.3", "prerelease"], "1.2.4-rc.1"),
    (["bump", "minor", "1.2.3"], "1.3.0"),
])
def test_without_token_unchanged(capsys, args, expected):
    code, out, err = run(capsys, *args)
    assert (code, out, err) == (0, expected + "\n", "")


@pytest.mark.parametrize("part", ["major", "minor", "patch"])
def test_token_is_refused_where_it_means_nothing(capsys, part):
    with pytest.raises(SystemExit) as exc:
        main(["bump", part, "1.2.3", "--token", "x"])
    assert exc.value.code == 2


def test_sort(capsys):
    code, out, err = run(capsys, "sort", "1.0.0", "1.0.0-rc.1", "0.9.0", "1.0.0-alpha", "0.10.0")
    assert (code, err) == (0, "")
    assert out == "0.9.0\n0.10.0\n1.0.0-alpha\n1.0.0-rc.1\n1.0.0\n"


def test_sort_reverse(capsys):
    code, out, err = run(capsys, "sort", "--reverse", "1.0.0", "1.0.0-rc.1", "0.9.0", "2.0.0")
    assert (code, err) == (0, "")
    assert out == "2.0.0\n1.0.0\n1.0.0-rc.1\n0.9.0\n"


def test_sort_keeps_the_order_of_equal_versions(capsys):
    code, out, _ = run(capsys, "sort", "1.0.0+b", "0.1.0", "1.0.0+a")
    assert code == 0 and out == "0.1.0\n1.0.0+b\n1.0.0+a\n"
    code, out, _ = run(capsys, "sort", "--reverse", "1.0.0+b", "0.1.0", "1.0.0+a")
    assert code == 0 and out == "1.0.0+b\n1.0.0+a\n0.1.0\n"


def test_sort_one_version(capsys):
    assert run(capsys, "sort", "3.2.1") == (0, "3.2.1\n", "")


def test_sort_invalid_version(capsys):
    code, out, err = run(capsys, "sort", "1.0.0", "1.0", "2.0.0")
    assert code == 2 and out == ""
    assert err.startswith("ERROR") and "1.0" in err


def test_sort_needs_a_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sort"])
    assert exc.value.code == 2


def test_help_lists_sort_and_token():
    top = subprocess.run([sys.executable, "-m", "semver", "--help"], capture_output=True, text=True)
    assert top.returncode == 0 and "sort" in top.stdout
    bump = subprocess.run([sys.executable, "-m", "semver", "bump", "prerelease", "--help"], capture_output=True,
                          text=True)
    assert bump.returncode == 0 and "--token" in bump.stdout
