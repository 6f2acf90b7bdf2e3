"""``python -m bench.swe``: see :mod:`bench.swe.cli`."""

from bench.swe.cli import main

raise SystemExit(main())
