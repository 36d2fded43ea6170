"""Plotting helpers that more than one notebook draws with (the book's figures of one analysis live beside it,
e.g. :func:`compact.analysis.dynamics.plot_alpha_dynamics`)."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

CORRECT_COLOR, WRONG_COLOR = "tab:green", "tab:red"


def box_by_correctness(ax: plt.Axes, values: Sequence[float], correct: Sequence[bool], *, seed: int = 0,
                       ylabel: str | None = None, title: str | None = None) -> plt.Axes:
    """A score split by whether the branch's final answer is correct: two boxes, every point jittered on top.

    Boxes without fliers (the points show them); points green (correct) and red (wrong), jitter drawn from
    ``numpy.random.default_rng(seed)`` so a re-run draws the same figure.
    """
    v = np.asarray(values, dtype=float)
    c = np.asarray(correct, dtype=bool)
    data = [v[c], v[~c]]
    ax.boxplot(data, showfliers=False)
    ax.set_xticks([1, 2], ["correct", "wrong"])
    rng = np.random.default_rng(seed)
    for x, (d, color) in enumerate(zip(data, (CORRECT_COLOR, WRONG_COLOR)), start=1):
        ax.scatter(x + rng.uniform(-0.12, 0.12, len(d)), d, s=8, alpha=0.5, color=color)
    ax.set(**{k: v for k, v in (("ylabel", ylabel), ("title", title)) if v is not None})
    return ax
