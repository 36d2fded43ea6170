"""The paper's method, and nothing else: tensors in, tensors out.

* :mod:`.difficulty`    loss-based difficulty L_k (also the branch's training loss)
* :mod:`.consensus`     graph-based consensus C_k (last-layer q/k projections, soft graph in-degree)
* :mod:`.adaptability`  MI-based adaptability M_k (gold-answer jumps, thinking-token weights)
* :mod:`.fusion`        per-question z-scores and alpha = softmax(S / tau); static-weight validation
* :mod:`.batch`         ``Batch``: B questions x K branches as right-padded rows
* :mod:`.objective`     the COMPACT objective: reference path (as released) and fast batched path side by side
* :mod:`.hsic`          HSIC estimator, to validate the MI proxy
"""
