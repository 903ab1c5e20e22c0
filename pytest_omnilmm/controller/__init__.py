"""Controller side: the only process that aggregates (without xdist it is the same process as the worker).
``core`` collects records from test reports, concludes (summary, gate, baseline, files) and is shared with
``python -m pytest_omnilmm merge``; ``report``/``plots``/``predictions`` write the run's files; ``progress``
is the live progress line; ``scheduler`` is the xdist scheduler; ``merge`` combines shards.

Imports nothing of the worker side (``worker``, ``backends``, ``models``, ``checkpoint``): it never touches
a model. See docs/ARCHITECTURE.md.
"""
