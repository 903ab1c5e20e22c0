"""The demo's maker: the synthetic data generator, the tiny-model builder and the trainer.

Run from the repository root: ``python -m scripts.demo data`` rewrites ``evals/data/``;
``python -m scripts.demo train --out DIR`` trains the demo model. Only what they produce ships with the
plugin (``pytest_omnilmm/demo/``: ``model/``, ``checkpoints/``, ``manifest.json``); this code does not.
"""
