"""The results stage's seed-aware tables: main_tables on a tiny fake registry, its figures, and the profile's
``comparisons`` key (validated by make_plan, outside the plan's keys while empty)."""
import dataclasses
import math

import numpy as np
import pytest

from compact.errors import ConfigError
from compact.eval.evaluate import EvalResult
from compact.eval.stats import constant_grid, paired_comparison, seed_question_interval
from compact.publish.registry import EvalRecord, ModelRecord, Registry, Tasks

ID, OOD = ["arith", "variation"], ["mcq"]
N_Q = 120


def _eval(tmp_path, mid: str, rng, acc: float) -> EvalRecord:
    samples, metrics = [], {}
    for task in [*ID, *OOD]:
        right = (rng.uniform(size=N_Q) < acc).astype(int)
        samples += [{"task": task, "id": f"{task}-{i}", "correct_strict": int(c), "correct_lenient": int(c),
                     "extracted_strict": "1"} for i, c in enumerate(right)]
        metrics[task] = {"n": N_Q, "strict": float(right.mean()), "lenient": float(right.mean())}
    out = tmp_path / "eval" / mid
    EvalResult(samples=samples, metrics=metrics).write(out)
    return EvalRecord(dirs=[str(out)], metrics=metrics)


def _registry(tmp_path, config=None) -> Registry:
    rng = np.random.default_rng(0)
    spec = {"compact": ([0, 1, 2], "main", "COMPACT (reference)", 0.70), "uniform": ([0, 1, 2], "baseline",
            "Uniform", 0.60), "single": ([0], "baseline", "Single", 0.50), "late": ([7, 8], "baseline", "Late", 0.65)}
    runs, evals = {}, {"base": _eval(tmp_path, "base", rng, 0.2)}
    for name, (seeds, group, label, acc) in spec.items():
        for s in seeds:
            mid = f"{name}-s{s}"
            runs[mid] = ModelRecord(name=name, seed=s, group=group, label=label, method=name, path=f"runs/{mid}")
            evals[mid] = _eval(tmp_path, mid, rng, acc + 0.04 * s * (name == "compact"))
    return Registry(profile="test", tasks=Tasks(ID, OOD), runs=runs, evals=evals, config=config or {})


def test_main_tables_are_seed_aware(tmp_path):
    from compact.publish.report import _samples, _seed_grid, main_tables

    reg = _registry(tmp_path)
    tables = main_tables(reg, n_bootstrap=200)
    rows = {r["name"]: r for r in tables["main_table"]}
    c = rows["compact"]
    assert c["seeds"] == 3 and c["seed_ids"] == [0, 1, 2] and len(c["id_per_seed"]) == 3
    assert c["id_per_seed_text"].startswith("s0 ") and c["ci_method"] == "seeds+questions, t"
    models = reg.models()
    samples = {mid: _samples(reg, mid) for mid in reg.evals}
    iv = seed_question_interval(_seed_grid(samples, models, ["compact-s0", "compact-s1", "compact-s2"], ID))
    assert (c["id_ci_low"], c["id_ci_high"]) == pytest.approx((iv.low, iv.high))
    assert c["id_boot_low"] < c["id_mean"] < c["id_boot_high"]
    assert rows["single"]["ci_method"] == "questions only (n_seeds=1)" and rows["base"]["seeds"] == 1

    cmp = {(r["split"], r["versus"]): r for r in tables["comparisons"]}
    assert {v for _, v in cmp} == {"Base student (no distillation)", "Uniform", "Single", "Late"}
    base = cmp[("ID", "Base student (no distillation)")]
    # the base student counts for every seed of COMPACT
    assert base["seeds"] == "0,1,2" and base["paired"] == "matched" and len(base["per_seed"]) == 3
    g = _seed_grid(samples, models, ["compact-s0", "compact-s1", "compact-s2"], ID)
    ref = paired_comparison(g, constant_grid(_seed_grid(samples, models, ["base"], ID)[0], g))
    assert base["compact_minus_other"] == pytest.approx(ref.estimate) and base["ci_low"] == pytest.approx(ref.low)
    assert base["verdict"] == "COMPACT better" and base["n_questions"] == 2 * N_Q
    single = cmp[("ID", "Single")]
    assert single["verdict"] == "no verdict (1 seed)" and single["seeds"] == "0" and math.isnan(single["ci_low"])
    assert single["dropped_seeds"] == "compact: 1,2"
    late = cmp[("OOD", "Late")]  # no seed in common with COMPACT: compared unpaired, and labelled so
    assert late["paired"] == "unpaired" and late["seeds"] == "compact: 0,1,2; late: 7,8" and late["per_seed"] == []
    for r in tables["comparisons"]:
        v = r["verdict"]
        assert v in ("COMPACT better", "COMPACT worse", "no verdict (1 seed)") or v.startswith(
            "not resolved (resolvable: ±"), v


