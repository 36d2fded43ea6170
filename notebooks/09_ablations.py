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
# 1. Set $\beta = (1, 1, 0)$ (`objective.beta`) and compare with the `no-difficulty` ablation: is it the same
#    objective, and is it the same run for the pipeline (the run keys in `results/pipeline.json`)?
# 2. Lower the temperature $\tau$ to 0.25: $\alpha$ becomes nearly one-hot. What happens to accuracy and to the
#    spread of $\alpha$ in `log.jsonl`?
# 3. Which score has the highest AUC for the over-thinking teacher (`sim-qwq`)? Is it the same score that
#    matters most in the ablations?
# 4. Score the store with a distilled student instead of the base student (`compact score --config
#    configs/score/world.yaml --set student=<run folder>`): do the AUCs improve as the student learns?

# %% [markdown]
# ## Solutions
#
# Each solution runs with the notebook (on the smoke profile in the tests, on the default profile in the book);
# open a cell to see its code. Where an exercise asks for another training run or another scoring pass, the
# solution answers from what the profile already published (the configs in its registry, the scores and
# weights every COMPACT run logged in `alpha.jsonl`, the labelled store) and says what only a new run adds.
#
# ### Exercise 1
#
# The same objective, but not the same run. With $\beta_3 = 0$ the difficulty term is multiplied by zero, and
# with `use_difficulty: false` it is left out: the fused score $S$, hence $\alpha$, is the same number, as
# the cell checks by fusing the scores a published COMPACT run logged both ways. The pipeline, though, names a
# run by its resolved config, and the two configs differ (even under the same run name), so their keys differ
# and the pipeline would train and publish both: identical models under two names.

# %% tags=["solution", "hide-input"]
import dataclasses

import numpy as np
import torch

from compact.config import config_hash, from_dict
from compact.method.fusion import fuse
from compact.publish.plan import PipelineConfig, RunSpec, train_config_for
from compact.publish.registry import read_registry
from compact.trainer.run import load_config as load_train_config

reg09 = read_registry(root)
pipe09 = from_dict(PipelineConfig, reg09.config)
specs09 = {s.name: s for s in pipe09.runs}
nodiff09 = specs09.get("no-difficulty") or RunSpec(name="no-difficulty", group="ablation",
                                                   config="configs/train/ablation_no_difficulty.yaml")
beta09 = dataclasses.replace(specs09["compact"], name=nodiff09.name,
                             overrides=[*specs09["compact"].overrides, "objective.beta=[1.0,1.0,0.0]"])
cfg_beta09, cfg_nodiff09 = (train_config_for(pipe09, s, 0) for s in (beta09, nodiff09))


