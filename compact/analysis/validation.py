r"""Metric validation: do the scores (and alpha) tell correct rationales from incorrect ones?

* AUC of a score :math:`s` at separating correct (:math:`y=1`) from incorrect rationales, rank-based
  (Mann-Whitney, ties get their average rank):
  :math:`\mathrm{AUC} = (R_+ - n_+(n_+ + 1)/2) / (n_+ n_-)`, with :math:`R_+` the rank sum of the positives.
  It is :math:`P(s_+ > s_-) + \tfrac12 P(s_+ = s_-)`; 0.5 = chance, < 0.5 = the score points the other way
  (expected for the difficulty :math:`L_k`, where lower is better).
* Pearson and Spearman (Pearson on average ranks) correlation matrices between the scores.
* The MI proxy against the HSIC estimator: their correlation across branches.
The labels are the simulated teachers' ground truth (``labels[k]["final_correct"]`` in the store).
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Literal, Mapping, Sequence

import numpy as np

SCORES = ("alpha", "mi", "consensus", "difficulty", "fused")


def rankdata(x: Sequence[float]) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def auc(scores: Sequence[float], labels: Sequence[bool | int]) -> float:
    """Rank-based ROC AUC of ``scores`` for ``labels`` (NaN when one class is missing)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.shape} vs {y.shape}")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = rankdata(s)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2:
        return float("nan")
    xc, yc = x - x.mean(), y - y.mean()
    den = math.sqrt(float((xc ** 2).sum() * (yc ** 2).sum()))
    return float((xc * yc).sum() / den) if den > 0 else float("nan")


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    return pearson(rankdata(x), rankdata(y))


def _column(rows: Sequence[Mapping[str, Any]], key: str) -> list:
    return [r[key] for r in rows]


def _records(rows: Any) -> list[dict[str, Any]]:
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):
        return rows.to_dict(orient="records")
    if hasattr(rows, "to_list") and hasattr(rows, "column_names"):  # datasets.Dataset
        return rows.to_list()
    return [dict(r) for r in rows]


def score_auc_table(rows: Any, *, scores: Iterable[str] = SCORES, label: str = "final_correct",
                    by: str | None = None) -> list[dict[str, Any]]:
    """AUC of each score column for ``label`` (one row per score, or per (group, score) with ``by``)."""
    recs = [r for r in _records(rows) if r.get(label) is not None]
    groups: dict[str, list[dict[str, Any]]] = {"all": recs}
    if by:
        for r in recs:
            groups.setdefault(str(r[by]), []).append(r)
    out = []
    for g, rs in groups.items():
        y = [bool(r[label]) for r in rs]
        for s in scores:
            if not rs or s not in rs[0]:
                continue
            a = auc(_column(rs, s), y)
            out.append({**({by: g} if by else {}), "score": s, "auc": a,
                        "auc_oriented": max(a, 1 - a) if not math.isnan(a) else a,
                        "n_correct": sum(y), "n_incorrect": len(y) - sum(y)})
    return out


def correlation_matrix(rows: Any, columns: Sequence[str] = SCORES,
                       method: Literal["spearman", "pearson"] = "spearman") -> list[dict[str, Any]]:
    """The correlation matrix of ``columns`` as rows (``{"score": a, b1: r, b2: r, ...}``)."""
    recs = _records(rows)
    cols = [c for c in columns if recs and c in recs[0]]
    f = spearman if method == "spearman" else pearson
    data = {c: [float(r[c]) for r in recs] for c in cols}
    return [{"score": a, **{b: (1.0 if a == b else f(data[a], data[b])) for b in cols}} for a in cols]


def proxy_vs_estimator(mi: Sequence[float], hsic: Sequence[float], groups: Sequence[Any] | None = None
                       ) -> dict[str, float]:
    """How well the MI proxy tracks the HSIC estimator across branches (and within questions).

    ``groups`` (the question of each branch) adds the mean within-question Spearman correlation, which is
    what matters for alpha (a per-question softmax).
    """
    out = {"n": len(mi), "pearson": pearson(mi, hsic), "spearman": spearman(mi, hsic)}
    if groups is not None:
        per: dict[Any, list[int]] = {}
        for i, g in enumerate(groups):
            per.setdefault(g, []).append(i)
        vals = [spearman([mi[i] for i in idx], [hsic[i] for i in idx]) for idx in per.values() if len(idx) > 2]
        vals = [v for v in vals if not math.isnan(v)]
        out["within_question_spearman"] = float(np.mean(vals)) if vals else float("nan")
    return out


__all__ = ["SCORES", "rankdata", "auc", "pearson", "spearman", "score_auc_table", "correlation_matrix",
           "proxy_vs_estimator"]
