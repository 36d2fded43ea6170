r"""Uncertainty for reported numbers: seeded percentile bootstrap and mean +- std over seeds.

Bootstrap: resample the per-example outcomes :math:`x_1..x_n` with replacement :math:`B` times
(a seeded generator, so the interval is reproducible), compute the statistic on each resample and
report the :math:`(1-c)/2` and :math:`(1+c)/2` percentiles (percentile method, :math:`c = 0.95`).

Seeds: :math:`\bar x \pm s` with the unbiased standard deviation :math:`s` (0 for a single seed).

Seeds and questions together (:func:`seed_question_interval`, :func:`paired_comparison`). A method's outcomes
form a grid :math:`y_{sq}` (seed :math:`s = 1..S`, question :math:`q = 1..Q`, the same fixed test set for every
seed). The estimate is :math:`\hat\mu = \frac1S\sum_s \bar y_{s\cdot}`, the mean of the per-seed accuracies. Its
variance is :math:`\hat V = s^2_{\mathrm{seed}}/S + v_q`, where :math:`s^2_{\mathrm{seed}}` is the unbiased
variance of the per-seed accuracies :math:`\bar y_{s\cdot}` (training randomness) and
:math:`v_q = \mathrm{Var}_q(\bar y_{\cdot q})/Q` is the question-sampling variance of the seed-averaged
per-question outcome. Both terms are needed: the test set is fixed across seeds, so the spread of the per-seed
accuracies contains no question-sampling term, and a bootstrap over questions contains no seed term. Under a
two-way random-effects model :math:`y_{sq} = \mu + a_s + b_q + e_{sq}` the sum estimates
:math:`\sigma_a^2/S + \sigma_b^2/Q + 2\sigma_e^2/(SQ)`: the interaction is counted twice, so :math:`\hat V` is
slightly conservative. The interval is :math:`\hat\mu \pm t_{0.975,\,S-1}\sqrt{\hat V}` (Student's :math:`t`
with :math:`S-1` degrees of freedom, the seeds being the scarce replicate); with one seed it is the
question-only normal interval, flagged ``n_seeds=1``. A difference of two methods is the same estimator on
:math:`d_{sq} = y^A_{sq} - y^B_{sq}` over matched seeds and questions; independent seed sets use
:math:`s_A^2/S_A + s_B^2/S_B` with Welch-Satterthwaite degrees of freedom. The smallest difference the design
resolves at 80% power is :math:`(t_{0.975,\nu} + t_{0.80,\nu})\sqrt{\hat V}`. A hierarchical percentile
bootstrap (seeds with replacement, then questions with replacement, the same questions for every seed) is
reported beside it as a cross-check; with few seeds it is the narrower of the two (no :math:`t` widening).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..errors import ConfigError


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




# ---------------------------------------------------------------------------------------------------------------
# Seeds and questions: the per-seed x per-question grid, its interval and paired comparisons
# ---------------------------------------------------------------------------------------------------------------

SeedGrid = Mapping[Any, Mapping[str, float]]
"""seed id -> {question id: outcome (0/1 correctness, or any float)}; one evaluation of one model per seed."""


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta :math:`I_x(a, b)`."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """Student's t distribution function with ``df`` (> 0, possibly fractional or inf) degrees of freedom."""
    if math.isinf(df):
        return 0.5 * math.erfc(-t / math.sqrt(2.0))
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t (scipy's ``t.ppf`` when scipy is installed, else an exact bisection on
    :func:`t_cdf`; ``df = inf`` gives the normal quantile)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if not df > 0:
        raise ValueError(f"df must be > 0, got {df}")
    return _t_quantile(float(p), float(df))


@functools.lru_cache(maxsize=1024)
def _t_quantile(p: float, df: float) -> float:
    try:  # scipy is optional; the bisection below agrees with it to ~1e-12
        from scipy.stats import t as _t

        return float(_t.ppf(p, df))
    except ImportError:
        pass
    if math.isinf(df) or df > 1e7:
        from statistics import NormalDist
        return NormalDist().inv_cdf(p)
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -_t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def seed_grid(rows: Iterable[Mapping[str, Any]], *, seed_key: str = "seed", id_key: str = "id",
              value_key: str = "correct") -> dict[Any, dict[str, float]]:
    """A :data:`SeedGrid` from flat rows (one per seed and question)."""
    grid: dict[Any, dict[str, float]] = {}
    for r in rows:
        grid.setdefault(r[seed_key], {})[str(r[id_key])] = float(r[value_key])
    return grid


