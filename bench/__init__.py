"""agentcli benchmarks: ``make bench`` (``.venv/bin/python -m bench``).

Sections (``--only`` takes a comma list of these names):

* ``cold``: wall time of ``agent --help`` and ``agent plan --help`` against ``python -c pass``
  and ``python -c "import litellm"`` (:mod:`bench.cold`);
* ``executor``: overhead per step of a 100-step no-op plan, durable event log included, side by
  side with LangGraph, PydanticAI and smolagents (:mod:`bench.executor`, :mod:`bench.frameworks`);
* ``parallel``: 8 independent 200 ms steps at max_parallel=8 (:mod:`bench.parallel`);
* ``calls``: model calls and input tokens per task, planner-executor against ReAct (:mod:`bench.calls`);
* ``logging``: one CallLog record and one EventLog event (:mod:`bench.logcost`);
* ``memory``: the hook for ``bench/memory_bench.py`` (:mod:`bench.memory`);
* ``local``: the embedded model as planner: time per plan, tokens/s, validity (:mod:`bench.local`).

``--smoke`` runs all of them at tiny sizes; ``--no-write`` leaves ``bench/RESULTS.md`` alone.
Peers come from the optional ``bench`` extra (``pip install -e '.[bench]'``) and are skipped
when not installed.

Apart from these sections, ``python -m bench.swe`` is the SWE-style benchmark: real bugs of
published projects graded by hidden tests (:mod:`bench.swe`, ``bench/swe/README.md``).
"""
