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


# --- seeds and questions -----------------------------------------------------------------------------------------

from compact.errors import ConfigError
from compact.eval.stats import (
    constant_grid,
    difference_grid,
    grid_matrix,
    hierarchical_bootstrap,
    paired_comparison,
    seed_grid,
    seed_question_interval,
    t_quantile,
)


def _simulate(rng, *, seeds=3, n_q=600, seed_sd=0.06, noise_sd=0.1, acc=0.7, delta=0.0):
    """Two methods on the same questions: a shared difficulty per question, a per-(method, seed) accuracy offset
    ~ N(0, seed_sd) (training randomness) and a small per-answer noise; ``a`` is ``delta`` better than ``b``."""
    u = rng.uniform(size=n_q)
    qs = [f"q{i}" for i in range(n_q)]

    def method(shift):
        return {s: dict(zip(qs, (u + rng.normal(0, noise_sd, n_q) < acc + shift + rng.normal(0, seed_sd))
                            .astype(float).tolist())) for s in range(seeds)}
    return method(delta), method(0.0)


def _old_verdict(a, b, *, n_resamples=200, seed=0) -> bool:
    """The former comparison: a question bootstrap of the seed-averaged per-question difference."""
    _, _, d = grid_matrix(difference_grid(a, b))
    iv = bootstrap_ci(d.mean(axis=0), n_resamples=n_resamples, seed=seed)
    return iv.low > 0 or iv.high < 0


def test_t_quantile_matches_tables():
    assert t_quantile(0.975, 1) == pytest.approx(12.7062047, rel=1e-7)
    assert t_quantile(0.975, 2) == pytest.approx(4.3026527, rel=1e-7)
    assert t_quantile(0.80, 2) == pytest.approx(1.0606602, rel=1e-7)
    assert t_quantile(0.975, 30) == pytest.approx(2.0422725, rel=1e-7)
    assert t_quantile(0.025, 4) == pytest.approx(-2.7764451, rel=1e-7)
    assert t_quantile(0.975, math.inf) == pytest.approx(1.959964, rel=1e-6)


def test_seed_question_interval_counts_both_variances():
    grid = seed_grid([{"seed": s, "id": q, "correct": float((q + s) % 3 != 0)} for s in range(3) for q in range(90)])
    iv = seed_question_interval(grid)
    per_seed = np.array(list(iv.per_seed.values()))
    assert iv.n_seeds == 3 and iv.n_questions == 90 and iv.estimate == pytest.approx(per_seed.mean())
    assert iv.seed_var == pytest.approx(per_seed.var(ddof=1) / 3)
    _, _, m = grid_matrix(grid)
    assert iv.question_var == pytest.approx(m.mean(axis=0).var(ddof=1) / 90)
    half = t_quantile(0.975, 2) * math.sqrt(iv.seed_var + iv.question_var)
    assert (iv.low, iv.high) == pytest.approx((iv.estimate - half, iv.estimate + half))
    # one seed: the question-only normal interval, flagged
    one = seed_question_interval({0: grid[0]})
    assert one.n_seeds == 1 and one.method == "questions only (n_seeds=1)" and one.seed_var == 0.0
    assert (one.high - one.low) / 2 == pytest.approx(1.959964 * math.sqrt(one.question_var), rel=1e-5)
    # the hierarchical bootstrap is seeded and roughly agrees
    b1, b2 = hierarchical_bootstrap(grid, seed=1), hierarchical_bootstrap(grid, seed=1)
    assert b1 == b2 and b1.low <= iv.estimate <= b1.high and b1.n == 3


def test_question_bootstrap_declares_a_difference_that_seed_noise_made():
    """Identical true accuracy, large seed noise: the former question-only bootstrap calls a winner where the
    seed-aware comparison says "not resolved"; over 200 grids its false-positive rate is far above 5% while the
    seed-aware one stays at or below the nominal rate."""
    a, b = _simulate(np.random.default_rng(0))  # per-seed differences -17.0, +10.5, -6.5 points
    assert _old_verdict(a, b)
    cmp = paired_comparison(a, b)
    assert cmp.verdict == "not resolved" and cmp.low < 0 < cmp.high and cmp.seeds == (0, 1, 2)
    assert cmp.resolvable > abs(cmp.estimate)
    rng = np.random.default_rng(0)
    old = new = 0
    for i in range(200):
        a, b = _simulate(rng)
        old += _old_verdict(a, b, seed=i)
        new += paired_comparison(a, b).verdict != "not resolved"
    assert new / 200 <= 0.08
    assert old / 200 >= 0.5