def constant_grid(outcomes: Mapping[str, float], seeds: Iterable[Any]) -> dict[Any, dict[str, float]]:
    """A deterministic model (e.g. the undistilled base student, evaluated once) present for every seed."""
    row = {str(k): float(v) for k, v in outcomes.items()}
    return {s: dict(row) for s in seeds}


def grid_matrix(grid: SeedGrid, *, seeds: Sequence[Any] | None = None,
                questions: Sequence[str] | None = None) -> tuple[list[Any], list[str], np.ndarray]:
    """``(seeds, questions, matrix)`` with ``matrix[s, q]`` the outcome; by default every seed (sorted) and the
    questions every one of those seeds answered (sorted)."""
    seeds = sorted(grid) if seeds is None else list(seeds)
    if questions is None:
        common = set.intersection(*(set(grid[s]) for s in seeds)) if seeds else set()
        questions = sorted(common)
    m = np.array([[grid[s][q] for q in questions] for s in seeds], dtype=np.float64).reshape(
        len(seeds), len(questions))
    return list(seeds), list(questions), m


def difference_grid(grid_a: SeedGrid, grid_b: SeedGrid) -> dict[Any, dict[str, float]]:
    """``a - b`` per matched seed and matched question (the grid :func:`paired_comparison` reads)."""
    seeds = sorted(set(grid_a) & set(grid_b))
    if not seeds:
        return {}
    qs = sorted(set.intersection(*(set(grid_a[s]) & set(grid_b[s]) for s in seeds)))
    return {s: {q: float(grid_a[s][q]) - float(grid_b[s][q]) for q in qs} for s in seeds}


def _question_var(m: np.ndarray) -> float:
    """Variance over questions of the seed-averaged outcome, divided by the number of questions."""
    per_q = m.mean(axis=0)
    return float(per_q.var(ddof=1) / per_q.size) if per_q.size > 1 else 0.0


