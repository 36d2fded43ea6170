# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python (compact)
#     language: python
#     name: compact
# ---

# %% [markdown]
# # The main table
#
# Every method of the grid, trained on the same rationale store and scored by the same evaluator: the base
# student, single-teacher SFT for each teacher, uniform multi-teacher SFT, MCC-KD
# style training (uniform weights plus answer-span consistency), the post-hoc merges "Direct Avg." and TIES,
# COMPACT in reference mode, and COMPACT with our variants. In-distribution (ID) tasks are the distillation
# targets (`arith`, `variation`, `symbolic`); out-of-distribution (OOD) tasks (`mcq`, `yesno`) hold knowledge
# the base student had before distillation and should keep.
#
# In-distribution accuracy is strict: the generation's final line must read `The answer is X.` with the right
# `X`. Out-of-distribution questions are scored by log-likelihood, as the base student was calibrated (the
# options of a multiple-choice question, the facts a yes/no question rests on; see *The instrument*), so a
# student that now answers everything with a rationale is scored on what it knows, not on its format. For every
# method we report the mean and standard deviation over its seeds, and a 95% bootstrap interval over
# questions of the seed-averaged accuracy,
#
# $$\mathrm{acc}_m = \frac{1}{n}\sum_{i=1}^{n} \frac{1}{|S_m|}\sum_{s\in S_m} [\hat a_{i}^{(m,s)} = a^*_i].$$
#
# This notebook only reads the tables the pipeline wrote (`compact pipeline`); it trains nothing.

# %% tags=["parameters"]
profile = "smoke"
results = "artifacts/smoke/results"
world_config = "configs/world/smoke.yaml"
generate_config = "configs/generate/smoke.yaml"

# %%
import pandas as pd

from compact.paths import resolve
from compact.publish.results import figure, read_table

root = resolve(results)
main = pd.DataFrame(read_table("main/main_table", root))
comparisons = pd.DataFrame(read_table("main/comparisons", root))
print(f"profile: {profile}; {len(main)} methods; results from {results}")

# %% [markdown]
# ## Accuracy of every method
#
# Percentages; `± std` over seeds; the interval columns bound the seed-averaged accuracy.

# %% tags=["hide-input"]
def pct(x):
    return "" if pd.isna(x) else f"{100 * x:.1f}"


def summary(df):
    """One row per method: seeds, then ID and OOD as mean ± std over seeds and the 95% interval."""
    out = pd.DataFrame({"method": df["method"], "seeds": df["seeds"]})
    for part in ("id", "ood"):
        out[f"{part.upper()} mean ± std"] = [f"{100 * m:.1f} ± {100 * s:.1f}" for m, s in zip(df[f"{part}_mean"], df[f"{part}_std"])]
        out[f"{part.upper()} 95% CI"] = [f"[{100 * lo:.1f}, {100 * hi:.1f}]" for lo, hi in zip(df[f"{part}_ci_low"], df[f"{part}_ci_high"])]
    return out


summary(main).style.hide(axis="index")

# %% [markdown]
# The same methods task by task (seed-averaged accuracy, %):

# %% tags=["hide-input"]
tasks = [c for c in ("arith", "variation", "symbolic", "mcq", "yesno") if c in main]
main[["method", *tasks]].assign(**{t: main[t].map(pct) for t in tasks}).style.hide(axis="index")

# %% tags=["hide-input"]
figure("main/accuracy", root)  # the file the results stage wrote (results/figures/main)

# %% [markdown]
# ## Does COMPACT beat each baseline?
#
# For each other method, the difference in accuracy (COMPACT minus the other), paired by question: per
# question we average correctness over each method's seeds, take the difference, and bootstrap over
# questions. A verdict is only "better" or "worse" when the whole 95% interval lies on one side of zero.

