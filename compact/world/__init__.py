"""The embedded world: five procedural tasks, a tokenizer and a tiny base student, offline on CPU.

Everything is deterministic from a seed and cached by config hash (``compact world``). See
:mod:`compact.world.tasks` (records), :mod:`compact.world.tokenizer` (BPE + chat template + thinking
tokens), :mod:`compact.world.student` (Qwen2 student, base corpus, pretraining) and
:mod:`compact.world.build` (configs, :class:`World`, :func:`build_world`). The thinking words and their
token ids belong to the method (:mod:`compact.method.adaptability`).
"""
