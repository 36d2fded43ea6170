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
# # Graph-based consensus

# %% [markdown]
# The first compatibility score asks: *how much do the other teachers' rationales "agree" with rationale $k$,
# as the student sees them?* The $K$ branches of a question go through ONE student forward pass. Each branch
# is summarised by the final hidden state at its last non-pad position, $e_k = h[k, \text{last}_k]$, and
# projected with the student's **last decoder layer's** query and key projections (biases included, no RoPE,
# no head split):
#
# $$q_k = W_Q e_k + b_Q,\qquad \kappa_k = \operatorname{widen}(W_K e_k + b_K).$$
#
# With grouped-query attention $\kappa$ is narrower than $q$; the released code widens it with
# `repeat_interleave(n_heads // n_kv_heads, dim=-1)` (element by element). A soft $K \times K$ graph, its
# diagonal zeroed after the softmax (rows not renormalised), and each branch's weighted in-degree:
#
# $$A = \operatorname{softmax}_{\text{row}}\!\Big(\frac{Q \hat K^\top}{\sqrt{d_q}}\Big),\qquad
# A_{kk} \leftarrow 0,\qquad C_k = \sum_i A_{ik}.$$
#
# A rationale that many others attend to is "in consensus". The hope: wrong rationales lose in-degree. This
# chapter computes $A$ by hand next to the equation, checks it against `compact.method.consensus.consensus_scores`,
# draws the graph for real instances, and measures whether $C_k$ separates correct from wrong rationales.

# %% tags=["parameters"]
profile = "smoke"
results = "artifacts/smoke/results"
world_config = "configs/world/smoke.yaml"
generate_config = "configs/generate/smoke.yaml"
n_graphs = 3  # instances drawn as graphs
max_length = 512  # tokens per branch
batch_questions = 8  # questions per forward pass when scoring the dev set
seed = 0

# %%
import math

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pandas as pd
import torch

from compact.analysis.validation import auc
from compact.method.consensus import consensus_scores, find_attention_projections, widen_keys
from compact.method.difficulty import last_nonpad
from compact.publish.figures import box_by_correctness
from compact.workbench import open_workbench

wb = open_workbench(world_config, generate_config, seed=seed)  # world, store, base student (cached)
teachers, student = wb.teachers, wb.student()
torch.set_grad_enabled(False)  # scoring only; set after build_world, whose pretraining needs grad
dev = wb.instances()
print(f"{len(dev)} dev instances x {len(teachers)} teachers; student: {student.config.num_attention_heads} query "
      f"heads, {student.config.num_key_value_heads} key/value heads")

# %% [markdown]
# ## The soft graph, line by line
#
# One forward pass over one question's $K$ branches; then the equations above, in order.

# %%
mixed = [i for i in dev if len({lab["final_correct"] for lab in i.labels}) > 1]  # some right, some wrong
shown = (mixed + [i for i in dev if i not in mixed])[:n_graphs]
proj = find_attention_projections(student)  # the last decoder layer's q_proj / k_proj


def soft_graph(inst):
    """A (K, K) with zeroed diagonal, and C (K,), for one instance (the equations above)."""
    batch = wb.batch([inst], max_length=max_length)  # its K branches, right-padded
    h = wb.forward(batch).hidden  # (K, L, H), after the final norm
    e = h[torch.arange(len(h)), last_nonpad(batch.attention_mask)]  # (K, H): e_k = h[k, last_k]
    q = proj.q_proj(e)  # (K, d_q)
    k = widen_keys(proj.k_proj(e), proj.n_heads, proj.n_kv_heads, "element")  # (K, d_q), repeat_interleave
    A = torch.softmax(q @ k.T / math.sqrt(q.shape[-1]), dim=-1)  # (K, K), rows sum to 1
    A = A * (1 - torch.eye(len(A)))  # A_kk <- 0 after the softmax, rows not renormalised
    C = A.sum(dim=0)  # (K,) column sum: weighted in-degree
    ref = consensus_scores(e, proj.q_proj, proj.k_proj, proj.n_heads, proj.n_kv_heads, batch.group)
    assert torch.allclose(C, ref, atol=1e-6), "hand-computed C differs from compact.method.consensus"
    return A, C


A, C = soft_graph(shown[0])
print("A =\n", np.array2string(A.numpy(), precision=3))
print("C =", np.round(C.numpy(), 3), "(matches compact.method.consensus.consensus_scores)")
print("correct:", [lab["final_correct"] for lab in shown[0].labels])

# %% [markdown]
# ## The graph for real instances
#
# Edges $i \to j$ with width growing with $A_{ij}$ (how much branch $i$ attends to branch $j$), node size
# growing with $C_j$ (in-degree), green = the rationale's final answer is correct, red = wrong. A barely
# trained student attends almost uniformly ($A_{ij} \approx 1/K$), so widths and sizes are rescaled
# min-to-max within each graph to make the small differences visible; the titles give the raw $C$.

