"""LanceDB imported without its REST namespace client (agentcli.memory.lazy_lance).

A fresh process adds and searches memory through the CLI with the client postponed, and
gets the same hits as with the normal import (``AGENTCLI_EAGER_LANCE=1``); the client
still works when something asks for it; a package whose ``__init__`` does more than
import is imported normally. The S3 store runs with the stand-in too: tests/test_memory_s3.py
drives real ``agent`` subprocesses, which take this path by default.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentcli.memory import lazy_lance

NOTES = "# Deploys\n\nTo roll back a bad release, redeploy the previous image tag.\n\n" \
        "## Logs\n\nLogs go to stdout as JSON lines.\n"

# The CLI in a fresh interpreter, then what that process imported, as one JSON line.
PROBE = textwrap.dedent("""
    import json, sys
    from agentcli.cli.app import main
    sys.argv = ["agent", *sys.argv[1:]]
    try:
        main()
    except SystemExit as e:
        assert e.code in (0, None), e.code
    from agentcli.memory import lazy_lance
    state = {"deferred": lazy_lance.is_deferred(),
             "apis_imported": "lance_namespace_urllib3_client.api" in sys.modules}
    # The client and the re-exported models still work when asked for.
    import lance_namespace, lance_namespace_urllib3_client as client
    assert client.ApiClient.__name__ == "ApiClient" and client.TableApi.__name__ == "TableApi"
    assert lance_namespace.ListTablesResponse(tables=["a"]).tables == ["a"]
    try:
        lance_namespace.ListTablesResponse(tables=3)
        state["validates"] = False
    except Exception:
        state["validates"] = True
    state["deferred_after_use"] = lazy_lance.is_deferred()
    print("PROBE " + json.dumps(state))
""")


def cli(ws: Path, *args: str, **env: str) -> tuple[str, dict[str, bool]]:
    full = {k: v for k, v in os.environ.items() if k != lazy_lance.ENV_OFF}
    full.update({"AGENT_MEMORY__EMBEDDING_MODEL": "test/hash", **env})
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ws, env=full, text=True,
                          capture_output=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    out, _, probe = proc.stdout.rpartition("PROBE ")
    return out, json.loads(probe)


@pytest.fixture
def ws(workspace: Path) -> Path:
    (workspace / "docs").mkdir()
    (workspace / "docs" / "deploy.md").write_text(NOTES)
    return workspace


@pytest.mark.slow
def test_memory_works_with_the_rest_client_postponed(ws: Path) -> None:
    _, state = cli(ws, "memory", "add", "docs", "--json")
    assert state == {"deferred": True, "apis_imported": False, "validates": True, "deferred_after_use": False}
    out, state = cli(ws, "memory", "search", "roll back a release", "--json", "-k", "3")
    assert state["deferred"] and not state["apis_imported"]
    hits = json.loads(out)["hits"]
    assert hits and hits[0]["source"].startswith("docs/deploy.md:")

    eager_out, eager = cli(ws, "memory", "search", "roll back a release", "--json", "-k", "3",
                           **{lazy_lance.ENV_OFF: "1"})
    assert not eager["deferred"] and eager["apis_imported"]  # the normal import, as a fallback
    eager_hits = json.loads(eager_out)["hits"]
    assert [(h["id"], h["score"]) for h in eager_hits] == [(h["id"], h["score"]) for h in hits]


@pytest.fixture
def packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    before = set(sys.modules)
    yield root
    for name in set(sys.modules) - before:
        del sys.modules[name]


def make_package(root: Path, name: str, init: str) -> None:
    (root / name).mkdir()
    (root / name / "__init__.py").write_text(init)
    (root / name / "part.py").write_text("VALUE = 42\n")


def test_an_imports_only_package_is_postponed_until_a_name_is_used(packages: Path) -> None:
    make_package(packages, "gen_client", '"""Generated."""\n__version__ = "1.0"\n'
                                         "from gen_client.part import VALUE\nimport json\n")
    assert lazy_lance.install("gen_client")
    assert lazy_lance.is_deferred("gen_client")
    import gen_client.part  # a submodule loads from the real directory without running __init__

    assert gen_client.part.VALUE == 42 and lazy_lance.is_deferred("gen_client")
    assert gen_client.__version__ == "1.0"  # a name __init__ defines: now it has run
    assert not lazy_lance.is_deferred("gen_client") and gen_client.VALUE == 42
    with pytest.raises(AttributeError):
        _ = gen_client.missing  # type: ignore[attr-defined]


def test_a_package_that_does_more_than_import_is_imported_normally(packages: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    make_package(packages, "busy_client", "import os\nSTARTED = os.getpid()\n")
    assert not lazy_lance.install("busy_client")
    assert "busy_client" not in sys.modules
    make_package(packages, "plain_client", "from plain_client.part import VALUE\n")
    monkeypatch.setenv(lazy_lance.ENV_OFF, "1")
    assert not lazy_lance.install("plain_client")
    assert not lazy_lance.install("no_such_client_here")
