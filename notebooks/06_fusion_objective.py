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

# %% [markdown]
# ## Solutions
#
# Each solution runs with the notebook (on the smoke world in the tests, on the default world in the book);
# open a cell to see its code. Exercises 1 and 2 score their variant with the notebook's own `score`, on the
# table's questions.
#
# ### Exercise 1

# %% tags=["solution", "hide-input"]
def alpha_columns(df, cfg, base=ref):
    """The variant table's weight columns: the scores `df` of `score(cfg)` against the reference scores `base`."""
    top_base = base.loc[base.groupby("id").alpha.idxmax()].set_index("id").teacher
    top = df.loc[df.groupby("id").alpha.idxmax()].set_index("id").teacher
    return {"mean |alpha - alpha_ref|": float((df.alpha - base.alpha).abs().mean()),
            "top teacher changed": (float((top != top_base.reindex(top.index)).mean())
                                    if cfg.weighting == "compact" else float("nan")),
            "mean alpha on wrong": float(df[~df.correct].alpha.mean()),
            "mean alpha on correct": float(df[df.correct].alpha.mean())}


def variant_row(name, cfg, df, terms, base=ref):
    """One row of the variant table (weight columns, consistency term, loss)."""
    return {"variant": name, **alpha_columns(df, cfg, base), "consistency term": float(terms.consistency.mean()),
            "loss": float(terms.total.mean())}


def peakedness(df):
    """Per question: the largest weight, and the entropy of alpha over log K (1 = uniform, 0 = one teacher)."""
    g = df.assign(h=-df.alpha * np.log(df.alpha)).groupby("id")
    top, ent = g.alpha.max(), g.h.sum() / np.log(g.size())
    return {"mean largest alpha": top.mean(), "questions with largest alpha > 0.5": (top > 0.5).mean(),
            "mean entropy / log K": ent.mean()}


tau_half = dataclasses.replace(reference, temperature=0.5)
tau_df, tau_terms = score(tau_half)
print(pd.DataFrame({"tau = 1 (reference)": peakedness(ref), "tau = 0.5": peakedness(tau_df)}).round(3), "\n")
squared = ref.alpha ** 2 / (ref.alpha ** 2).groupby(ref.id).transform("sum")  # softmax(2S) = alpha^2 renormalised
print(f"alpha at tau = 0.5 is the reference alpha squared and renormalised per question "
      f"(max difference {float((squared - tau_df.alpha).abs().max()):.1e}): the same ranking, a sharper split.")
pd.DataFrame([variant_row("reference", reference, ref, ref_terms),
              variant_row("tau = 0.5", tau_half, tau_df, tau_terms)]).set_index("variant").round(4)

# %% [markdown]
# ### Exercise 2

# %% tags=["solution", "hide-input"]
l_only = dataclasses.replace(reference, beta=(0.0, 0.0, 1.0))
l_df, l_terms = score(l_only)
l_table = pd.DataFrame([variant_row("reference (beta = 1, 1, 0.5)", reference, ref, ref_terms),
                        variant_row("difficulty alone (beta = 0, 0, 1)", l_only, l_df, l_terms)]).set_index("variant")
l_table.loc["uniform (alpha = 1/K)"] = variant_table.loc["uniform (alpha = 1/K)"]
print(l_table[["mean alpha on wrong", "mean alpha on correct", "top teacher changed"]].round(3), "\n")
wrong_ref, wrong_l = l_table["mean alpha on wrong"].iloc[:2]
if ref.correct.all():
    print("every scored rationale is correct here: there is no wrong rationale to weigh")
else:
    print(f"difficulty alone gives wrong rationales {'MORE' if wrong_l > wrong_ref else 'LESS'} weight than the "
          f"full fusion ({wrong_l:.3f} vs {wrong_ref:.3f} on average; uniform: {1 / len(teachers):.3f})")
print("mean alpha per teacher:")
pd.DataFrame({"reference": ref.groupby("teacher").alpha.mean(), "difficulty alone": l_df.groupby("teacher").alpha.mean(),
              "rationale correct": ref.groupby("teacher").correct.mean()}).reindex(teachers).round(3)

# %% [markdown]
# ### Exercise 3
#
# The weights and the three scores do not depend on the consistency term, so the cell compares the table's
# weight columns: one forward pass per block of `batch_questions` questions, every variant's $\alpha$ from it
# (`objective_from_outputs`, without the costly consistency term). The first block is the table's own
# questions; the spread over the blocks shows how much a table of that size moves from one set of questions to
# the next. (Answer-span consistency leaves $\alpha$ as the reference's, so it has no row here.)

# %% tags=["solution", "hide-input"]
from compact.method.objective import lm_head_weight, objective_from_outputs