# %% tags=["hide-input"]
cols = min(2, len(shown))  # two graphs a row: node labels stay legible at the page's width
fig, axes = plt.subplots(-(-len(shown) // cols), cols, figsize=(4.2 * cols, 4.2 * -(-len(shown) // cols)),
                         squeeze=False)
for ax in axes.flat[len(shown):]:
    ax.set_visible(False)
for ax, inst in zip(axes.flat, shown):
    A, C = soft_graph(inst)
    g = nx.DiGraph()
    short = [t.replace("sim-", "") for t in inst.teachers]
    g.add_nodes_from(short)
    for i in range(len(short)):
        for j in range(len(short)):
            if i != j:
                g.add_edge(short[i], short[j], weight=float(A[i, j]))
    pos = nx.circular_layout(g)
    colors = ["tab:green" if lab["final_correct"] else "tab:red" for lab in inst.labels]
    rescale = lambda v, lo, hi: (v - lo) / (hi - lo + 1e-12)  # min-to-max within this graph
    off = A[~torch.eye(len(A), dtype=torch.bool)]
    sizes = [400 + 2200 * rescale(float(c), float(C.min()), float(C.max())) for c in C]
    widths = [0.5 + 6 * rescale(g[u][v]["weight"], float(off.min()), float(off.max())) for u, v in g.edges]
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color=colors, node_size=sizes, alpha=0.85)
    nx.draw_networkx_labels(g, pos, ax=ax, font_size=10)
    nx.draw_networkx_edges(g, pos, ax=ax, width=widths, arrowsize=12, connectionstyle="arc3,rad=0.12",
                           node_size=1500, alpha=0.6)
    ax.set_title(f"{inst.id}\nC = [" + ", ".join(f"{float(c):.3f}" for c in C) + "]", fontsize=9)
    ax.margins(0.25)
    ax.axis("off")
