r"""Fusion of the three scores into per-question teacher weights :math:`\alpha`.

Per question, over its K branches (unbiased std; :math:`z \equiv 1` when K = 1):

.. math::

    z(v)_k = \frac{v_k - \bar v}{\operatorname{std}(v) + 10^{-4}},\qquad
    S_k = \beta_1 z(M)_k + \beta_2 z(C)_k - \beta_3 z(L)_k,\qquad
    \alpha = \operatorname{softmax}(S / \tau)

Ablations drop a term from :math:`S` (``use_mi`` etc.). ``weighting="uniform"`` gives
:math:`\alpha_k = 1/K`; ``weighting="static"`` gives :math:`\alpha_k \propto` a fixed per-teacher weight
(normalised over the teachers present in the question); ``weighting="random"`` draws
:math:`\alpha \sim \operatorname{Dirichlet}(1, \dots, 1)` per question from torch's generator (a control:
normalised Exponential(1) draws); ``weighting="shuffled"`` computes COMPACT's :math:`\alpha` exactly as
``"compact"`` does and permutes it among each question's branches, a uniformly random permutation per question
and call drawn from torch's generator (a control: COMPACT's concentration and consistency weights, teachers
chosen at random; the returned :math:`S` is COMPACT's, unpermuted). Everything here is detached.
Softmaxes and statistics are per question (``group``), so the result does not depend on which other
questions share the batch.
"""
from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
from torch import Tensor

Weighting = Literal["compact", "uniform", "static", "random", "shuffled"]
EPS = 1e-4


def _group_index(group: Tensor) -> tuple[Tensor, int]:
    """Dense 0..B-1 ids (batches may hold any question ids) and the number of groups."""
    uniq, inv = torch.unique(group, return_inverse=True)
    return inv, len(uniq)


def zscore_per_group(v: Tensor, group: Tensor, eps: float = EPS) -> Tensor:
    """``(v - mean) / (std_unbiased + eps)`` within each question; 1 for a single-branch question."""
    v = v.detach().double()
    idx, n_groups = _group_index(group)
    count = torch.zeros(n_groups, dtype=v.dtype, device=v.device).index_add_(0, idx, torch.ones_like(v))
    mean = torch.zeros_like(count).index_add_(0, idx, v) / count
    dev = v - mean[idx]
    var = torch.zeros_like(count).index_add_(0, idx, dev * dev) / (count - 1).clamp(min=1)
    z = dev / (var.sqrt()[idx] + eps)
    return torch.where(count[idx] > 1, z, torch.ones_like(z)).float()


def group_softmax(s: Tensor, group: Tensor) -> Tensor:
    """Softmax of ``s`` within each question, (N,)."""
    s = s.detach().double()
    idx, n_groups = _group_index(group)
    peak = torch.full((n_groups,), float("-inf"), dtype=s.dtype, device=s.device)
    peak = peak.scatter_reduce(0, idx, s, reduce="amax")
    e = torch.exp(s - peak[idx])
    total = torch.zeros(n_groups, dtype=s.dtype, device=s.device).index_add_(0, idx, e)
    return (e / total[idx]).float()


def permute_per_group(v: Tensor, group: Tensor) -> Tensor:
    """``v`` with its entries permuted among the rows of each question: a uniformly random permutation per question
    (the order of i.i.d. uniform keys, drawn from torch's generator on ``group``'s device)."""
    idx, _ = _group_index(group)
    keys = torch.rand(len(group), dtype=torch.float64, device=group.device)
    slots = torch.sort(idx, stable=True).indices  # each question's rows, in row order, question by question
    by_key = torch.sort(keys).indices
    drawn = by_key[torch.sort(idx[by_key], stable=True).indices]  # each question's rows, in random order
    out = torch.empty_like(v)
    out[slots] = v[drawn]
    return out


def check_static_weights(weights: Sequence[float] | None, n_teachers: int | None = None) -> list[float]:
    """The one validation of fixed per-teacher weights (config, method and objective): a non-empty list of
    finite weights >= 0, not all zero, one per teacher when ``n_teachers`` is given. ValueError otherwise."""
    ws = [float(w) for w in (weights or [])]
    if not ws:
        raise ValueError("weighting='static' needs static_weights (one per teacher)")
    if any(not math.isfinite(w) or w < 0 for w in ws):
        raise ValueError(f"static_weights must be finite and >= 0, got {list(weights)}")
    if sum(ws) <= 0:
        raise ValueError(f"static_weights must not all be zero, got {list(weights)}")
    if n_teachers is not None and len(ws) != n_teachers:
        raise ValueError(f"static_weights needs one weight per teacher ({n_teachers}), got {len(ws)}: {list(weights)}")
    return ws


def fuse(mi: Tensor, consensus: Tensor, difficulty: Tensor, group: Tensor,
         beta: Sequence[float] = (1.0, 1.0, 0.5), temperature: float = 1.0,
         use_mi: bool = True, use_consensus: bool = True, use_difficulty: bool = True,
         weighting: Weighting = "compact", static_weights: Sequence[float] | None = None,
         teacher: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Fused score :math:`S` and weights :math:`\\alpha`, both (N,) and detached."""
    b1, b2, b3 = (float(x) for x in beta)
    s = torch.zeros(len(group), dtype=torch.float32, device=group.device)
    if use_mi:
        s = s + b1 * zscore_per_group(mi, group)
    if use_consensus:
        s = s + b2 * zscore_per_group(consensus, group)
    if use_difficulty:
        s = s - b3 * zscore_per_group(difficulty, group)
    if weighting == "compact":
        return s, group_softmax(s / temperature, group)
    if weighting == "shuffled":
        return s, permute_per_group(group_softmax(s / temperature, group), group)
    if weighting == "uniform":
        return s, group_softmax(torch.zeros_like(s), group)
    if weighting == "random":
        draws = -torch.log1p(-torch.rand(len(group), dtype=torch.float64, device=group.device))  # Exp(1)
        idx, n_groups = _group_index(group)
        total = torch.zeros(n_groups, dtype=draws.dtype, device=draws.device).index_add_(0, idx, draws)
        return s, (draws / total[idx]).float()
    if weighting == "static":
        if static_weights is None or teacher is None:
            raise ValueError("weighting='static' needs static_weights and the per-row teacher index")
        table = torch.tensor([float(x) for x in static_weights], dtype=torch.float64, device=group.device)
        t = teacher.to(group.device).long()
        if int(t.max()) >= len(table) or int(t.min()) < 0:
            raise ValueError(f"teacher index {int(t.max())} outside static_weights (length {len(table)})")
        w = table[t]
        idx, n_groups = _group_index(group)
        total = torch.zeros(n_groups, dtype=w.dtype, device=w.device).index_add_(0, idx, w)
        if bool((total[idx] <= 0).any()):
            raise ValueError("static_weights sum to zero over the teachers of a question")
        return s, (w / total[idx]).float()
    raise ValueError(f"unknown weighting {weighting!r} "
                     "(expected 'compact', 'uniform', 'static', 'random' or 'shuffled')")
