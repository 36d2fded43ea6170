r"""Uncertainty for reported numbers: seeded percentile bootstrap and mean +- std over seeds.

Bootstrap: resample the per-example outcomes :math:`x_1..x_n` with replacement :math:`B` times
(a seeded generator, so the interval is reproducible), compute the statistic on each resample and
report the :math:`(1-c)/2` and :math:`(1+c)/2` percentiles (percentile method, :math:`c = 0.95`).

Seeds: :math:`\bar x \pm s` with the unbiased standard deviation :math:`s` (0 for a single seed).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Iterable, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval."""

    estimate: float
    low: float
    high: float
    confidence: float = 0.95
    n: int = 0

    def to_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "confidence": self.confidence,
                "n": self.n}


def bootstrap_ci(values: Sequence[float] | np.ndarray, *, statistic: Callable[[np.ndarray], float] | None = None,
                 n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """Percentile bootstrap interval of ``statistic`` (default: the mean) over ``values``.

    Deterministic for a given seed. An empty input gives NaNs; a single value gives a zero-width interval.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    n = x.size
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, confidence, 0)
    if statistic is None:
        est = float(x.mean())
        if n == 1:
            return Interval(est, est, est, confidence, 1)
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, n, size=(n_resamples, n))  # (B, n)
        stats = x[idx].mean(axis=1)  # (B,)
    else:
        est = float(statistic(x))
        if n == 1:
            return Interval(est, est, est, confidence, 1)
        rng = np.random.default_rng(seed)
        stats = np.array([statistic(x[rng.integers(0, n, size=n)]) for _ in range(n_resamples)])
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(stats, [tail, 1.0 - tail])
    return Interval(est, float(lo), float(hi), confidence, n)


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and unbiased standard deviation (std 0 for one value, NaNs for none)."""
    x = np.asarray(list(values), dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else 0.0


def format_mean_std(values: Iterable[float], *, scale: float = 1.0, digits: int = 1) -> str:
    """``"81.3 ± 0.4"`` (``scale=100`` turns fractions into percentages)."""
    m, s = mean_std(values)
    if math.isnan(m):
        return "n/a"
    return f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}"


def aggregate_seeds(rows: Sequence[dict[str, Any]], *, by: Sequence[str], values: Sequence[str],
                    seed_key: str = "seed") -> list[dict[str, Any]]:
    """Group ``rows`` by the ``by`` keys and report mean, std and the number of seeds for each value column.

    Output rows keep the ``by`` keys (in first-seen order) and add ``<v>_mean``, ``<v>_std``, ``n_seeds``.
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in by), []).append(row)
    out = []
    for key, members in groups.items():
        rec: dict[str, Any] = dict(zip(by, key))
        rec["n_seeds"] = len({m.get(seed_key, i) for i, m in enumerate(members)})
        for v in values:
            m, s = mean_std(float(r[v]) for r in members if r.get(v) is not None)
            rec[f"{v}_mean"], rec[f"{v}_std"] = m, s
        out.append(rec)
    return out


__all__ = ["Interval", "bootstrap_ci", "mean_std", "format_mean_std", "aggregate_seeds"]
