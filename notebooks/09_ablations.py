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
# # Ablations, metric validation and weight dynamics
#
# COMPACT fuses three scores per teacher and question,
#
# $$S_k = \beta_1\, z(M)_k + \beta_2\, z(C)_k - \beta_3\, z(L)_k, \qquad \alpha = \mathrm{softmax}(S/\tau),$$
#
# and adds a consistency term $\lambda \sum_{i<j}\alpha_i\alpha_j D_{ij}$. This notebook asks three questions
# of the trained grid:
#
# 1. **Ablations**: what happens when one score ($\beta_i = 0$) or the consistency term ($\lambda = 0$) is
#    removed, and what do our variants of the released implementation change?
# 2. **Metric validation**: does each score, and the fused weight $\alpha$, separate correct from incorrect
#    rationales? The simulated teachers label every rationale (final answer correct or not), a ground truth
#    real teachers do not provide. We report the ROC AUC (0.5 = chance) of each score, scored by the base
#    student on the dev split's rationales.
# 3. **Weight dynamics**: how does the mean $\alpha$ of each teacher move during training? Does a curriculum
#    appear?

# %% tags=["parameters"]
profile = "smoke"
results = "artifacts/smoke/results"
world_config = "configs/world/smoke.yaml"
generate_config = "configs/generate/smoke.yaml"

# %%
import pandas as pd
from IPython.display import display

from compact.paths import resolve
from compact.publish.results import figure, read_index, read_table

root = resolve(results)
index = read_index(root)["artifacts"]

# %% [markdown]
# ## Ablations and variants
#
# Rows: COMPACT in reference mode, COMPACT with our variants (MI proxy masked to assistant tokens and
# length-normalised, head-block GQA widening, answer-span consistency), and COMPACT without one of its parts.

# %%
abl = pd.DataFrame(read_table("main/ablations", root))
view = pd.DataFrame({
    "method": abl["method"], "seeds": abl["seeds"],
    "ID mean ± std": [f"{100 * m:.1f} ± {100 * s:.1f}" for m, s in zip(abl["id_mean"], abl["id_std"])],
    "ID 95% CI": [f"[{100 * lo:.1f}, {100 * hi:.1f}]" for lo, hi in zip(abl["id_ci_low"], abl["id_ci_high"])],
    "OOD mean": [f"{100 * m:.1f}" for m in abl["ood_mean"]],
})
view.style.hide(axis="index")

# %%
cmp = pd.DataFrame(read_table("main/comparisons", root))
cmp = cmp[cmp["group"].isin(["ablation", "variant"])]
for _, r in cmp.iterrows():
    print(f"{r['split']}: COMPACT minus {r['versus']}: {100 * r['compact_minus_other']:+.1f} points "
          f"[{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}] -> {r['verdict']}")

# %% [markdown]
# ## Do the scores find the wrong rationales?

# %%
if "tables/validation/metric_auc" in index:
    auc = pd.DataFrame(read_table("validation/metric_auc", root))
    display(auc.style.hide(axis="index").format(precision=3))
    by_teacher = pd.DataFrame(read_table("validation/metric_auc_by_teacher", root))
    display(by_teacher.style.hide(axis="index").format(precision=3))
else:
    auc = None
    print("no metric-validation table in these results")

# %% [markdown]
# Correlations between the scores (Spearman, across all scored rationales), and the MI proxy against the
# HSIC estimator of the dependence between token hidden states and the gold-answer representation:

# %%
if "tables/validation/score_corr_spearman" in index:
    display(pd.DataFrame(read_table("validation/score_corr_spearman", root)).style.hide(axis="index").format(precision=2))
if "tables/validation/mi_vs_hsic" in index:
    display(pd.DataFrame(read_table("validation/mi_vs_hsic", root)).style.hide(axis="index").format(precision=3))

# %% [markdown]
# ## Teacher weights over training

# %% tags=["hide-input"]
windows = pd.DataFrame(read_table("dynamics/alpha_windows", root)) if "tables/dynamics/alpha_windows" in index else None
if windows is not None:
    for method in windows["method"].unique():  # the figures the results stage drew from this table
        display(figure(f"dynamics/alpha_dynamics_{method}", root))
    trend = pd.DataFrame(read_table("dynamics/alpha_trend", root))
    # the page shows how each teacher's mean weight moved from the first to the last window (a teacher x
    # task table per method); every column, method and the rank correlation with the step are in
    # results/tables/dynamics/alpha_trend.csv
    for method, rows in trend.groupby("method", sort=False):
        change = rows.pivot_table(index="teacher", columns="task", values="alpha_change")
        display(change.style.format("{:+.3f}").set_caption(f"{method}: alpha, last window minus first"))

# %% [markdown]
# ## What we measured

# %%
if auc is not None:
    for _, r in auc.iterrows():
        word = "separates" if abs(r["auc"] - 0.5) >= 0.1 else "barely separates"
        print(f"{r['score']}: AUC {r['auc']:.3f} -> {word} correct from incorrect rationales "
              f"({'higher' if r['auc'] >= 0.5 else 'lower'} for correct ones)")
if windows is not None:
    for method, rows in trend.groupby("method", sort=False):
        top = rows.loc[rows["alpha_change"].abs().idxmax()]
        print(f"{method}: the largest move is {top['teacher']} on {top['task']}, alpha "
              f"{top['alpha_first_window']:.3f} -> {top['alpha_last_window']:.3f} "
              f"(Spearman with the step {top['spearman_step_alpha']:+.2f})")

# %% [markdown]
# ## Exercises
#
# 1. Set $\beta = (1, 1, 0)$ (`objective.beta`) and compare with the `no-difficulty` ablation: are they the
#    same run? (They should be: check the config hashes in `results/pipeline.json`.)
# 2. Lower the temperature $\tau$ to 0.25: $\alpha$ becomes nearly one-hot. What happens to accuracy and to the
#    spread of $\alpha$ in `log.jsonl`?
# 3. Which score has the highest AUC for the over-thinking teacher (`sim-qwq`)? Is it the same score that
#    matters most in the ablations?
# 4. Score the store with a distilled student instead of the base student (`compact score --set model=...`):
#    do the AUCs improve as the student learns?
