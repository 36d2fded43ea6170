r"""Forgetting: OOD accuracy of the base student before distillation versus every method after it.

For each method :math:`m`, over the OOD questions both evaluations share (matched by id):
:math:`\Delta_m = \mathrm{acc}_m - \mathrm{acc}_0`, with a paired bootstrap interval (the same resampled
questions for both sides), so a negative :math:`\Delta` with an interval below 0 is real forgetting.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..eval.evaluate import EvalResult
from ..eval.stats import bootstrap_ci


def _correct(res: EvalResult, tasks: set[str], mode: str) -> dict[str, float]:
    return {s["id"]: float(s[f"correct_{mode}"]) for s in res.samples if s["task"] in tasks}


def forgetting_table(before: EvalResult, after: Mapping[str, EvalResult], *, ood_tasks: Sequence[str],
                     id_tasks: Sequence[str] = (), mode: str = "strict", n_bootstrap: int = 1000,
                     seed: int = 0) -> list[dict[str, Any]]:
    """One row per method: OOD accuracy before/after, the paired change and its CI, per-task columns."""
    ood = set(ood_tasks)
    base = _correct(before, ood, mode)
    rows = []
    for name, res in after.items():
        cur = _correct(res, ood, mode)
        ids = sorted(set(base) & set(cur))
        diff = np.array([cur[i] - base[i] for i in ids])
        iv = bootstrap_ci(diff, n_resamples=n_bootstrap, seed=seed)
        row: dict[str, Any] = {
            "method": name, "n_ood": len(ids),
            "ood_before": float(np.mean([base[i] for i in ids])) if ids else float("nan"),
            "ood_after": float(np.mean([cur[i] for i in ids])) if ids else float("nan"),
            "delta": iv.estimate, "delta_ci_low": iv.low, "delta_ci_high": iv.high,
        }
        for t in ood_tasks:
            if t in res.metrics and t in before.metrics:
                row[f"{t}_before"] = before.metrics[t][mode]
                row[f"{t}_after"] = res.metrics[t][mode]
        if id_tasks:
            row["id_after"] = res.pooled(id_tasks, mode=mode, n_bootstrap=10)["accuracy"]
        rows.append(row)
    return rows


def plot_forgetting(rows: Sequence[Mapping[str, Any]], *, title: str = ""):
    """Bars of the OOD accuracy change per method with its paired-bootstrap interval."""
    import matplotlib.pyplot as plt  # no backend switch: a notebook kernel must keep its inline one

    fig, ax = plt.subplots(figsize=(max(3.0, 0.8 * len(rows) + 1.5), 3.0))
    x = np.arange(len(rows))
    d = np.array([r["delta"] for r in rows]) * 100
    lo = d - np.array([r["delta_ci_low"] for r in rows]) * 100
    hi = np.array([r["delta_ci_high"] for r in rows]) * 100 - d
    ax.bar(x, d, yerr=[lo, hi], capsize=3, color=["tab:red" if v < 0 else "tab:blue" for v in d])
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, [r["method"] for r in rows], rotation=30, ha="right", fontsize=9)
    ax.set_ylabel("OOD accuracy change (points)")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


__all__ = ["forgetting_table", "plot_forgetting"]