@dataclasses.dataclass(frozen=True)
class SeedInterval:
    """Mean accuracy over seeds with an interval that counts seed and question variance (see the module doc)."""

    estimate: float
    low: float
    high: float
    n_seeds: int
    n_questions: int
    per_seed: dict[Any, float]
    se: float               # sqrt(seed_var + question_var)
    seed_var: float         # s_seed^2 / n_seeds (0 for one seed)
    question_var: float     # Var_q(seed-averaged outcome) / n_questions
    df: float               # n_seeds - 1 (inf: the question-only interval of one seed)
    confidence: float = 0.95
    method: str = "seeds+questions"   # or "questions only (n_seeds=1)"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def seed_question_interval(grid: SeedGrid, *, confidence: float = 0.95) -> SeedInterval:
    r"""Interval of the mean accuracy over seeds: :math:`\hat\mu \pm t_{(1+c)/2,\,S-1}\sqrt{s^2_{seed}/S + v_q}`.

    With one seed: the question-only normal interval, ``method = "questions only (n_seeds=1)"``. Questions are
    those every seed answered. An empty grid gives NaNs.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    seeds, qs, m = grid_matrix(grid)
    if not seeds or not qs:
        nan = math.nan
        return SeedInterval(nan, nan, nan, len(seeds), len(qs), {}, nan, nan, nan, nan, confidence)
    per_seed = m.mean(axis=1)
    est = float(per_seed.mean())
    v_q = _question_var(m)
    n = len(seeds)
    if n == 1:
        se = math.sqrt(v_q)
        z = t_quantile((1.0 + confidence) / 2.0, math.inf)
        return SeedInterval(est, est - z * se, est + z * se, 1, len(qs), {seeds[0]: float(per_seed[0])}, se, 0.0,
                            v_q, math.inf, confidence, "questions only (n_seeds=1)")
    v_s = float(per_seed.var(ddof=1) / n)
    se = math.sqrt(v_s + v_q)
    t = t_quantile((1.0 + confidence) / 2.0, n - 1)
    return SeedInterval(est, est - t * se, est + t * se, n, len(qs), dict(zip(seeds, map(float, per_seed))), se, v_s,
                        v_q, float(n - 1), confidence)


def hierarchical_bootstrap(grid: SeedGrid, *, n_resamples: int = 1000, confidence: float = 0.95,
                           seed: int = 0) -> Interval:
    """Percentile interval of the mean over a two-level resample: seeds with replacement, then questions with
    replacement (the same resampled question ids for every resampled seed). Seeded; ``n`` is the number of
    seeds. With one seed it is the question bootstrap; an empty grid gives NaNs.

    A cross-check, not the verdict: with few seeds it is narrower than :func:`seed_question_interval` (a
    resample of 3 seeds has :math:`(S-1)/S` of their variance and no Student-t widening), so it understates the
    seed term exactly where seeds are scarce."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    _, _, m = grid_matrix(grid)
    S, Q = m.shape
    if S == 0 or Q == 0:
        return Interval(math.nan, math.nan, math.nan, confidence, S)
    est = float(m.mean())
    rng = np.random.default_rng(seed)
    ws = rng.multinomial(S, np.full(S, 1.0 / S), size=n_resamples) / S    # (B, S) seed weights
    wq = rng.multinomial(Q, np.full(Q, 1.0 / Q), size=n_resamples) / Q    # (B, Q) question weights
    per_seed = wq @ m.T                                                   # (B, S): each seed on the resampled questions
    stats = (ws * per_seed).sum(axis=1)
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(stats, [tail, 1.0 - tail])
    return Interval(est, float(lo), float(hi), confidence, S)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """``a - b`` with a seed- and question-aware interval (see :func:`paired_comparison`)."""

    estimate: float
    low: float
    high: float
    verdict: str                        # "better" | "worse" | "not resolved" | "no verdict (1 seed)"
    resolvable: float                   # smallest difference resolvable at the given power (NaN without a verdict)
    seeds: tuple                        # seeds used (matched; unpaired: a's seeds then b's, see seeds_a/seeds_b)
    per_seed: dict[Any, float]          # matched seed -> a - b (empty when unpaired)
    n_questions: int
    paired: bool                        # False: independent seed sets ("unpaired")
    dropped_seeds: dict[str, tuple]     # name -> its seeds left out of the match
    names: tuple[str, str] = ("a", "b")
    seeds_a: tuple = ()
    seeds_b: tuple = ()
    per_seed_a: dict[Any, float] = dataclasses.field(default_factory=dict)   # accuracy per seed of a
    per_seed_b: dict[Any, float] = dataclasses.field(default_factory=dict)
    se: float = math.nan
    df: float = math.nan
    confidence: float = 0.95

    @property
    def label(self) -> str:
        return "matched" if self.paired else "unpaired"

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "label": self.label}


def _verdict(low: float, high: float) -> str:
    return "better" if low > 0 else "worse" if high < 0 else "not resolved"


