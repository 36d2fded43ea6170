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

# %%
def pct(x):
    return "" if pd.isna(x) else f"{100 * x:.1f}"


def table(df):
    tasks = [c for c in ("arith", "variation", "symbolic", "mcq", "yesno") if c in df]
    out = pd.DataFrame({"method": df["method"], "group": df["group"], "seeds": df["seeds"]})
    for t in tasks:
        out[t] = df[t].map(pct)
    for part in ("id", "ood"):
        out[f"{part.upper()} mean ± std"] = [f"{100 * m:.1f} ± {100 * s:.1f}" for m, s in zip(df[f"{part}_mean"], df[f"{part}_std"])]
        out[f"{part.upper()} 95% CI"] = [f"[{100 * lo:.1f}, {100 * hi:.1f}]" for lo, hi in zip(df[f"{part}_ci_low"], df[f"{part}_ci_high"])]
    return out


table(main).style.hide(axis="index")

# %% tags=["hide-input"]
figure("main/accuracy", root)  # the file the results stage wrote (results/figures/main)

# %% [markdown]
# ## Does COMPACT beat each baseline?
#
# For each other method, the difference in accuracy (COMPACT minus the other), paired by question: per
# question we average correctness over each method's seeds, take the difference, and bootstrap over
# questions. A verdict is only "better" or "worse" when the whole 95% interval lies on one side of zero.

# %%
cmp = comparisons.copy()
cmp["difference (points)"] = (100 * cmp["compact_minus_other"]).round(1)
cmp["95% CI"] = [f"[{100 * lo:.1f}, {100 * hi:.1f}]" for lo, hi in zip(cmp["ci_low"], cmp["ci_high"])]
cmp[["split", "versus", "n_questions", "difference (points)", "95% CI", "verdict"]].style.hide(axis="index")

# %% [markdown]
# ## What we measured
#
# The paragraph below is computed from the tables above, not written by hand.

# %%
ref = main[main["name"] == "compact"].iloc[0]
best_id = main.sort_values("id_mean", ascending=False).iloc[0]
id_cmp = comparisons[comparisons["split"] == "ID"]
wins = int((id_cmp["verdict"] == "COMPACT better").sum())
losses = int((id_cmp["verdict"] == "COMPACT worse").sum())
ties = len(id_cmp) - wins - losses
base = main[main["name"] == "base"].iloc[0]
print(f"COMPACT (reference) reaches {100 * ref['id_mean']:.1f}% ID accuracy (± {100 * ref['id_std']:.1f} over "
      f"{int(ref['seeds'])} seeds) and {100 * ref['ood_mean']:.1f}% OOD accuracy; the base student had "
      f"{100 * base['id_mean']:.1f}% ID and {100 * base['ood_mean']:.1f}% OOD.")
print(f"The best ID accuracy is {100 * best_id['id_mean']:.1f}% ({best_id['method']}).")
print(f"Against the {len(id_cmp)} other methods on ID questions, COMPACT is significantly better than {wins}, "
      f"significantly worse than {losses}, and indistinguishable from {ties}.")
for _, r in id_cmp.iterrows():
    print(f"  vs {r['versus']}: {100 * r['compact_minus_other']:+.1f} points "
          f"[{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}] -> {r['verdict']}")

# %% [markdown]
# ## Exercises
#
# 1. Re-run the pipeline with more seeds for the baselines (`configs/pipeline/default.yaml`, `seeds:`) and
#    watch the intervals of the comparisons shrink. Which verdicts change?
# 2. Compare strict and lenient accuracy: the table `main/main_table` also has `id_lenient`. Which methods
#    know the answer but fail to state it in the final line?
# 3. Make the teachers less reliable (`configs/generate/world.yaml`, the error rates of the simulated pool) and
#    re-run `make reproduce`. Does COMPACT's advantage over uniform SFT grow when more rationales are wrong?
# 4. Train longer (`optim.epochs` in `configs/train/compact.yaml`). Do the methods converge to the same
#    accuracy, or does the ranking persist?
