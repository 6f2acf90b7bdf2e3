"""The offline task suite (see :mod:`bench.tasks.run`)."""
