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
# # Loss-based difficulty

# %% [markdown]
# The third score is the simplest: how surprising is rationale $k$ to the student? It is the mean token
# cross-entropy over the assistant tokens (shifted labels; the prompt and the padding are not labels):
#
# $$L_k = \frac{1}{|T_k|}\sum_{t \in T_k} -\log \operatorname{softmax}(z_{k,t-1})[x_{k,t}],\qquad
# T_k = \{t : s_k \le t \le e_k\},$$
#
# with $s_k$ the first assistant token and $e_k$ the last non-pad token. The same $L_k$ is branch $k$'s
# training loss; detached, it enters the fused score with a minus sign (a rationale the student finds hard
# gets less weight, [chapter 6](06_fusion_objective.ipynb)). Does "hard for the student" mean "wrong"?

# %% tags=["parameters"]
profile = "smoke"
results = "artifacts/smoke/results"
world_config = "configs/world/smoke.yaml"
generate_config = "configs/generate/smoke.yaml"
max_length = 512
batch_questions = 8
seed = 0

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from compact.analysis.validation import auc
from compact.method.difficulty import IGNORE_INDEX, branch_loss, shifted_labels
from compact.publish.figures import box_by_correctness
from compact.workbench import open_workbench

wb = open_workbench(world_config, generate_config, seed=seed)  # world, store, base student (cached)
teachers, tok = wb.teachers, wb.tokenizer
torch.set_grad_enabled(False)  # scoring only; set after build_world, whose pretraining needs grad
dev = wb.instances()

# %% [markdown]
# ## The labels, and the loss by hand

# %%
batch = wb.batch(dev[:1], max_length=max_length)  # one question's K branches
z = wb.forward(batch, hidden=False).logits  # (K, L, V)
y = shifted_labels(batch.input_ids, batch.attention_mask, batch.assistant_start)  # (K, L): y[:, t] = x[:, t+1]
k = 0
first = int((y[k] != IGNORE_INDEX).nonzero()[0])
print("prompt ends with:", repr(tok.decode(batch.input_ids[k, first - 4:first + 1])),
      "| first label:", repr(tok.decode([int(y[k, first])])), f"(predicted at position {first})")
ce = F.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1), ignore_index=IGNORE_INDEX,
                     reduction="none").view(y.shape)  # (K, L)
L_hand = ce.sum(1) / (y != IGNORE_INDEX).sum(1)  # (K,)
L_pkg = branch_loss(z, batch.input_ids, batch.attention_mask, batch.assistant_start)
assert torch.allclose(L_hand, L_pkg, atol=1e-5)
print("L_k =", {t: round(float(v), 3) for t, v in zip(dev[0].teachers, L_pkg)}, "(matches compact.method.difficulty.branch_loss)")

# %% [markdown]
# ## Which tokens are hard?
#
# Per-token cross-entropy along one branch: digits (the arithmetic itself) against the words around them.

# %% tags=["hide-input"]
valid = y[k] != IGNORE_INDEX
pos = valid.nonzero().squeeze(1)
toks = [tok.decode([int(y[k, p])]) for p in pos]
digit = np.array([t.strip().isdigit() for t in toks])
fig, ax = plt.subplots(figsize=(13, 3))
ax.bar(np.arange(len(pos)), ce[k, pos].numpy(), color=np.where(digit, "C3", "C0"), width=1.0)
ax.set(xlabel="assistant token", ylabel="cross-entropy (nats)",
       title=f"{dev[0].teachers[k]}: per-token loss (red: digits), L_k = {float(L_pkg[k]):.2f}")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Difficulty versus correctness, over the dev set

# %% tags=["hide-input"]
rows = []
for s in range(0, len(dev), batch_questions):
    chunk = dev[s:s + batch_questions]
    b = wb.batch(chunk, max_length=max_length)
    losses = branch_loss(wb.forward(b, hidden=False).logits, b.input_ids, b.attention_mask, b.assistant_start)
    n_tok = (shifted_labels(b.input_ids, b.attention_mask, b.assistant_start) != IGNORE_INDEX).sum(1)
    for (inst, kk), loss, n in zip([(i, kk) for i in chunk for kk in range(len(i.teachers))], losses.tolist(),
                                   n_tok.tolist()):
        rows.append({"id": inst.id, "teacher": inst.teachers[kk], "L": loss, "tokens": n,
                     "correct": inst.labels[kk]["final_correct"], "steps_correct": inst.labels[kk]["steps_correct"]})
df = pd.DataFrame(rows)
# within a question, what matters for alpha is the z-score: rank each branch against its own question
df["L z-score"] = df.groupby("id").L.transform(lambda v: (v - v.mean()) / (v.std() + 1e-4))
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
for ax, col in zip(axes[:2], ("L", "L z-score")):
    box_by_correctness(ax, df[col], df.correct, seed=seed, ylabel=col, title=f"{col} by correctness")
for i, t in enumerate(teachers):
    sub = df[df.teacher == t]
    axes[2].scatter(sub.tokens, sub.L, s=10, label=t, color=f"C{i}")
