"""Baselines that are not training methods: Direct Avg. and TIES merging of single-teacher students
(:mod:`.merging`). The training baselines (uniform, single, static, MCC-KD, oracle, random) are presets of the
objective in :mod:`compact.trainer.methods`."""
