"""``python -m bench.tasks``: see :mod:`bench.tasks.run`."""

from bench.tasks.run import main

raise SystemExit(main())
