import math

import numpy as np
import pytest

from compact.eval.stats import aggregate_seeds, bootstrap_ci, format_mean_std, mean_std


def test_bootstrap_is_seeded_and_brackets_the_mean():
    x = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1] * 10, dtype=float)
    a = bootstrap_ci(x, seed=3)
    b = bootstrap_ci(x, seed=3)
    c = bootstrap_ci(x, seed=4)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)
    assert a.estimate == pytest.approx(0.7)
    assert a.low < 0.7 < a.high
    # normal approximation: half-width ~ 1.96 * sqrt(p(1-p)/n) = 0.0898
    assert (a.high - a.low) / 2 == pytest.approx(1.96 * math.sqrt(0.21 / 100), rel=0.2)


def test_bootstrap_degenerate_inputs():
    assert math.isnan(bootstrap_ci([]).estimate)
    one = bootstrap_ci([0.5])
    assert (one.estimate, one.low, one.high) == (0.5, 0.5, 0.5)
    const = bootstrap_ci([1.0] * 20)
    assert (const.low, const.high) == (1.0, 1.0)
    with pytest.raises(ValueError):
        bootstrap_ci([1.0, 2.0], confidence=1.5)


def test_bootstrap_custom_statistic():
    iv = bootstrap_ci([1.0, 2.0, 3.0, 100.0], statistic=np.median, n_resamples=200)
    assert iv.estimate == 2.5
    assert iv.low >= 1.0 and iv.high <= 100.0


def test_mean_std_unbiased():
    m, s = mean_std([1.0, 2.0, 3.0])
    assert (m, s) == (2.0, 1.0)
    assert mean_std([4.0]) == (4.0, 0.0)
    assert format_mean_std([0.5, 0.7], scale=100) == "60.0 ± 14.1"


def test_aggregate_seeds_groups_rows():
    rows = [{"method": "a", "seed": 0, "acc": 0.5}, {"method": "a", "seed": 1, "acc": 0.7},
            {"method": "b", "seed": 0, "acc": 0.9}]
    out = aggregate_seeds(rows, by=["method"], values=["acc"])
    assert out[0]["method"] == "a" and out[0]["n_seeds"] == 2
    assert out[0]["acc_mean"] == pytest.approx(0.6) and out[0]["acc_std"] == pytest.approx(math.sqrt(0.02))
    assert out[1] == {"method": "b", "n_seeds": 1, "acc_mean": 0.9, "acc_std": 0.0}
