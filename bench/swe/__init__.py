"""An offline SWE-style benchmark: real bugs of small published projects, graded by hidden tests.

``python -m bench.swe`` (see ``bench/swe/README.md``). Modules:

* :mod:`bench.swe.tasks`: a task (``tasks/<id>/task.toml`` + ``problem.md`` + hidden tests) as data;
* :mod:`bench.swe.fetch`: a project's release fetched by pinned version from its registry (pip or npm),
  unpacked once into a cache outside the repository, copied into a fresh workspace;
* :mod:`bench.swe.grade`: the SWE-bench rule, run inside bubblewrap with no network;
* :mod:`bench.swe.agents`: the agents under test (agentcli's ``agent run --yes``, mini-SWE-agent);
* :mod:`bench.swe.harness`: one task end to end, results as resumable JSONL, predictions export;
* :mod:`bench.swe.report`: summaries and the markdown table for ``bench/RESULTS.md``;
* :mod:`bench.swe.mini_driver`: mini-SWE-agent on one workspace (run in its own process);
* :mod:`bench.swe.mine`: finding task candidates among a project's releases;
* :mod:`bench.swe.cli`: the command line (``--list``, ``--check``, a run, ``--report``).
"""
