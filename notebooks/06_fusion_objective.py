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
# # Fusion into teacher weights, and the objective

# %% [markdown]
# Per question, the three scores of its $K$ branches are z-scored (unbiased std) and fused; a softmax turns
# the fused score into teacher weights:
#
# $$z(v)_k = \frac{v_k - \bar v}{\operatorname{std}(v) + 10^{-4}},\qquad
# S_k = \beta_1 z(M)_k + \beta_2 z(C)_k - \beta_3 z(L)_k,\qquad
# \alpha = \operatorname{softmax}(S/\tau),$$
#
# with $\beta = (1, 1, 0.5)$ and $\tau = 1$; $\alpha$ is detached. The objective weights each branch's loss by
# its $\alpha$ and adds a pairwise consistency term between the branches' predictive distributions:
#
# $$\mathcal L_{\text{total}} = \sum_k \alpha_k L_k + \lambda \sum_{i<j,\ \alpha_i\alpha_j \ge 10^{-4}}
# \alpha_i\alpha_j D_{ij},\qquad
# D_{ij} = \frac{\sum_t m_{ij,t}\,[\mathrm{KL}(p_{i,t}\|p_{j,t}) + \mathrm{KL}(p_{j,t}\|p_{i,t})]}
# {\max(1, \sum_t m_{ij,t})},$$
#
# $\lambda = 0.1$, $m_{ij} = \text{mask}_i \cdot \text{mask}_j$, $p_{k,t} = \operatorname{softmax}(z_{k,t})$.
# The gradient is $\sum_k \alpha_k \nabla L_k + \lambda \nabla(\text{consistency})$: the paper's "dynamic
# fusion of teacher gradients". Below: the fusion by hand, an $\alpha$ heat-map, how the variants of
# the [specification](../specification.md) change $\alpha$, and what the consistency term contributes.

# %% tags=["parameters"]
profile = "smoke"
results = "artifacts/smoke/results"
world_config = "configs/world/smoke.yaml"
generate_config = "configs/generate/smoke.yaml"
n_questions = 12  # dev questions scored (heat-map and variant table)
batch_questions = 12
max_length = 512
seed = 0

# %%
import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from compact.method.fusion import fuse
from compact.method.objective import ObjectiveConfig, compact_objective
from compact.workbench import open_workbench

wb = open_workbench(world_config, generate_config, seed=seed)  # world, store, base student (cached)
teachers, student = wb.teachers, wb.student()
torch.set_grad_enabled(False)  # scoring only; set after build_world, whose pretraining needs grad
dev = wb.instances()
# interleave the tasks so that a small n_questions still covers all three
dev = [x for trio in zip(*[[i for i in dev if i.source == t] for t in ("arith", "variation", "symbolic")])
       for x in trio] or dev
sub = dev[:n_questions]
batches = [wb.batch(sub[s:s + batch_questions], max_length=max_length) for s in range(0, len(sub), batch_questions)]


def score(cfg: ObjectiveConfig):
    """alpha, S and the raw scores of every branch of `sub`, plus the loss terms, under objective config cfg."""
    rows, terms = [], []
    cfg = dataclasses.replace(cfg, forward_buckets=1)  # one padded forward: every score, also those alpha ignores
    for s, batch in zip(range(0, len(sub), batch_questions), batches):
        out = compact_objective(student, batch, cfg)
        terms.append({"sft": float(out.loss_sft), "consistency": float(out.loss_consistency),
                      "total": float(out.loss), "pairs": out.n_pairs, "skipped": out.n_pairs_skipped})
        branches = [(inst, k) for inst in sub[s:s + batch_questions] for k in range(len(inst.teachers))]
        for (inst, k), a, f, m, c, d in zip(branches, out.alpha.tolist(), out.fused.tolist(), out.mi.tolist(),
                                            out.consensus.tolist(), out.difficulty.tolist()):
            rows.append({"id": inst.id, "teacher": inst.teachers[k], "alpha": a, "S": f, "M": m, "C": c, "L": d,
                         "correct": inst.labels[k]["final_correct"]})
    return pd.DataFrame(rows), pd.DataFrame(terms)


reference = ObjectiveConfig()  # the released implementation's semantics
ref, ref_terms = score(reference)
ref.head(8).round(3)

# %% [markdown]
# ## The fusion, by hand, for one question

# %%
q = ref[ref.id == sub[0].id]
z = lambda v: (v - v.mean()) / (v.std(ddof=1) + 1e-4)  # unbiased std, as the reference
S = 1.0 * z(q.M) + 1.0 * z(q.C) - 0.5 * z(q.L)
alpha = np.exp(S - S.max()) / np.exp(S - S.max()).sum()
print(pd.DataFrame({"teacher": q.teacher, "z(M)": z(q.M), "z(C)": z(q.C), "z(L)": z(q.L), "S": S,
                    "alpha (hand)": alpha, "alpha (package)": q.alpha}).set_index("teacher").round(3))
assert np.allclose(alpha, q.alpha, atol=1e-5)
s_pkg, a_pkg = fuse(torch.tensor(q.M.values), torch.tensor(q.C.values), torch.tensor(q.L.values),
                    torch.zeros(len(q), dtype=torch.long))
assert torch.allclose(a_pkg, torch.tensor(alpha.values, dtype=torch.float32), atol=1e-5)

# %% [markdown]
# ## Teacher weights across questions
#
# Rows: teachers; columns: dev questions; colour: $\alpha_k$ (uniform would be $1/K$ everywhere); a cross
# marks a rationale whose final answer is wrong.