sub60 = dev[:60]
weights60 = {name: [] for name, cfg in variants.items() if cfg.consistency == reference.consistency}
for start60 in range(0, len(sub60), batch_questions):
    block60 = sub60[start60:start60 + batch_questions]
    bt60 = wb.batch(block60, max_length=max_length)
    fw60 = wb.forward(bt60)  # one padded forward: the outputs compact_objective computes with forward_buckets=1
    rows_of60 = [(start60 // batch_questions, inst, k) for inst in block60 for k in range(len(inst.teachers))]
    for name in weights60:
        out60 = objective_from_outputs(fw60.logits, fw60.hidden, lm_head_weight(student), student, bt60,
                                       dataclasses.replace(variants[name], consistency="none"))
        weights60[name] += [{"block": i, "id": inst.id, "teacher": inst.teachers[k], "alpha": a,
                             "correct": inst.labels[k]["final_correct"]}
                            for (i, inst, k), a in zip(rows_of60, out60.alpha.tolist())]
weights60 = {name: pd.DataFrame(rows) for name, rows in weights60.items()}
base60 = weights60["reference"]
n_blocks = int(base60.block.max()) + 1
n_first = min(int((base60.block == 0).sum()), len(ref))  # branches of the first block that the table also scored
print(f"{len(sub60)} questions (this dev set has {len(dev)}) in {n_blocks} blocks; the table above used {len(sub)}; "
      f"the first block reproduces the table's alpha: "
      f"{np.allclose(base60.alpha.values[:n_first], ref.alpha.values[:n_first], atol=1e-5)}")
stable = {}
for name, df60 in weights60.items():
    whole = alpha_columns(df60, variants[name], base60)
    blocks = pd.DataFrame([alpha_columns(df60[df60.block == i], variants[name], base60[base60.block == i])
                           for i in range(n_blocks)])
    for col in ("mean |alpha - alpha_ref|", "top teacher changed", "mean alpha on wrong"):
        stable.setdefault((col, f"{len(sub)} q."), {})[name] = variant_table.loc[name, col]
        stable.setdefault((col, f"{len(sub60)} q."), {})[name] = whole[col]
        stable.setdefault((col, "blocks"), {})[name] = ("" if blocks[col].isna().all() else
                                                        f"{blocks[col].min():.2f}-{blocks[col].max():.2f}")
pd.DataFrame(stable).round(3)

# %% [markdown]
# ### Exercise 4
#
# Nothing in the method asks for it: it is what the released code computes, and reference mode keeps it. The
# code pads a question's branches to one width and takes the symmetric KL at every position where *both* rows
# hold a token. The prompt is the same text in every branch, so its positions compare like with like and
# give (almost) zero; after it, position $t$ of branch $i$ and position $t$ of branch $j$ predict the next token
# of two *different* rationales, so the term pulls together predictions made in different contexts. Where one
# branch is much shorter, only its length counts: the longer rationale's tail is never compared, and the
# prompt's zeros still sit in the denominator. [Chapter 11](11_paper_vs_code.ipynb) measures this and offers
# the answer-span variant, which compares the distributions that predict each branch's final answer instead.
# The cell takes the question of the table whose branches differ most in length, and its longest and
# shortest branches.

# %% tags=["solution", "hide-input"]
import torch.nn.functional as F

spans = []  # (longest / shortest rationale in tokens, question index, longest branch, shortest branch)
for s, bt in zip(range(0, len(sub), batch_questions), batches):
    n_rat = bt.attention_mask.sum(1) - bt.assistant_start  # rationale tokens per row
    for g in range(bt.n_questions):
        rows_g = (bt.group == g).nonzero().squeeze(1)
        names = [teachers[int(t)] for t in bt.teacher[rows_g]]
        hi, lo = int(n_rat[rows_g].argmax()), int(n_rat[rows_g].argmin())
        spans.append((float(n_rat[rows_g][hi] / n_rat[rows_g][lo]), s + g, names[hi], names[lo]))
_, q_index, t_long, t_short = max(spans)
q4 = sub[q_index]
i4, j4 = q4.teachers.index(t_long), q4.teachers.index(t_short)
pair = dataclasses.replace(q4, rationales=[q4.rationales[i4], q4.rationales[j4]], teachers=[q4.teachers[i4], q4.teachers[j4]],
                           labels=[q4.labels[i4], q4.labels[j4]])
pb = wb.batch([pair], max_length=max_length)
lp = torch.log_softmax(wb.forward(pb, hidden=False).logits.float(), dim=-1)  # (2, L, V)
sym = (F.kl_div(lp[1], lp[0], reduction="none", log_target=True).sum(-1)
       + F.kl_div(lp[0], lp[1], reduction="none", log_target=True).sum(-1))  # KL(p_i||p_j) + KL(p_j||p_i), (L,)
m = pb.attention_mask[0] * pb.attention_mask[1]
d_hand = float((m * sym).sum() / m.sum().clamp(min=1))
d_pkg = float(compact_objective(student, pb, ObjectiveConfig(weighting="uniform")).loss_consistency) / 0.25  # a = 1/2
start, ends = int(pb.assistant_start[0]), pb.attention_mask.sum(1).tolist()
prompt_kl = float((m * sym)[:start].sum())
print(f"{q4.id}: {pair.teachers[0]} row {ends[0]} tokens, {pair.teachers[1]} row {ends[1]} tokens "
      f"(prompt: {start} tokens, the same text in both)")
print(f"D_ij by hand {d_hand:.4f}, from compact_objective (uniform, alpha = 1/2 each) {d_pkg:.4f}")
print(f"positions in the denominator: {int(m.sum())}, of which {start} ({start / int(m.sum()):.0%}) are prompt; "
      f"the prompt gives {prompt_kl / float((m * sym).sum()):.1%} of the KL sum; the last {ends[0] - int(m.sum())} "
      f"tokens of the longer row are never compared")
fig, ax = plt.subplots(figsize=(11, 3))
ax.plot(range(len(sym)), torch.where(m.bool(), sym, float("nan")).numpy(), lw=1, color="C0",
        label="symmetric KL at position t (where both rows hold a token)")
ax.axvspan(0, start, color="C2", alpha=0.15, label="prompt (same text)")
ax.axvspan(min(ends), max(ends), color="C3", alpha=0.15, label="only the longer branch (mask 0)")
ax.set(xlabel="position t", ylabel="nats", title=f"{q4.id}: {pair.teachers[0]} vs {pair.teachers[1]}")
ax.legend(fontsize=9)
fig.tight_layout()
plt.show()