def test_without_seed_noise_the_interval_is_the_question_interval_and_covers_the_truth():
    rng = np.random.default_rng(3)
    covered = 0
    for _ in range(100):
        a, b = _simulate(rng, seed_sd=0.0, noise_sd=0.15, delta=0.05)
        cmp = paired_comparison(a, b)
        covered += cmp.low <= 0.05 <= cmp.high
    assert covered >= 93
    # one deterministic model against itself shifted: seed spread 0, only the question term remains
    qs = {f"q{i}": float(i % 2) for i in range(200)}
    other = {q: 0.0 if i % 4 == 0 else v for i, (q, v) in enumerate(qs.items())}
    cmp = paired_comparison(constant_grid(qs, [0, 1, 2]), constant_grid(other, [0, 1, 2]))
    d = np.array([qs[q] - other[q] for q in sorted(qs)])
    half = t_quantile(0.975, 2) * math.sqrt(d.var(ddof=1) / d.size)
    assert cmp.estimate == pytest.approx(d.mean()) and cmp.high - cmp.estimate == pytest.approx(half)


def test_resolvable_is_finite_and_shrinks_with_seeds():
    res = []
    for n in (2, 3, 5, 10):
        a, b = _simulate(np.random.default_rng(5), seeds=n)
        cmp = paired_comparison(a, b)
        assert math.isfinite(cmp.resolvable) and cmp.resolvable > 0
        assert cmp.resolvable == pytest.approx((t_quantile(0.975, n - 1) + t_quantile(0.8, n - 1)) * cmp.se)
        res.append(cmp.resolvable)
    assert res == sorted(res, reverse=True), res


def test_one_matched_seed_gives_no_verdict_and_dropped_seeds_are_recorded():
    a, b = _simulate(np.random.default_rng(2))
    cmp = paired_comparison(a, {0: b[0]}, names=("compact", "single"))
    assert cmp.verdict == "no verdict (1 seed)" and cmp.seeds == (0,)
    assert math.isnan(cmp.low) and math.isnan(cmp.high) and math.isnan(cmp.resolvable)
    assert cmp.per_seed.keys() == {0} and cmp.estimate == pytest.approx(cmp.per_seed[0])
    assert cmp.dropped_seeds == {"compact": (1, 2)}
    two = paired_comparison(a, {1: b[1], 2: b[2], 7: b[0]})
    assert two.seeds == (1, 2) and two.dropped_seeds == {"a": (0,), "b": (7,)} and two.verdict != "no verdict (1 seed)"


def test_no_common_seed_is_a_one_line_config_error_unless_unpaired():
    a, b = _simulate(np.random.default_rng(4), delta=0.3)
    b = {s + 10: v for s, v in b.items()}
    with pytest.raises(ConfigError) as exc:
        paired_comparison(a, b, names=("compact", "uniform"))
    msg = str(exc.value)
    assert "\n" not in msg and "compact (seeds [0, 1, 2])" in msg and "uniform (seeds [10, 11, 12])" in msg
    cmp = paired_comparison(a, b, unpaired=True, names=("compact", "uniform"))
    assert not cmp.paired and cmp.label == "unpaired" and cmp.per_seed == {}
    assert cmp.seeds_a == (0, 1, 2) and cmp.seeds_b == (10, 11, 12)
    pa, pb = np.array(list(cmp.per_seed_a.values())), np.array(list(cmp.per_seed_b.values()))
    assert cmp.estimate == pytest.approx(pa.mean() - pb.mean())
    ua, ub = pa.var(ddof=1) / 3, pb.var(ddof=1) / 3
    assert cmp.df == pytest.approx((ua + ub) ** 2 / (ua ** 2 / 2 + ub ** 2 / 2))
    assert cmp.verdict == "better" and cmp.low > 0  # a 30-point gap survives 6-point seed noise
    one = paired_comparison(a, {10: b[10]}, unpaired=True)
    assert one.verdict == "no verdict (1 seed)"