# %% tags=["hide-input"]
heat = ref.pivot(index="teacher", columns="id", values="alpha").reindex(index=teachers,
                                                                          columns=[i.id for i in sub])
fig, ax = plt.subplots(figsize=(min(1 + 0.45 * len(sub), 16), 3.2))
im = ax.imshow(heat.values, aspect="auto", cmap="magma", vmin=0, vmax=max(0.5, float(heat.values.max())))
for j, inst in enumerate(sub):
    for k, lab in enumerate(inst.labels):
        if not lab["final_correct"]:
            ax.text(j, teachers.index(inst.teachers[k]), "x", ha="center", va="center", color="cyan", fontsize=12)
ax.set_yticks(range(len(teachers)), teachers)
ax.set_xticks(range(len(sub)), [i.id.replace("-dev-", "\n") for i in sub], fontsize=9)
ax.set_title(r"$\alpha$ per teacher and question (reference mode; x: wrong final answer)")
fig.colorbar(im, ax=ax, fraction=0.03)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Reference versus variants
#
# Each variant of the [specification](../specification.md) is one config switch. The table compares $\alpha$ with the reference's on the same
# questions: the mean absolute change, how often the top-weighted teacher changes, the mean weight given to
# wrong rationales, and the consistency term.

# %%
variants = {
    "reference": reference,
    "MI masked_mean": dataclasses.replace(reference, mi_variant="masked_mean"),
    "GQA head_block": dataclasses.replace(reference, gqa_widening="head_block"),
    "answer-span consistency": dataclasses.replace(reference, consistency="answer_span"),
    "no consensus": dataclasses.replace(reference, use_consensus=False),
    "uniform (alpha = 1/K)": dataclasses.replace(reference, weighting="uniform"),
}
table = []
for name, cfg in variants.items():
    df, terms = (ref, ref_terms) if name == "reference" else score(cfg)
    top_ref = ref.loc[ref.groupby("id").alpha.idxmax(), ["id", "teacher"]].set_index("id").teacher
    top = df.loc[df.groupby("id").alpha.idxmax(), ["id", "teacher"]].set_index("id").teacher
    table.append({"variant": name, "mean |alpha - alpha_ref|": float((df.alpha - ref.alpha).abs().mean()),
                  "top teacher changed": (float((top != top_ref.reindex(top.index)).mean())
                                          if cfg.weighting == "compact" else float("nan")),  # 1/K has no top
                  "mean alpha on wrong": float(df[~df.correct].alpha.mean()),
                  "mean alpha on correct": float(df[df.correct].alpha.mean()),
                  "consistency term": float(terms.consistency.mean()), "loss": float(terms.total.mean())})
variant_table = pd.DataFrame(table).set_index("variant")
variant_table.round(4)

# %% [markdown]
# ## The consistency term
#
# How much of the loss is consistency, and how its pair weights $\alpha_i\alpha_j$ are spread.

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
w_pairs = []
for _, g in ref.groupby("id"):
    a = g.alpha.values
    w_pairs += [a[i] * a[j] for i in range(len(a)) for j in range(i + 1, len(a))]
axes[0].hist(w_pairs, bins=30, color="C0")
axes[0].axvline(1 / len(teachers) ** 2, color="k", ls="--", lw=1, label="uniform: 1/K$^2$")
axes[0].set(xlabel=r"pair weight $\alpha_i\alpha_j$", ylabel="pairs", title="Pair weights (reference)")
axes[0].legend()
parts = variant_table[["consistency term"]].copy()
parts["lambda x consistency"] = 0.1 * parts["consistency term"]
parts["weighted CE"] = variant_table["loss"] - parts["lambda x consistency"]
parts[["weighted CE", "lambda x consistency"]].plot.barh(stacked=True, ax=axes[1], color=["C0", "C1"])
axes[1].set(xlabel="loss (mean over questions)", title="What the objective is made of")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## What we saw

# %%
vt = variant_table
print(f"Reference alpha ranges from {ref.alpha.min():.3f} to {ref.alpha.max():.3f} (uniform: {1 / len(teachers):.3f}).")
print(f"Mean alpha on wrong rationales {vt.loc['reference', 'mean alpha on wrong']:.3f} vs on correct ones "
      f"{vt.loc['reference', 'mean alpha on correct']:.3f} (reference).")
moved = vt["mean |alpha - alpha_ref|"].drop("reference")
print("Largest change of alpha from a single switch:", moved.idxmax(), f"({moved.max():.3f} on average; the top "
      f"teacher changes on {vt.loc[moved.idxmax(), 'top teacher changed']:.0%} of questions).")
share = 0.1 * vt.loc["reference", "consistency term"] / vt.loc["reference", "loss"]
print(f"The consistency term is {share:.1%} of the reference loss; with answer-span consistency it is "
      f"{0.1 * vt.loc['answer-span consistency', 'consistency term'] / vt.loc['answer-span consistency', 'loss']:.1%}.")

# %% [markdown]
# ## Exercises
#
# 1. Set $\tau = 0.5$ (`dataclasses.replace(reference, temperature=0.5)`) as another variant: how peaked does
#    $\alpha$ become?
# 2. Add `beta=(0.0, 0.0, 1.0)` as a variant: difficulty alone. Does it give more or less weight to wrong
#    rationales than the full fusion?
# 3. Set `n_questions = 60` (the whole smoke dev set; slower): are the table's numbers stable?
# 4. Why does the sequence consistency term compare different texts position by position? Look at
#    $D_{ij}$ for two branches of very different lengths and read [chapter 11](11_paper_vs_code.ipynb).