# %% tags=["hide-input"]
cmp = comparisons.copy()
cmp["questions"] = cmp["n_questions"]
cmp["difference (points)"] = [f"{100 * d:+.1f}" for d in cmp["compact_minus_other"]]
cmp["95% CI"] = [f"[{100 * lo:+.1f}, {100 * hi:+.1f}]" for lo, hi in zip(cmp["ci_low"], cmp["ci_high"])]
cmp[["split", "versus", "questions", "difference (points)", "95% CI", "verdict"]].style.hide(axis="index")

# %% [markdown]
# ## What we measured
#
# The paragraph below is computed from the tables above, not written by hand.

# %% tags=["hide-input"]
from IPython.display import Markdown

ref = main[main["name"] == "compact"].iloc[0]
best_id = main.sort_values("id_mean", ascending=False).iloc[0]
id_cmp = comparisons[comparisons["split"] == "ID"]
wins = int((id_cmp["verdict"] == "COMPACT better").sum())
losses = int((id_cmp["verdict"] == "COMPACT worse").sum())
ties = len(id_cmp) - wins - losses
base = main[main["name"] == "base"].iloc[0]
lines = [
    f"COMPACT (reference) reaches **{100 * ref['id_mean']:.1f}%** ID accuracy (± {100 * ref['id_std']:.1f} over "
    f"{int(ref['seeds'])} seeds) and {100 * ref['ood_mean']:.1f}% OOD accuracy; the base student had "
    f"{100 * base['id_mean']:.1f}% ID and {100 * base['ood_mean']:.1f}% OOD.",
    f"The best ID accuracy is **{100 * best_id['id_mean']:.1f}%** ({best_id['method']}).",
    f"Against the {len(id_cmp)} other methods on ID questions, COMPACT is significantly better than {wins}, "
    f"significantly worse than {losses}, and indistinguishable from {ties}:",
    "",
    *[f"- vs {r['versus']}: {100 * r['compact_minus_other']:+.1f} points "
      f"[{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}], {r['verdict']}" for _, r in id_cmp.iterrows()],
]
Markdown("\n".join(lines))

# %% [markdown]
# ## Exercises
#
# 1. Re-run the pipeline with more seeds for the baselines (`configs/pipeline/default.yaml`, `seeds:`) and
#    watch the intervals of the comparisons shrink. Which verdicts change?
# 2. Compare strict and lenient accuracy: the table `main/main_table` also has `id_lenient`. Which methods
#    know the answer but fail to state it in the final line?
# 3. Make the teachers less reliable (a copy of `configs/generate/world.yaml` with a `profile:` per teacher and a
#    higher `step_error_rate`; the pool's defaults are in `compact.teachers.simulated.DEFAULT_POOL`) and re-run
#    the pipeline on it (`compact pipeline --profile default --set generate=<your copy> --set results=<a new
#    folder>`). Does COMPACT's advantage over uniform SFT grow when more rationales are wrong?
# 4. Train longer (`optim.max_steps` in the `train_overrides` of `configs/pipeline/default.yaml`; it caps the
#    `optim.epochs` of `configs/train/*.yaml`). Do the methods converge to the same accuracy, or does the
#    ranking persist?

# %% [markdown]
# ## Solutions
#
# Each solution runs with the notebook (on the smoke profile in the tests, on the default profile in the book);
# open a cell to see its code. Where an exercise asks to re-run the pipeline or to train longer, the solution
# answers from what the profile already published (its seeds, its store, its learning curves) and says what
# only a re-run can add.
#
# ### Exercise 1
#
# More seeds cannot be simulated from the published runs, but the question can be asked the other way round:
# keep only the first seed of every method, recompute the comparisons with the same code as the results stage
# (`compact.publish.report.main_tables`), and see what the extra seeds the profile already has changed. A
# verdict that flips between one seed and all seeds is a verdict more seeds could still move; the methods
# trained with one seed only (single teachers, ablations, merges) are the first candidates. To add seeds, edit
# `seeds:` in `configs/pipeline/default.yaml` and run `compact pipeline --profile default`: the existing runs
# are reused (their keys do not change), only the new seeds train.

