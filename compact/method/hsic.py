r"""HSIC: a kernel dependence estimate, to validate the MI proxy against (analysis only, never a weight).

For n paired samples :math:`(x_i, y_i)` with Gaussian kernels
:math:`K_{ij} = \exp(-\|x_i - x_j\|^2 / 2\sigma_x^2)`, :math:`L_{ij}` likewise, and the centering matrix
:math:`H = I - \tfrac1n \mathbf 1 \mathbf 1^\top`, the (biased) Hilbert-Schmidt Independence Criterion is

.. math::

    \mathrm{HSIC}(X, Y) = \frac{1}{(n-1)^2} \operatorname{tr}(K H L H) \;\ge 0,

zero in the population iff X and Y are independent (for characteristic kernels); it is the kernel
surrogate for mutual information used by Qian et al. (2025, "thinking tokens are information peaks").
Bandwidths follow the median heuristic: :math:`\sigma` = median pairwise distance (mean when the median
is 0, floored at 1e-2). ``normalize=True`` divides by :math:`\sqrt{\mathrm{HSIC}(X,X)\,\mathrm{HSIC}(Y,Y)}`
(a value in [0, 1], comparable across tokens).

:func:`token_answer_hsic` scores every token of every branch against the gold-answer representation the
way Qian et al.'s released estimator does: the H coordinates of :math:`h_{k,t}` and of the gold
representation are the n = H paired one-dimensional samples.
"""
from __future__ import annotations

import torch
from torch import Tensor

MIN_SIGMA = 1e-2


def _sq_dists(x: Tensor) -> Tensor:
    """Pairwise squared distances, (..., n, n), clamped at 0."""
    sq = (x * x).sum(dim=-1)  # (..., n)
    return (sq[..., :, None] + sq[..., None, :] - 2 * x @ x.transpose(-1, -2)).clamp(min=0)