def test_configured_comparisons_and_figures(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from compact.publish.report import main_tables, plot_comparisons, plot_main

    reg = _registry(tmp_path, {"comparisons": [{"a": "uniform", "b": "late", "unpaired": True},
                                               {"a": "uniform", "b": "compact", "unpaired": False}]})
    tables = main_tables(reg, n_bootstrap=100)
    rows = tables["comparisons"]
    assert [(r["split"], r["method"], r["versus"], r["paired"]) for r in rows] == [
        ("ID", "Uniform", "Late", "unpaired"), ("OOD", "Uniform", "Late", "unpaired"),
        ("ID", "Uniform", "COMPACT (reference)", "matched"), ("OOD", "Uniform", "COMPACT (reference)", "matched")]
    assert rows[2]["verdict"].startswith(("Uniform ", "not resolved"))
    for fig in (plot_main(tables["main_table"]), plot_comparisons(rows)):
        assert fig.axes
        plt.close(fig)
    bad = _registry(tmp_path, {"comparisons": [{"a": "uniform", "b": "ghost"}]})
    with pytest.raises(ConfigError, match="no evaluated run named 'ghost'"):
        main_tables(bad, n_bootstrap=10)


def test_make_plan_checks_the_comparisons_key_and_keeps_the_keys_while_it_is_empty():
    from compact.publish import plan as PLAN

    cfg = PLAN.load_pipeline("smoke")
    assert cfg.comparisons == []
    asked = PLAN.load_pipeline("smoke", ["comparisons=[{a: compact, b: single-r1}]"])
    assert asked.comparisons == [PLAN.ComparisonSpec("compact", "single-r1")]
    k0, k1 = PLAN.make_plan(cfg).keys, PLAN.make_plan(asked).keys
    assert k0["eval"] == k1["eval"] and k0["results"] != k1["results"]
    with pytest.raises(ConfigError, match=r"'ghost' is not a run, merge or 'base'") as exc:
        PLAN.check_comparisons(dataclasses.replace(cfg, comparisons=[PLAN.ComparisonSpec("compact", "ghost")]))
    assert "\n" not in str(exc.value)
    moved = [dataclasses.replace(r, seeds=[5]) if r.name == "single-r1" else r for r in cfg.runs]
    far = dataclasses.replace(cfg, runs=moved, comparisons=[PLAN.ComparisonSpec("compact", "single-r1")])
    with pytest.raises(ConfigError, match=r"compact \(seeds \[0, 1\]\) and single-r1 \(seeds \[5\]\) share no seed"):
        PLAN.make_plan(far)
    PLAN.check_comparisons(dataclasses.replace(far, comparisons=[PLAN.ComparisonSpec("compact", "single-r1", True)]))
    PLAN.check_comparisons(dataclasses.replace(far, comparisons=[PLAN.ComparisonSpec("base", "single-r1")]))
    # a merge's seeds are its members' common seeds: direct-avg (single-r1 at 5, single-qwen at 0) has none
    with pytest.raises(ConfigError, match="direct-avg"):
        PLAN.check_comparisons(dataclasses.replace(far, comparisons=[PLAN.ComparisonSpec("direct-avg", "compact")]))


def test_matched_id_tradeoff_reads_ood_where_each_seed_reaches_the_id_level():
    from compact.publish.report import matched_id_tradeoff

    rows = []
    for seed, (ids, oods) in enumerate([((0.1, 0.3, 0.5), (1.0, 0.8, 0.6)), ((0.1, 0.5, 0.7), (1.0, 0.7, 0.5))]):
        rows += [{"method": "A", "name": "a", "seed": seed, "step": 100 * i, "id_mean": x, "ood_mean": o}
                 for i, (x, o) in enumerate(zip(ids, oods))]
    out = matched_id_tradeoff(rows, levels=[0.2, 0.4, 0.6])
    by = {r["id_level"]: r for r in out}
    # seed 0 at ID 0.2: halfway from (0.1, 1.0) to (0.3, 0.8) -> 0.9; seed 1: a quarter of (0.1->0.5, 1.0->0.7) -> 0.925
    assert abs(by[0.2]["ood_mean"] - (0.9 + 0.925) / 2) < 1e-12 and by[0.2]["seeds"] == 2
    assert abs(by[0.4]["ood_min"] - 0.7) < 1e-12 and abs(by[0.4]["ood_max"] - 0.775) < 1e-12
    assert by[0.6]["seeds"] == 1  # seed 0 never reaches 0.6
    assert matched_id_tradeoff([{**r, "ood_mean": None} for r in rows]) == []
    # default levels: every 10 points up to the highest ID every curve reaches (a level the curves start at is
    # not crossed by training)
    assert [r["id_level"] for r in matched_id_tradeoff(rows)] == [0.2, 0.3, 0.4, 0.5]