# %% tags=["solution", "hide-input"]
import dataclasses

from compact.publish.registry import read_registry
from compact.publish.report import main_tables

reg08 = read_registry(root)
models08 = reg08.models()
first08 = {mid for mid, m in models08.items()
           if m.seed == min(x.seed for x in models08.values() if x.name == m.name)}
one_seed08 = dataclasses.replace(
    reg08, runs={k: v for k, v in reg08.runs.items() if k in first08},
    merges={k: v for k, v in reg08.merges.items() if k in first08},
    evals={k: v for k, v in reg08.evals.items() if k in first08})
cols08 = ["split", "versus", "ci_low", "ci_high", "verdict"]
both08 = comparisons[cols08].merge(pd.DataFrame(main_tables(one_seed08)["comparisons"])[cols08],
                                   on=["split", "versus"], suffixes=("", " (1 seed)"))
both08["seeds"] = both08["versus"].map(dict(zip(main["method"], main["seeds"])))
both08["CI width"] = 100 * (both08["ci_high"] - both08["ci_low"])
both08["CI width (1 seed)"] = 100 * (both08["ci_high (1 seed)"] - both08["ci_low (1 seed)"])
n_ref08 = int(main.loc[main["name"] == "compact", "seeds"].iloc[0])
multi08 = both08[both08["seeds"] > 1]
print(f"COMPACT has {n_ref08} seed(s); {len(multi08) // max(both08['split'].nunique(), 1)} other method(s) have "
      f"more than one. Mean width of the 95% interval of the difference (points), all seeds vs first seed only:")
print(both08.groupby("split")[["CI width (1 seed)", "CI width"]].mean().round(1).to_string())
changed08 = both08[both08["verdict"] != both08["verdict (1 seed)"]]
print(f"\nverdicts that change between the first seed and all seeds: {len(changed08)} of {len(both08)}")
if len(changed08):
    print(changed08[["split", "versus", "seeds", "verdict (1 seed)", "verdict"]].head(10).to_string(index=False))

# %% [markdown]
# ### Exercise 2
#
# Lenient extraction first tries the strict final line, then falls back to the last number of the generation,
# so `lenient - strict` counts the answers that are right somewhere but not stated as `The answer is X.`. The
# cell also shows how often a method writes no final answer line at all, and one lenient-only hit of the
# method with the largest gap: a hit from a generation cut at the token limit (`stop = length`) is the last
# number the student happened to be writing, luck rather than knowledge.

# %% tags=["solution", "hide-input"]
from compact.eval.evaluate import EvalResult

id08 = list(reg08.tasks.id)
noans08 = {}
for mid08, m08 in models08.items():
    met08 = reg08.evals[mid08].metrics if mid08 in reg08.evals else {}
    vals08 = [met08[t]["no_answer"] for t in id08 if t in met08]
    if vals08:
        noans08.setdefault(m08.name, []).append(sum(vals08) / len(vals08))
gap08 = pd.DataFrame({"method": main["method"], "name": main["name"], "strict ID": main["id_mean"],
                      "lenient ID": main["id_lenient"], "gap": main["id_lenient"] - main["id_mean"],
                      "no final line": main["name"].map(lambda n: sum(noans08[n]) / len(noans08[n])
                                                         if n in noans08 else float("nan"))})
gap08 = gap08.sort_values("gap", ascending=False)
print(pd.DataFrame({"method": gap08["method"].str.slice(0, 40), "strict ID %": gap08["strict ID"].map(pct),
                    "lenient ID %": gap08["lenient ID"].map(pct),
                    "lenient - strict (points)": (100 * gap08["gap"]).round(1),
                    "no final answer line %": gap08["no final line"].map(pct)}).head(10).to_string(index=False))
