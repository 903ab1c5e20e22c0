"""Worker side: what runs in each process that holds a model (the only process without xdist, each xdist
worker with it). The fixtures an eval uses, the engine that batches, generates, times and writes records,
resume, and the per-item record attached to each test report.

Imports nothing of the controller side (``controller``, ``results``, ``gate``, ``baseline``): it sends
records, it never aggregates them. See docs/ARCHITECTURE.md.
"""