def flat09(d, prefix=""):
    out = {}
    for k, v in d.items():
        out.update(flat09(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


fa09, fb09 = flat09(cfg_beta09.identity()), flat09(cfg_nodiff09.identity())
print("the two resolved training configs (seed 0, this profile's overrides, the same run name) differ in:")
for k in sorted(set(fa09) | set(fb09)):
    if fa09.get(k) != fb09.get(k):
        print(f"  {k}: {fa09.get(k)} with beta = (1, 1, 0), {fb09.get(k)} in no-difficulty")
print(f"config hashes: {config_hash(cfg_beta09.identity())} (beta = (1, 1, 0)) vs "
      f"{config_hash(cfg_nodiff09.identity())} (no-difficulty)")
if "no-difficulty-s0" in reg09.keys.get("runs", {}):
    print(f"run key of no-difficulty-s0 in {results}/pipeline.json: {reg09.keys['runs']['no-difficulty-s0']}")

run09 = min((m for m in reg09.runs.values() if m.name == "compact"), key=lambda m: m.seed)
rows09 = pd.read_json(resolve(run09.path) / "alpha.jsonl", lines=True)
group09 = torch.tensor(rows09.groupby(["step", "id"], sort=False).ngroup().to_numpy())
sc09 = [torch.tensor(rows09[k].to_numpy(), dtype=torch.float32) for k in ("mi", "consensus", "difficulty")]
obj09 = load_train_config(resolve(run09.path) / "config.yaml").objective
a_beta09 = fuse(*sc09, group09, beta=(obj09.beta[0], obj09.beta[1], 0.0), temperature=obj09.temperature)[1]
a_off09 = fuse(*sc09, group09, beta=obj09.beta, temperature=obj09.temperature, use_difficulty=False)[1]
a_ref09 = fuse(*sc09, group09, beta=obj09.beta, temperature=obj09.temperature)[1]
print(f"\nalpha from the {len(rows09)} branches {run09.name}-s{run09.seed} logged in alpha.jsonl:")
print(f"  max |alpha(beta = (1, 1, 0)) - alpha(use_difficulty = false)| = "
      f"{float((a_beta09 - a_off09).abs().max()):.1e}")
print(f"  (check: recomputed vs logged alpha of the run itself: max difference "
      f"{float((a_ref09.double() - torch.tensor(rows09['alpha'].to_numpy())).abs().max()):.1e})")

# %% [markdown]
# ### Exercise 2
#
# Accuracy at $\tau = 0.25$ needs a training run. What the published run can show is what the lower
# temperature does to the weights themselves: the cell re-fuses the raw scores that the COMPACT run logged per
# branch (`alpha.jsonl`) at $\tau = 0.25$ and compares them with the logged ones (the spread `log.jsonl`
# records per step and teacher is the same statistic). This is the first step of such a run only: trained at
# $\tau = 0.25$, the student, and with it the scores, would move differently. To train it, add
# `- {name: compact-tau025, config: configs/train/compact.yaml, overrides: [objective.temperature=0.25],
# group: variant}` to `runs:` in `configs/pipeline/default.yaml` and run `compact pipeline --profile default`.

# %% tags=["solution", "hide-input"]
tau09 = 0.25
a_tau09 = fuse(*sc09, group09, beta=obj09.beta, temperature=tau09, use_mi=obj09.use_mi,
               use_consensus=obj09.use_consensus, use_difficulty=obj09.use_difficulty)[1]
cols09 = [f"tau={obj09.temperature:g}", f"tau={tau09:g}"]
w09 = rows09[["step", "id", "teacher"]].assign(**{cols09[0]: rows09["alpha"], cols09[1]: a_tau09.numpy()})
k09 = int(rows09.groupby(["step", "id"]).size().max())
q09 = w09.groupby(["step", "id"])[cols09]
ent09 = (-w09[cols09].clip(lower=1e-12) * np.log(w09[cols09].clip(lower=1e-12))).groupby([w09["step"], w09["id"]]).sum()
print(f"{run09.name}-s{run09.seed}: {q09.ngroups} (step, question) groups of {k09} teachers")
print(pd.DataFrame({"mean max alpha per question": q09.max().mean(),
                    "share of questions with max alpha > 0.9": (q09.max() > 0.9).mean(),
                    "mean entropy / log K (1 = uniform)": (ent09 / np.log(k09)).mean()}).T.round(3).to_string())
log09 = pd.read_json(resolve(run09.path) / "log.jsonl", lines=True)
log_std09 = pd.DataFrame([{"teacher": t, "std": v["std"]} for a in log09.get("alpha", []) if isinstance(a, dict)
                          for t, v in a.items()])
print()
print(pd.DataFrame({
    f"mean alpha, {cols09[0]}": w09.groupby("teacher")[cols09[0]].mean(),
    f"mean alpha, {cols09[1]}": w09.groupby("teacher")[cols09[1]].mean(),
    f"alpha std per step, {cols09[0]} (log.jsonl)": (log_std09.groupby("teacher")["std"].mean() if len(log_std09)
                                                     else float("nan")),
    f"alpha std per step, {cols09[1]}": w09.groupby(["step", "teacher"])[cols09[1]].std(ddof=0).groupby("teacher").mean(),
}).round(3).to_string())

# %% [markdown]
# ### Exercise 3
#
# The table ranks the scores by how well they separate the over-thinking teacher's right and wrong dev
# rationales (`auc_oriented`: the AUC whichever way the score points; `auc` < 0.5 means the score is *lower*
# for correct rationales, as expected of the difficulty). The ablations say what each score is worth to
# training: COMPACT's accuracy minus the ablation's (positive: removing the part costs accuracy). A score can
# detect one teacher's slips well and still matter little in training, where all teachers and all questions
# count, and where a score also shapes which styles the student reads most.

# %% tags=["solution", "hide-input"]
by_t09 = pd.DataFrame(read_table("validation/metric_auc_by_teacher", root)) \
    if "tables/validation/metric_auc_by_teacher" in index else pd.DataFrame(columns=["teacher"])
qwq09 = by_t09[by_t09["teacher"] == "sim-qwq"].sort_values("auc_oriented", ascending=False)
abl09 = pd.DataFrame(read_table("main/ablations", root)).set_index("name")
drop09 = pd.DataFrame([{"ablation": n, "removes": n.removeprefix("no-"),
                        "ID cost (points)": 100 * (abl09.loc["compact", "id_mean"] - abl09.loc[n, "id_mean"]),
                        "OOD cost (points)": 100 * (abl09.loc["compact", "ood_mean"] - abl09.loc[n, "ood_mean"])}
                       for n in abl09.index if n.startswith("no-")])
if len(qwq09):
    print(f"sim-qwq, {int(qwq09['n_correct'].iloc[0])} correct and {int(qwq09['n_incorrect'].iloc[0])} wrong dev "
          "rationales scored by the base student:")
    print(qwq09[["score", "auc", "auc_oriented"]].round(3).to_string(index=False))
else:
    print("no per-teacher AUC for sim-qwq in these results")
if len(drop09):
    drop09 = drop09.sort_values("ID cost (points)", ascending=False)
    print("\nwhat removing each part costs COMPACT (its accuracy minus the ablation's):")
    print(drop09.round(1).to_string(index=False))
    scores09 = set(qwq09["score"]) & set(drop09["removes"])
    if len(qwq09) and scores09:
        best09 = qwq09[qwq09["score"].isin(scores09)].iloc[0]["score"]
        most09 = drop09.iloc[0]
        if most09["ID cost (points)"] > 0:
            print(f"\nbest detector of sim-qwq's slips among the ablated scores: {best09}; the ablation that costs most "
                  f"ID accuracy removes {most09['removes']} ({most09['ID cost (points)']:+.1f} points): "
                  f"{'the same' if best09 == most09['removes'] else 'not the same'}")
        else:
            print(f"\nbest detector of sim-qwq's slips among the ablated scores: {best09}; but removing no part costs "
                  "ID accuracy here, so the ablations do not single out a score")
else:
    print("no ablation runs in this profile")

# %% [markdown]
# ### Exercise 4
#
# Every COMPACT run already scores the store with a student that is learning: at each step, the branches of
# that step's questions are scored by the student as it is at that step, and `alpha.jsonl` keeps the scores.
# Joined with the store's labels (the simulated teachers' `final_correct`), they give the AUC of each score
# early, midway and late in training, next to the base student's AUC on the dev rationales (the published
# validation table; another set of questions, so a reference, not a paired comparison). A clean answer,
# the same rationales scored by the base student and by the final student, is
# `compact score --config configs/score/world.yaml --set student=<the run's folder> --set input.split=arith-dev`,
# then `compact analyze --set analysis=validation --set scores=<its output folder>`.

# %% tags=["solution", "hide-input"]
import compact.analysis.validation as val09
from compact.teachers.store import RationaleStore

store09 = RationaleStore(resolve(reg09.store["path"]))
stored09 = store09.keys()  # the store's "<task>-<split>" keys
keys09 = sorted(set(rows09["id"].str.rsplit("-", n=1).str[0]) & set(stored09))
lab09 = [store09.load(k, t).select_columns(["id", "teacher", "final_correct"]).to_pandas()
         for k in keys09 for t in store09.teachers(k)]
tr09 = rows09.merge(pd.concat(lab09).drop_duplicates(["id", "teacher"]), on=["id", "teacher"]) if lab09 else rows09[:0]
if len(tr09) == 0:
    print(f"no labelled rationales in the store for the questions {run09.name}-s{run09.seed} trained on")
else:
    tr09["window"] = pd.qcut(tr09["step"].rank(method="dense"), min(3, tr09["step"].nunique()), labels=False)
    auc09 = pd.DataFrame([{"steps": f"{part['step'].min()}-{part['step'].max()}", **row09}
                          for _, part in tr09.groupby("window")
                          for row09 in val09.score_auc_table(part, scores=("alpha", "mi", "consensus", "difficulty"))])
    view09 = auc09.pivot_table(index="score", columns="steps", values="auc_oriented", sort=False)
    view09.columns = [f"steps {c}" for c in view09.columns]
    if "tables/validation/metric_auc" in index:
        view09["base student, dev (published)"] = pd.DataFrame(
            read_table("validation/metric_auc", root)).set_index("score")["auc_oriented"]
    print(f"{run09.name}-s{run09.seed}: {len(tr09)} labelled training branches; AUC whichever way the score "
          "points (auc_oriented), by training window:")
    print(view09.round(3).to_string())
    print("\nbranches per window (correct / wrong): " + ", ".join(
        f"steps {g['steps'].iloc[0]}: {int(g['n_correct'].iloc[0])} / {int(g['n_incorrect'].iloc[0])}"
        for _, g in auc09.groupby("steps", sort=False)))