top08 = gap08.iloc[0]
if top08["gap"] > 0:
    mid08 = min((mid for mid, m in models08.items() if m.name == top08["name"]), key=lambda mid: models08[mid].seed)
    hits08 = [s for d in reg08.evals[mid08].dirs for s in EvalResult.read(resolve(d)).samples
              if s["task"] in id08 and s["correct_lenient"] and not s["correct_strict"]]
    cut08 = sum(s.get("stop") == "length" for s in hits08)
    print(f"\n{top08['method']} (seed {models08[mid08].seed}): {len(hits08)} lenient-only hits, {cut08} of them "
          "cut at the token limit")
    if hits08:
        s08 = hits08[0]
        print(f"e.g. {s08['id']} (gold {s08['gold']}, stop: {s08.get('stop')}), the end of its generation:\n   "
              + repr(s08["generation"].strip()[-200:]))
else:
    print("\nno method gains anything from lenient extraction: every right answer is stated in the final line")

# %% [markdown]
# ### Exercise 3
#
# The published store has one level of teacher reliability, so the question "does the advantage grow?" needs
# a second store and a second grid. What this profile can answer: how unreliable each teacher is in the
# store the students were trained on, how much weight COMPACT gave each of them (the mean $\alpha$ over its
# training, from `dynamics/alpha_windows`), and where COMPACT stands between uniform SFT and the oracle that
# trains only on correct rationales. If the oracle is not ahead of uniform SFT here, wrong rationales cost
# little at this error level, and there is little for a weighting to recover. A less reliable pool is a
# generate config whose teachers carry a `profile:` (the cell ends with an example line), run with
# `compact pipeline --profile default --set generate=<that file> --set results=<another folder>`.

# %% tags=["solution", "hide-input"]
from compact.config import load
from compact.teachers.generate import GenerateConfig, make_teacher
from compact.teachers.store import RationaleStore

store08 = RationaleStore(resolve(reg08.store["path"]))
pool08 = {t.name: make_teacher(t).profile
          for t in load(GenerateConfig, resolve(reg08.config["generate"])).teachers if t.backend == "simulated"}
stored08 = store08.keys()  # the store's "<task>-<split>" keys
train_keys08 = [k for k in stored08 if k.endswith("-train")]
rel08 = []
for t, prof in pool08.items():
    st08 = [store08.manifest(k, t)["stats"] for k in train_keys08 if store08.has(k, t)]
    n08 = sum(x["n_rows"] for x in st08)
    rel08.append({"teacher": t, "style": prof.style, "step_error_rate": prof.step_error_rate,
                  "wrong": 1 - sum(x["accuracy"] * x["n_rows"] for x in st08) / n08 if n08 else float("nan"),
                  "wrong step": 1 - sum(x["steps_correct_rate"] * x["n_rows"] for x in st08) / n08 if n08 else float("nan")})
rel08 = pd.DataFrame(rel08)
if (root / "tables" / "dynamics" / "alpha_windows.json").is_file():
    aw08 = pd.DataFrame(read_table("dynamics/alpha_windows", root))
    aw08 = aw08[aw08["method"] == "compact"]
    rel08["alpha"] = rel08["teacher"].map((aw08["alpha_mean"] * aw08["n"]).groupby(aw08["teacher"]).sum()
                                          / aw08["n"].groupby(aw08["teacher"]).sum())
print(f"training rationales of the published store ({', '.join(train_keys08)}), per teacher:")
print(pd.DataFrame({"teacher": rel08["teacher"], "style": rel08["style"], "step_error_rate": rel08["step_error_rate"],
                    "wrong final answer %": rel08["wrong"].map(pct), "some wrong step %": rel08["wrong step"].map(pct),
                    **({"COMPACT's mean alpha": rel08["alpha"].round(3)} if "alpha" in rel08 else {})}).to_string(index=False))