def paired_comparison(grid_a: SeedGrid, grid_b: SeedGrid, *, unpaired: bool = False,
                      names: tuple[str, str] = ("a", "b"), confidence: float = 0.95,
                      power: float = 0.80) -> Comparison:
    r"""Difference ``a - b`` of mean accuracy, seed- and question-aware.

    Matched (default): over the seeds both grids have and the questions every one of them answered; per-seed
    differences :math:`d_s`, variance :math:`s_d^2/n + \mathrm{Var}_q(\bar d_{\cdot q})/Q`, interval with
    :math:`t_{n-1}`. Seeds only one side has are dropped (recorded in ``dropped_seeds``); no seed in common is a
    :class:`~compact.errors.ConfigError` naming both methods and their seeds. ``unpaired=True``: independent seed
    sets, variance :math:`s_a^2/n_a + s_b^2/n_b` plus the question term of the seed-averaged per-question
    difference (the test questions are shared), Welch-Satterthwaite degrees of freedom.

    Verdict: ``"better"`` when the interval's low end is above 0, ``"worse"`` when its high end is below 0, else
    ``"not resolved"``; with fewer than 2 seeds (on either side, unpaired) ``"no verdict (1 seed)"`` and NaN
    bounds. ``resolvable`` = :math:`(t_{(1+c)/2,\nu} + t_{power,\nu})\,\mathrm{se}`: the smallest true difference
    this design detects with probability ``power``.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    na, nb = names
    sa, sb = sorted(grid_a), sorted(grid_b)
    nan = math.nan
    if not unpaired:
        seeds = sorted(set(sa) & set(sb))
        if not seeds:
            raise ConfigError(f"cannot pair {na} (seeds {sa}) with {nb} (seeds {sb}): no seed in common "
                              "(train a common seed, or compare them unpaired)")
        dropped = {k: tuple(s for s in v if s not in seeds) for k, v in ((na, sa), (nb, sb))}
        dropped = {k: v for k, v in dropped.items() if v}
        qs = sorted(set.intersection(*(set(grid_a[s]) & set(grid_b[s]) for s in seeds)))
        _, _, ma = grid_matrix(grid_a, seeds=seeds, questions=qs)
        _, _, mb = grid_matrix(grid_b, seeds=seeds, questions=qs)
        d = ma - mb
        common: dict[str, Any] = {
            "seeds": tuple(seeds), "n_questions": len(qs), "paired": True, "dropped_seeds": dropped,
            "names": (na, nb), "seeds_a": tuple(sa), "seeds_b": tuple(sb), "confidence": confidence,
            "per_seed_a": dict(zip(seeds, map(float, ma.mean(axis=1)))) if qs else {},
            "per_seed_b": dict(zip(seeds, map(float, mb.mean(axis=1)))) if qs else {}}
        if not qs:
            return Comparison(nan, nan, nan, "no verdict (no common questions)", nan, per_seed={}, **common)
        per_seed = d.mean(axis=1)
        est = float(per_seed.mean())
        n = len(seeds)
        ps = dict(zip(seeds, map(float, per_seed)))
        if n < 2:
            return Comparison(est, nan, nan, "no verdict (1 seed)", nan, per_seed=ps, **common)
        se = math.sqrt(float(per_seed.var(ddof=1)) / n + _question_var(d))
        df = float(n - 1)
    else:
        if not sa or not sb:
            raise ConfigError(f"cannot compare {na} (seeds {sa}) with {nb} (seeds {sb}): one has no evaluation")
        qs = sorted(set.intersection(*(set(grid_a[s]) for s in sa), *(set(grid_b[s]) for s in sb)))
        _, _, ma = grid_matrix(grid_a, questions=qs)
        _, _, mb = grid_matrix(grid_b, questions=qs)
        pa, pb = ma.mean(axis=1), mb.mean(axis=1)
        common = {
            "seeds": tuple(sa) + tuple(sb), "per_seed": {}, "n_questions": len(qs), "paired": False,
            "dropped_seeds": {}, "names": (na, nb), "seeds_a": tuple(sa), "seeds_b": tuple(sb),
            "confidence": confidence, "per_seed_a": dict(zip(sa, map(float, pa))) if qs else {},
            "per_seed_b": dict(zip(sb, map(float, pb))) if qs else {}}
        if not qs:
            return Comparison(nan, nan, nan, "no verdict (no common questions)", nan, **common)
        est = float(pa.mean() - pb.mean())
        if len(sa) < 2 or len(sb) < 2:
            return Comparison(est, nan, nan, "no verdict (1 seed)", nan, **common)
        ua, ub = float(pa.var(ddof=1)) / len(sa), float(pb.var(ddof=1)) / len(sb)
        v_q = _question_var(ma.mean(axis=0, keepdims=True) - mb.mean(axis=0, keepdims=True))
        se = math.sqrt(ua + ub + v_q)
        denom = ua ** 2 / (len(sa) - 1) + ub ** 2 / (len(sb) - 1)
        df = (ua + ub) ** 2 / denom if denom > 0 else float(len(sa) + len(sb) - 2)
        ps = {}
    t = t_quantile((1.0 + confidence) / 2.0, df)
    low, high = est - t * se, est + t * se
    resolvable = (t + t_quantile(power, df)) * se
    if unpaired:
        return Comparison(est, low, high, _verdict(low, high), resolvable, se=se, df=df, **common)
    return Comparison(est, low, high, _verdict(low, high), resolvable, per_seed=ps, se=se, df=df, **common)


__all__ = ["Comparison", "Interval", "SeedGrid", "SeedInterval", "aggregate_seeds", "bootstrap_ci", "constant_grid",
           "difference_grid", "format_mean_std", "grid_matrix", "hierarchical_bootstrap", "mean_std",
           "paired_comparison", "seed_grid", "seed_question_interval", "t_cdf", "t_quantile"]
