"""HSIC estimator: batched torch against a slow loop reference, plus sanity properties."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from compact.method.hsic import hsic_mi, median_sigma, token_answer_hsic


def _slow_hsic(x: np.ndarray, y: np.ndarray) -> float:
    """Textbook tr(K H L H) / (n-1)^2 with explicit loops and numpy's median."""
    n = len(x)

    def gram(a):
        d = np.array([[np.sum((a[i] - a[j]) ** 2) for j in range(n)] for i in range(n)])
        dist = np.sqrt(np.array([d[i, j] for i in range(n) for j in range(i + 1, n)]))
        sigma = np.median(dist)
        sigma = sigma if sigma > 0 else dist.mean()
        sigma = max(sigma, 1e-2)
        return np.exp(-d / (2 * sigma ** 2))

    k, l = gram(x), gram(y)
    h = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(k @ h @ l @ h)) / (n - 1) ** 2


def test_batched_matches_slow_reference():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 17, 3, generator=gen)
    y = torch.randn(5, 17, 2, generator=gen) + x[..., :2] * torch.linspace(0, 2, 5)[:, None, None]
    fast = hsic_mi(x, y)
    assert fast.shape == (5,)
    for b in range(5):
        assert fast[b].item() == pytest.approx(_slow_hsic(x[b].double().numpy(), y[b].double().numpy()), rel=1e-9)


def test_independent_much_smaller_than_dependent():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(8, 200, 1, generator=gen)
    independent = hsic_mi(x, torch.randn(8, 200, 1, generator=gen))
    dependent = hsic_mi(x, torch.sin(2 * x) + 0.1 * torch.randn(8, 200, 1, generator=gen))
    assert (independent >= 0).all()
    assert dependent.min() > 10 * independent.max()


def test_properties_symmetry_permutation_scale():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(40, 4, generator=gen)
    y = x[:, :1] ** 2 + 0.3 * torch.randn(40, 1, generator=gen)
    base = hsic_mi(x, y)
    assert hsic_mi(y, x).item() == pytest.approx(base.item(), rel=1e-10)
    perm = torch.randperm(40, generator=gen)
    assert hsic_mi(x[perm], y[perm]).item() == pytest.approx(base.item(), rel=1e-10)
    # the median heuristic makes the estimate invariant to rescaling (above the 1e-2 bandwidth floor)
    assert hsic_mi(7.0 * x, 0.1 * y).item() == pytest.approx(base.item(), rel=1e-6)
    # breaking the pairing destroys the dependence
    assert hsic_mi(x, y[torch.randperm(40, generator=gen)]).item() < base.item()
    norm = hsic_mi(x, y, normalize=True).item()
    assert 0 < norm <= 1 and hsic_mi(x, x, normalize=True).item() == pytest.approx(1.0)


def test_median_sigma_floor_for_constant_samples():
    assert median_sigma(torch.zeros(6, 2)).item() == pytest.approx(1e-2)


def test_token_answer_hsic_shape_mask_and_peak():
    gen = torch.Generator().manual_seed(3)
    hidden = torch.randn(2, 5, 32, generator=gen)
    gold = torch.randn(2, 32, generator=gen)
    hidden[0, 3] = gold[0] * 2 + 0.05 * torch.randn(32, generator=gen)  # a token that "knows" the answer
    mask = torch.ones(2, 5, dtype=torch.long)
    mask[1, 4] = 0
    out = token_answer_hsic(hidden, gold, mask, chunk=3)
    assert out.shape == (2, 5)
    assert torch.isnan(out[1, 4]) and not torch.isnan(out[0]).any()
    assert out[0].argmax().item() == 3
    assert out[0, 3] == pytest.approx(hsic_mi(hidden[0, 3][:, None], gold[0][:, None]).item())


@pytest.mark.parametrize("h", [7, 32, 33])
@pytest.mark.parametrize("normalize", [False, True])
def test_token_answer_hsic_is_hsic_mi_token_by_token(h, normalize):
    """The one-dimensional path (gold Gram once per row, one selection per bandwidth) gives hsic_mi's numbers,
    also when pair distances tie at the median (integer coordinates) or are all zero (a constant state)."""
    gen = torch.Generator().manual_seed(h)
    hidden = torch.randn(3, 6, h, generator=gen)
    hidden[1] = torch.randint(-2, 3, (6, h), generator=gen).float()  # many tied distances
    hidden[2, 0] = 0.5  # all distances 0: the bandwidth falls back to its floor
    gold = torch.randn(3, h, generator=gen)
    gold[1] = torch.randint(0, 2, (h,), generator=gen).float()
    keep = torch.ones(3, 6, dtype=torch.bool)
    keep[0, 1] = False
    out = token_answer_hsic(hidden, gold, normalize=normalize, positions=keep, chunk=4)
    assert torch.isnan(out[0, 1]) and int(torch.isnan(out).sum()) == 1
    for i in range(3):
        for t in range(6):
            if keep[i, t]:
                ref = hsic_mi(hidden[i, t][:, None], gold[i][:, None], normalize=normalize).item()
                assert out[i, t].item() == pytest.approx(ref, rel=1e-9, abs=1e-12), (i, t)
