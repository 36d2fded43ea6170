"""Evaluation: the greedy decoder, strict/lenient accuracy with intervals, option log-likelihoods.

* :mod:`.decode`    the package's one greedy decoder (KV cache, stop at eos or the answer line)
* :mod:`.evaluate`  ``compact eval``: world tasks and real benchmarks, per-sample logs, bootstrap intervals
* :mod:`.loglik`    option log-likelihood scoring (lm-eval style), the world's knowledge probes
* :mod:`.stats`     bootstrap and seed statistics
"""
