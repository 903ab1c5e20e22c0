"""A run's results as data, below the gate: ``summary`` (per-dataset metrics with CIs, perf stats from
``bench``) built from records, and ``runs`` (finished run folders read back). The controller and the gate
both read them; they import neither. See docs/ARCHITECTURE.md.
"""