fig.suptitle("K-teacher soft graphs (green: correct answer, red: wrong; size: in-degree C)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Do wrong rationales lose in-degree?
#
# $C_k$ for every branch of every dev instance, scored in batches of several questions at once (the trainer
# batches the same way; `consensus_scores` keeps each softmax inside its own question), split by whether the
# branch's final answer is correct. The AUC is $P(C_{\text{correct}} > C_{\text{wrong}})$: 0.5 is chance. The
# same hidden states also give the head-block widening variant (chapter [11](11_paper_vs_code.ipynb)
# explains the difference).

# %%
rows = []
for s in range(0, len(dev), batch_questions):
    chunk = dev[s:s + batch_questions]
    batch = wb.batch(chunk, max_length=max_length)  # B questions x K branches = N rows
    h = wb.forward(batch).hidden  # (N, L, H)
    e = h[torch.arange(len(h)), last_nonpad(batch.attention_mask)]  # (N, H)
    labels = [lab["final_correct"] for inst in chunk for lab in inst.labels]
    names = [t for inst in chunk for t in inst.teachers]
    ids = [inst.id for inst in chunk for _ in inst.teachers]
    for widening in ("element", "head_block"):
        c = consensus_scores(e, proj.q_proj, proj.k_proj, proj.n_heads, proj.n_kv_heads, batch.group, widening)
        rows += [{"widening": widening, "id": i, "teacher": t, "consensus": v, "correct": y}
                 for v, y, t, i in zip(c.tolist(), labels, names, ids)]
scores = pd.DataFrame(rows)
ref = scores[scores.widening == "element"]
summary = pd.DataFrame([{
    "widening": w, "branches": len(sub), "wrong": int((~sub.correct).sum()),
    "mean C (correct)": sub[sub.correct].consensus.mean(), "mean C (wrong)": sub[~sub.correct].consensus.mean(),
    "AUC": auc(sub.consensus.tolist(), sub.correct.tolist())} for w, sub in scores.groupby("widening")])
summary.set_index("widening").round(3)

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
box_by_correctness(axes[0], ref.consensus, ref.correct, seed=seed, ylabel="consensus $C_k$",
                   title="In-degree by correctness (reference widening)")
by_teacher = ref.groupby("teacher").consensus.mean().reindex(teachers)
axes[1].bar([t.replace("sim-", "") for t in teachers], by_teacher.values, color="C0")
axes[1].axhline((len(teachers) - 1) / len(teachers), color="k", ls="--", lw=1)
axes[1].set(ylabel="mean $C_k$", title="Mean in-degree per teacher\n(dashed: uniform attention, (K-1)/K)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## What we saw

# %%
a_ref = summary.set_index("widening").loc["element", "AUC"]
a_hb = summary.set_index("widening").loc["head_block", "AUC"]
spread = ref.groupby("id").consensus.agg(lambda v: v.max() - v.min())
print(f"Over {len(ref)} dev branches ({int((~ref.correct).sum())} wrong), the AUC of C_k for 'correct' is "
      f"{a_ref:.3f} with the reference widening and {a_hb:.3f} with head-block widening.")
if abs(a_ref - 0.5) < 0.05:
    print("With this student, consensus does NOT separate correct from wrong rationales: wrong rationales do "
          "not lose in-degree (the AUC is at chance).")
elif a_ref > 0.5:
    print("Wrong rationales tend to receive less in-degree, as the method hopes.")
else:
    print("Wrong rationales tend to receive MORE in-degree than correct ones: the score points the wrong way "
          "for this student.")
print(f"Within a question C_k varies little: the median spread (max - min over the K branches) is "
      f"{spread.median():.3f}, against (K-1)/K = {(len(teachers) - 1) / len(teachers):.2f} for uniform attention.")
print("Per-teacher mean in-degree:", {t: round(v, 3) for t, v in by_teacher.items()},
      "-- the z-scoring of chapter 6 magnifies these small differences into weights.")

# %% [markdown]
# ## Exercises
#
# 1. Set `world_config = "configs/world/default.yaml"` and `generate_config = "configs/generate/world.yaml"` (a better-trained student) and rerun: does the AUC move
#    away from 0.5?
# 2. Replace the softmax temperature $\sqrt{d_q}$ by 1 inside `soft_graph` (only there): how peaked does $A$
#    get, and does the `assert` against the package now fail, as it should?
# 3. Draw `n_graphs = 6` instances: is the red node ever the largest?
# 4. Does one teacher's style (e.g. the concise `sim-qwen-instruct`) systematically attract more in-degree?
#    Compare the per-teacher bar chart with the teachers' accuracies in [chapter 2](02_teachers.ipynb).

# %% [markdown]
# ## Solutions
#
# Each solution runs with the notebook (on the smoke world in the tests, on the default world in the book);
# open a cell to see its code. Where an exercise asks for another world, the solution reads what the default
# profile published instead of building that world here.
#
# ### Exercise 1
#
# The default profile scores the dev rationales of every in-distribution task with the default world's base
# student and publishes the AUC of each score (`results/tables/validation/metric_auc`, with the package's
# reference widening); the cell sets its consensus row beside this notebook's. That run scores the first dev
# questions of each task (`validation_limit` of the pipeline) and this notebook all of them, so on the default
# world the two AUCs are close but not equal.

# %% tags=["solution", "hide-input"]
from compact.paths import results_dir
from compact.publish.results import read_table

published = {r["score"]: r for r in read_table("validation/metric_auc", root=results_dir())}["consensus"]
print(f"this notebook ({world_config}): AUC of C_k = {a_ref:.3f} (reference widening), {a_hb:.3f} (head-block) "
      f"over {len(ref)} branches ({int((~ref.correct).sum())} wrong)")
print(f"default profile (results/tables/validation/metric_auc): AUC of C_k = {published['auc']:.3f} over "
      f"{published['n_correct'] + published['n_incorrect']} dev branches ({published['n_incorrect']} wrong), "
      f"{abs(published['auc'] - 0.5):.3f} from chance")
by_teacher1 = [r for r in read_table("validation/metric_auc_by_teacher", root=results_dir())
               if r["score"] == "consensus" and r["teacher"] != "all"]
print("published, within each teacher:", {r["teacher"]: round(r["auc"], 3) for r in by_teacher1})

# %% [markdown]
# ### Exercise 2
#
# A copy of `soft_graph` with the temperature set to 1 (the notebook's function is left as it is). Without the
# $\sqrt{d_q}$ the logits are $\sqrt{d_q}$ times larger, so each row of $A$ is sharper (a larger largest entry,
# a lower entropy), and $C$ no longer matches `consensus_scores`: the `assert` fails, as it should.

# %% tags=["solution", "hide-input"]
def soft_graph_t1(inst):
    """``soft_graph`` with the softmax temperature sqrt(d_q) replaced by 1: A before and after, and C."""
    batch = wb.batch([inst], max_length=max_length)
    h = wb.forward(batch).hidden
    e = h[torch.arange(len(h)), last_nonpad(batch.attention_mask)]
    q = proj.q_proj(e)
    k = widen_keys(proj.k_proj(e), proj.n_heads, proj.n_kv_heads, "element")
    rows = {t: torch.softmax(q @ k.T / t, dim=-1) for t in (math.sqrt(q.shape[-1]), 1.0)}  # before A_kk <- 0
    A = rows[1.0] * (1 - torch.eye(len(q)))
    C = A.sum(dim=0)
    ref = consensus_scores(e, proj.q_proj, proj.k_proj, proj.n_heads, proj.n_kv_heads, batch.group)
    assert torch.allclose(C, ref, atol=1e-6), "hand-computed C differs from compact.method.consensus"
    return rows, C


def peakedness(P):
    return {"largest entry per row (mean)": float(P.max(dim=-1).values.mean()),
            "row entropy (mean, nats)": float(-(P * P.clamp(min=1e-30).log()).sum(-1).mean())}


try:
    soft_graph_t1(shown[0])
    print("the assert did NOT fail: C is the same at both temperatures here")
except AssertionError as err:
    print(f"AssertionError: {err}")
d_q = proj.q_proj.out_features
rows2 = {}
for inst2 in shown:
    b2 = wb.batch([inst2], max_length=max_length)
    e2 = wb.forward(b2).hidden[torch.arange(len(inst2.teachers)), last_nonpad(b2.attention_mask)]
    logits2 = proj.q_proj(e2) @ widen_keys(proj.k_proj(e2), proj.n_heads, proj.n_kv_heads, "element").T
    for name, t in ((f"sqrt(d_q) = {math.sqrt(d_q):.1f}", math.sqrt(d_q)), ("1", 1.0)):
        rows2.setdefault(name, []).append(peakedness(torch.softmax(logits2 / t, dim=-1)))
print(f"softmax rows of {len(shown)} instances (K = {len(teachers)}: uniform rows have largest entry "
      f"{1 / len(teachers):.2f} and entropy {math.log(len(teachers)):.2f} nats):")
pd.DataFrame({name: pd.DataFrame(v).mean() for name, v in rows2.items()}).T.rename_axis("temperature").round(3)

# %% [markdown]
# ### Exercise 3
#
# Rather than six drawings, the cell prints what they would show: for the first six instances in the order of
# the figure above (instances with both right and wrong branches first), each branch's $C_k$ and whether the
# largest node is red. Then the same question over every dev instance with a wrong branch, against the rate
# at which a node picked at random would be red.

# %% tags=["solution", "hide-input"]
shown6 = (mixed + [i for i in dev if i not in mixed])[:6]
rows3 = []
for inst3 in shown6:
    _, C3 = soft_graph(inst3)
    top = int(C3.argmax())
    rows3.append({"id": inst3.id, "C (red = wrong branch)": ", ".join(
        f"{float(c):.3f}" + ("(red)" if not lab["final_correct"] else "") for c, lab in zip(C3, inst3.labels)),
        "largest node": inst3.teachers[top].replace("sim-", ""),
        "largest is red": not inst3.labels[top]["final_correct"]})
print(pd.DataFrame(rows3).set_index("id").to_string())
with_wrong = ref.groupby("id").filter(lambda g: (~g.correct).any())
tops = with_wrong.loc[with_wrong.groupby("id").consensus.idxmax()]
print(f"\nover the {tops.id.nunique()} dev instances with a wrong branch: the largest node is red in "
      f"{(~tops.correct).mean():.0%} of them; a node picked at random would be red in "
      f"{(~with_wrong.correct).mean():.0%}")

# %% [markdown]
# ### Exercise 4
#
# The cell sets each teacher's mean in-degree beside its accuracy on the same dev branches (the accuracies of
# chapter 2), how often its branch is the largest node of its question, and its mean length, and asks, within
# each question, whether $C_k$ follows the branch's length (the style) more than its correctness.

# %% tags=["solution", "hide-input"]
from compact.analysis.validation import proxy_vs_estimator

ref4 = ref.assign(tokens=[len(tok_ids) for inst in dev for tok_ids in
                          wb.tokenizer(inst.rationales, add_special_tokens=False)["input_ids"]])
top4 = ref4.loc[ref4.groupby("id").consensus.idxmax(), "teacher"].value_counts(normalize=True)
per4 = pd.DataFrame({"accuracy": ref4.groupby("teacher").correct.mean(),
                     "mean C": ref4.groupby("teacher").consensus.mean(),
                     "largest node of its question": top4,
                     "mean tokens": ref4.groupby("teacher").tokens.mean()}).reindex(teachers).fillna(0)
print(per4.round(3).to_string())
rho_len = proxy_vs_estimator(ref4.consensus.tolist(), ref4.tokens.tolist(), ref4.id.tolist())
rho_ok = proxy_vs_estimator(ref4.consensus.tolist(), ref4.correct.astype(float).tolist(), ref4.id.tolist())
print(f"\nmost in-degree: {per4['mean C'].idxmax()}; most accurate: {per4['accuracy'].idxmax()}; longest: "
      f"{per4['mean tokens'].idxmax()}; shortest: {per4['mean tokens'].idxmin()}")
print(f"within questions, Spearman of C_k with branch length {rho_len['within_question_spearman']:.2f}, with "
      f"correctness {rho_ok['within_question_spearman']:.2f} (mean over questions)")