def _median(v: Tensor) -> Tensor:
    """Median over the last dim, midpoint of the two middle values when even (``torch.quantile(v, 0.5)``),
    by selection rather than a full sort."""
    m = v.shape[-1]
    lo = torch.kthvalue(v, (m + 1) // 2, dim=-1).values
    if m % 2:
        return lo
    return 0.5 * (lo + torch.kthvalue(v, m // 2 + 1, dim=-1).values)


def _sigma_from_sq(d2: Tensor) -> Tensor:
    n = d2.shape[-1]
    iu = torch.triu_indices(n, n, offset=1, device=d2.device)
    dist = d2[..., iu[0], iu[1]].sqrt()  # (..., n(n-1)/2)
    med = _median(dist)
    med = torch.where(med > 0, med, dist.mean(dim=-1))
    return med.clamp(min=MIN_SIGMA)


def median_sigma(x: Tensor) -> Tensor:
    """Median-heuristic bandwidth per batch element: median pairwise distance over i < j, (...)."""
    return _sigma_from_sq(_sq_dists(x))


def gaussian_kernel(x: Tensor, sigma: Tensor | float | None = None) -> Tensor:
    """(..., n, n) Gaussian Gram matrix of (..., n, d) samples."""
    d2 = _sq_dists(x)  # computed once for the bandwidth and the kernel
    sigma = _sigma_from_sq(d2) if sigma is None else sigma
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    return torch.exp(-d2 / (2 * sigma[..., None, None] ** 2))


def _hsic_from_grams(k: Tensor, l: Tensor) -> Tensor:
    n = k.shape[-1]
    kc = k - k.mean(dim=-1, keepdim=True) - k.mean(dim=-2, keepdim=True) + k.mean(dim=(-1, -2), keepdim=True)
    # tr(K H L H) = sum_ij (HKH)_ij L_ij, since H is idempotent and symmetric
    return (kc * l).sum(dim=(-1, -2)) / (n - 1) ** 2


def hsic_mi(x: Tensor, y: Tensor, sigma_x: Tensor | float | None = None, sigma_y: Tensor | float | None = None,
            normalize: bool = False) -> Tensor:
    """Batched Gaussian-kernel HSIC between paired samples ``x`` (..., n, dx) and ``y`` (..., n, dy) -> (...)."""
    if x.shape[-2] != y.shape[-2]:
        raise ValueError(f"hsic_mi: x has {x.shape[-2]} samples, y has {y.shape[-2]}")
    if x.shape[-2] < 2:
        raise ValueError("hsic_mi needs at least 2 samples")
    x, y = x.double(), y.double()
    k, l = gaussian_kernel(x, sigma_x), gaussian_kernel(y, sigma_y)
    value = _hsic_from_grams(k, l)
    if normalize:
        value = value / (_hsic_from_grams(k, k) * _hsic_from_grams(l, l)).sqrt().clamp(min=1e-12)
    return value


def _pair_sq_dists_1d(v: Tensor) -> Tensor:
    """(..., n) one-dimensional samples -> (..., n, n) squared differences, exactly symmetric, zero diagonal."""
    d = v[..., :, None] - v[..., None, :]
    return d.mul_(d)


def _sigma_1d(d2: Tensor, upper: Tensor) -> Tensor:
    """The median-heuristic bandwidth of :func:`_sigma_from_sq` from (C, n, n) squared distances, with one
    selection: the lower middle pair by ``kthvalue``, the upper middle (for an even pair count) as the smallest
    pair above it, or the same value when ties reach that rank. ``upper`` indexes the flattened i < j pairs."""
    p = d2.flatten(-2).index_select(-1, upper)  # (C, m) squared pair distances
    m = p.shape[-1]
    lo = torch.kthvalue(p, (m + 1) // 2, dim=-1).values
    if m % 2:
        med = lo.sqrt()
    else:
        ties = (p <= lo[:, None]).sum(-1) >= m // 2 + 1
        above = torch.where(p > lo[:, None], p, torch.full_like(p, float("inf"))).amin(-1)
        med = 0.5 * (lo.sqrt() + torch.where(ties, lo, above).sqrt())
    if bool((med <= 0).any()):
        med = torch.where(med > 0, med, p.sqrt().mean(dim=-1))
    return med.clamp(min=MIN_SIGMA)


def _centered_gram_1d(v: Tensor, upper: Tensor) -> Tensor:
    """H K H for the Gaussian Gram matrix (median bandwidth) of (C, n) one-dimensional samples, (C, n, n)."""
    d2 = _pair_sq_dists_1d(v)
    sigma = _sigma_1d(d2, upper)
    k = d2.mul_((-0.5 / sigma ** 2)[:, None, None]).exp_()
    r = k.mean(dim=-1, keepdim=True)  # K is symmetric: its column means are r transposed
    return k.sub_(r).sub_(r.transpose(-1, -2)).add_(r.mean(dim=-2, keepdim=True))


@torch.no_grad()
def token_answer_hsic(hidden: Tensor, gold_repr: Tensor, attention_mask: Tensor | None = None,
                      normalize: bool = False, chunk: int = 4, positions: Tensor | None = None) -> Tensor:
    """HSIC between each token's hidden state and its row's gold-answer representation, (N, L).

    ``hidden`` (N, L, H); ``gold_repr`` (N, H) (e.g. the last hidden state of the gold answer run through
    the same model, one row per branch). Coordinates are the paired samples (Qian et al.'s estimator): per
    token, :func:`hsic_mi` of the H pairs ``(hidden[i, t, j], gold_repr[i, j])``. Padding positions
    (``attention_mask == 0``) and positions outside ``positions`` (N, L) bool, when given, are NaN and cost
    nothing.

    The same numbers as :func:`hsic_mi` token by token (to float64 rounding), computed for one-dimensional
    samples: the gold side's centred Gram matrix once per row, HSIC(K, L) = <HKH, HLH> as one dot product,
    one selection for each bandwidth, ``chunk`` tokens at a time (small chunks stay in cache).
    """
    n, length, h = hidden.shape
    if h < 2:
        raise ValueError("token_answer_hsic needs at least 2 coordinates")
    keep = torch.ones(n, length, dtype=torch.bool, device=hidden.device)
    if attention_mask is not None:
        keep &= attention_mask.bool()
    if positions is not None:
        keep &= positions.bool()
    iu = torch.triu_indices(h, h, offset=1, device=hidden.device)
    upper = iu[0] * h + iu[1]
    scale = float((h - 1) ** 2)
    out = torch.full((n, length), float("nan"), dtype=torch.float64, device=hidden.device)
    gold = gold_repr.detach().double()
    for i in range(n):
        cols = keep[i].nonzero().flatten()
        if not len(cols):
            continue
        lc = _centered_gram_1d(gold[i][None], upper)[0].flatten()  # (H*H,)
        hll = torch.dot(lc, lc) / scale
        x = hidden[i].detach().index_select(0, cols).double()  # (T, H)
        vals = torch.empty(len(cols), dtype=torch.float64, device=hidden.device)
        for s in range(0, len(cols), chunk):
            kc = _centered_gram_1d(x[s:s + chunk], upper).flatten(-2)  # (C, H*H)
            v = kc @ lc / scale  # HSIC(K, L) = <HKH, HLH> / (n-1)^2
            if normalize:
                v = v / (torch.linalg.vecdot(kc, kc) / scale * hll).sqrt().clamp(min=1e-12)
            vals[s:s + chunk] = v
        out[i, cols] = vals
    return out