axes[2].set(xlabel="assistant tokens", ylabel="$L_k$", title="Difficulty is mostly style")
axes[2].legend(fontsize=9)
fig.tight_layout()
plt.show()
per_teacher = df.groupby("teacher")[["L", "tokens", "correct"]].mean().reindex(teachers).round(3)
per_teacher

# %% [markdown]
# ## What we saw

# %%
a_raw = auc((-df.L).tolist(), df.correct.tolist())  # -L: lower loss should mean correct
a_z = auc((-df["L z-score"]).tolist(), df.correct.tolist())
easiest, hardest = per_teacher.L.idxmin(), per_teacher.L.idxmax()
print(f"AUC of -L_k for 'correct' over {len(df)} dev branches ({int((~df.correct).sum())} wrong): {a_raw:.3f}; "
      f"of the within-question z-score: {a_z:.3f} (0.5 = chance).")
print(f"Easiest teacher for this student: {easiest} (mean L {per_teacher.loc[easiest, 'L']:.2f}); hardest: "
      f"{hardest} ({per_teacher.loc[hardest, 'L']:.2f}). The spread between teachers is "
      f"{per_teacher.L.max() - per_teacher.L.min():.2f} nats, against "
      f"{abs(df[df.correct].L.mean() - df[~df.correct].L.mean()):.3f} between correct and wrong rationales.")

# %% [markdown]
# ## Exercises
#
# 1. Set `world_config = "configs/world/default.yaml"` and `generate_config = "configs/generate/world.yaml"`: does a better-pretrained student find wrong arithmetic
#    more surprising (AUC further from 0.5)?
# 2. In the per-token plot, set `k = 3` (the over-thinker): where are its hard tokens?
# 3. Restrict the AUC to one teacher (`df[df.teacher == "sim-llama-instruct"]`): within one style, does
#    difficulty detect slips better?
# 4. Why does a minus sign in front of $\beta_3 z(L)$ make sense for a good rationale, and when would it
#    push away the most *informative* rationale?

# %% [markdown]
# ## Solutions
#
# Each solution runs with the notebook (on the smoke world in the tests, on the default world in the book);
# open a cell to see its code. Where an exercise asks for another world, the solution reads what the default
# profile published instead of building that world here.
#
# ### Exercise 1

# %% tags=["solution", "hide-input"]
from compact.paths import results_dir
from compact.publish.results import read_table

published = {r["score"]: r for r in read_table("validation/metric_auc", root=results_dir())}["difficulty"]
print(f"this notebook ({world_config}): AUC of -L_k = {a_raw:.3f} over {len(df)} branches")
print(f"default profile (results/tables/validation/metric_auc): AUC of -L_k = {published['auc_oriented']:.3f} "
      f"over {published['n_correct'] + published['n_incorrect']} dev branches "
      f"({published['n_incorrect']} wrong)")

# %% [markdown]
# ### Exercise 2

# %% tags=["solution", "hide-input"]
k3 = min(3, len(dev[0].teachers) - 1)
valid3 = y[k3] != IGNORE_INDEX
pos3 = valid3.nonzero().squeeze(1)
ce3 = ce[k3, pos3]
hard = ce3.topk(min(8, len(pos3))).indices
print(f"{dev[0].teachers[k3]}: {len(pos3)} assistant tokens, L_k = {float(L_pkg[k3]):.2f}; its 8 hardest tokens "
      "(position: token, nats):")
for i in sorted(hard.tolist()):
    print(f"  {i:4d}: {tok.decode([int(y[k3, pos3[i]])])!r:>12}  {float(ce3[i]):.2f}")
digits3 = np.array([tok.decode([int(y[k3, p])]).strip().isdigit() for p in pos3])
print(f"mean loss on digits {float(ce3[digits3].mean()):.2f} vs other tokens {float(ce3[~digits3].mean()):.2f} nats")

# %% [markdown]
# ### Exercise 3

# %% tags=["solution", "hide-input"]
within = []
for t in teachers:
    sub = df[df.teacher == t]
    if sub.correct.all() or not sub.correct.any():
        within.append({"teacher": t, "branches": len(sub), "wrong": int((~sub.correct).sum()), "AUC of -L_k": None})
        continue
    within.append({"teacher": t, "branches": len(sub), "wrong": int((~sub.correct).sum()),
                   "AUC of -L_k": round(auc((-sub.L).tolist(), sub.correct.tolist()), 3)})
print(f"all teachers pooled: {a_raw:.3f} (None: that teacher has no wrong or no right branch here)")
pd.DataFrame(within)

# %% [markdown]
# ### Exercise 4
#
# A rationale that is correct and written in a style the student already reads well has a low $L_k$: the
# minus sign gives it weight, so the student is trained on text it can absorb. The same sign pushes away the
# rationale that is hard *because it teaches something new* (a step the student cannot yet do): when the
# student is weak, the most informative branch is often the most surprising one. The cell shows how much of
# $\alpha$'s difficulty term, inside each question, goes to the branch with the highest loss.

# %% tags=["solution", "hide-input"]
top = df.loc[df.groupby("id")["L z-score"].idxmax()]
print(f"the hardest branch of each question is correct in {top.correct.mean():.0%} of {len(top)} questions "
      f"(all branches: {df.correct.mean():.0%}); teachers of the hardest branch: "
      f"{top.teacher.value_counts().to_dict()}")

