"""The bundled demo, data only: ``model/`` (the default ``--model_path``), ``checkpoints/`` (early and final)
and ``manifest.json`` (how they were made, what they score). They are made by ``python -m scripts.demo
train`` in a checkout of the repository; the trainer and the data generator are not installed."""
