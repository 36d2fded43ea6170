"""The trainer stage: one loop for every method (COMPACT, ablations, baselines), single- or multi-process.

* :mod:`.config`     ``TrainConfig`` (one YAML per run)
* :mod:`.methods`    methods as named presets of objective fields
* :mod:`.loop`       the accelerate loop: micro-batches, logging, curves
* :mod:`.checkpoint` checkpoints and bitwise resume
* :mod:`.run`        ``train(cfg)``, ``compact train`` and ``python -m compact.trainer``
"""