if "alpha" in rel08 and rel08["alpha"].notna().any():
    heavy08 = rel08.loc[rel08["alpha"].idxmax()]
    print(f"COMPACT's largest mean weight goes to {heavy08['teacher']}, the teacher ranked "
          f"{int(rel08['wrong'].rank(ascending=False)[heavy08.name])} of {len(rel08)} by wrong final answers "
          "(1 = least reliable)")
by08 = main.set_index("name")
for other08 in ("uniform", "oracle"):
    if other08 in by08.index:
        for _, x in comparisons[(comparisons["split"] == "ID")
                                & (comparisons["versus"] == by08.loc[other08, "method"])].iterrows():
            print(f"ID: COMPACT minus {x['versus']}: {100 * x['compact_minus_other']:+.1f} points "
                  f"[{100 * x['ci_low']:+.1f}, {100 * x['ci_high']:+.1f}] -> {x['verdict']}")
if {"oracle", "uniform"} <= set(by08.index):
    print(f"oracle minus uniform (what dropping every wrong rationale is worth at this error level): "
          f"{100 * (by08.loc['oracle', 'id_mean'] - by08.loc['uniform', 'id_mean']):+.1f} points ID")
else:
    print("(no oracle run in this profile: what dropping the wrong rationales is worth is not measured here)")
if pool08:
    name08, prof08 = next(iter(pool08.items()))
    less08 = {k: v for k, v in dataclasses.asdict(prof08).items()} | {"step_error_rate": 3 * prof08.step_error_rate}
    print("\nthe same teacher with three times its step_error_rate, as a line of a copied generate config:\n  - {name: " + name08
          + ", backend: simulated, profile: {" + ", ".join(f"{k}: {v:g}" if isinstance(v, float) else f"{k}: {v}"
                                                          for k, v in less08.items()) + "}}")

# %% [markdown]
# ### Exercise 4
#
# The learning curves (`curves/learning_curves`, the curve subset of the test questions) score snapshots of a
# few runs up to the budget, so they show whether the methods were still climbing and whether their order was
# settled; beyond the budget they say nothing. To measure it, raise `optim.max_steps` in `train_overrides`
# and extend `curve_steps` in `configs/pipeline/default.yaml`, then `compact pipeline --profile default`
# (every run retrains: the budget is part of each run's key).

# %% tags=["solution", "hide-input"]
curves08 = pd.DataFrame(read_table("curves/learning_curves", root))
wide08 = curves08.pivot_table(index="step", columns="name", values="id_mean")
print("budget:", ", ".join(o for o in reg08.config.get("train_overrides", []) if "steps" in o or "epochs" in o),
      "| curve snapshots at steps", reg08.config.get("curve_steps"))
print("ID accuracy (%) on the curve subset, by optimizer step:")
print((100 * wide08).round(1).to_string())
rank08 = wide08.rank(axis=1, ascending=False, method="min").astype(int)
if len(wide08) > 2:
    s0_08, s1_08 = wide08.index[-2], wide08.index[-1]
    slope08 = 100 * (wide08.loc[s1_08] - wide08.loc[s0_08]) / (s1_08 - s0_08) * 100
    print(f"\nslope between steps {s0_08} and {s1_08} (points per 100 steps): "
          + ", ".join(f"{k} {v:+.1f}" for k, v in slope08.items()))
    same08 = (rank08.loc[s0_08] == rank08.loc[s1_08]).all()
    last08 = wide08.loc[s1_08].sort_values(ascending=False)
    order08 = last08.index[0] + "".join(f" {'=' if v == last08.iloc[i] else '>'} {k}"
                                        for i, (k, v) in enumerate(list(last08.items())[1:]))
    print(f"order at step {s1_08}: {order08} ({'the same' if same08 else 'not the same'} as at step {s0_08}); "
          "spread between best and worst: "
          f"{100 * (wide08.loc[s0_08].max() - wide08.loc[s0_08].min()):.1f} -> "
          f"{100 * (wide08.loc[s1_08].max() - wide08.loc[s1_08].min()):.1f} points")
