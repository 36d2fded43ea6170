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
# # The paper versus the released code

# %% [markdown]
# The paper's body is not available to us; its authors released a training implementation, and our
# **reference mode** reproduces that implementation exactly (checked against a fixture of its numbers). Reading
# the code closely shows a few quirks: places where what it computes differs from what the description
# suggests. Each has a **variant** behind one config switch; the reference stays reproducible. For each quirk
# this chapter runs a small computation that shows what the variant changes.
#
# | quirk (reference) | variant (config switch) |
# |---|---|
# | MI proxy sums over prompt and padding, unnormalised | `objective.mi_variant: masked_mean` |
# | GQA keys widened element by element | `objective.gqa_widening: head_block` |
# | consistency compares different texts position by position, prompt in the denominator | `objective.consistency: answer_span` |
# | log-softmax recomputed for every pair | `objective.path: fast` (same numbers) |
# | with K = 2 every z-score is $\pm 0.707$ | (a property of the fusion; use K > 2) |
# | one question per micro-step | `optim.micro_batch_questions`: B questions per pass, alpha still per question |
#
# The MI proxy against a real estimator (HSIC) is in [chapter 4](04_adaptability.ipynb).

# %% tags=["parameters"]
profile = "smoke"
results = "artifacts/smoke/results"
world_config = "configs/world/smoke.yaml"
generate_config = "configs/generate/smoke.yaml"
extra_sentences = 8  # neutral sentences appended to one rationale in the MI demo
max_length = 512
seed = 0

# %%
import dataclasses
import time

import matplotlib.pyplot as plt
import pandas as pd
import torch

from compact.method.adaptability import OTHER_WEIGHT, THINKING_WEIGHT, mi_proxy
from compact.method.consensus import consensus_scores, find_attention_projections, widen_keys
from compact.method.difficulty import last_nonpad
from compact.method.fusion import fuse, zscore_per_group
from compact.method.objective import ObjectiveConfig, compact_objective, lm_head_weight
from compact.workbench import open_workbench

wb = open_workbench(world_config, generate_config, seed=seed)  # world, store, base student (cached)
teachers, student = wb.teachers, wb.student()
torch.set_grad_enabled(False)  # scoring only; set after build_world, whose pretraining needs grad
dev = wb.instances("arith-dev")
findings = {}

# %% [markdown]
# ## 1. The MI proxy counts padding and the prompt
#
# Reference: $M_k = \sum_{t=0}^{L_q-1} \mathrm{ReLU}(\Delta_{k,t}) w_{k,t}$ over the whole padded row, where the
# released code pads a question's $K$ branches to the longest of them ($L_q$). A branch's score then depends on
# how long the *other* teachers' rationales are (their length becomes its padding), and on its prompt. (Our
# batched implementation keeps exactly this per-question width, so other questions in the batch change
# nothing: section 6.) The `masked_mean` variant sums over the assistant tokens $s_k \le t \le e_k$ and
# divides by their number:
#
# $$M_k^{\text{masked}} = \frac{1}{e_k - s_k + 1}\sum_{t=s_k}^{e_k} \mathrm{ReLU}(\Delta_{k,t})\, w_{k,t}.$$
#
# We lengthen ONE teacher's rationale by `extra_sentences` neutral sentences, which pads the other branches
# further, and compare the other branches' scores; then we measure how much of the reference $M_k$ comes from
# positions outside the rationale.

# %%
W_U = lm_head_weight(student).detach()
inst = dev[0]
k_long = max(range(len(inst.rationales)), key=lambda k: len(inst.rationales[k]))
grown = dataclasses.replace(inst, rationales=[r + " We are done." * extra_sentences if k == k_long else r
                                              for k, r in enumerate(inst.rationales)])
rows = []
for name, x in (("as generated", inst), (f"{inst.teachers[k_long]} longer", grown)):
    b = wb.batch([x], max_length=max_length)
    h = wb.forward(b).hidden
    args = (h, W_U, b.gold_ids, b.gold_mask, b.group, b.input_ids, b.attention_mask, b.assistant_start, b.thinking_ids)
    for v in ("reference", "masked_mean"):
        rows += [{"batch": name, "variant": v, "teacher": t, "M": float(m)}
                 for k, (t, m) in enumerate(zip(x.teachers, mi_proxy(*args, v))) if k != k_long]  # the OTHER branches
    print(f"{name}: padded width {b.input_ids.shape[1]} tokens")
mi = pd.DataFrame(rows).pivot_table(index=["variant", "teacher"], columns="batch", values="M")
mi["change"] = mi.iloc[:, 0] - mi.iloc[:, 1]
findings["MI: max change from padding (reference)"] = float(mi.loc["reference", "change"].abs().max())
findings["MI: max change from padding (masked_mean)"] = float(mi.loc["masked_mean", "change"].abs().max())
# where the reference M comes from: the share of sum_t ReLU(Delta_t) w_t outside the assistant tokens
b = wb.batch(dev[:1], max_length=max_length)
h = wb.forward(b).hidden
gold = b.gold_ids[0][b.gold_mask[0]]
g = (h.float() @ W_U[gold].T).mean(-1)  # (K, L)
w = torch.where(torch.isin(b.input_ids, b.thinking_ids), THINKING_WEIGHT, OTHER_WEIGHT)  # (K, L): w_t
jump = torch.relu(torch.diff(g, dim=1, prepend=g[:, :1])) * w  # ReLU(Delta_t) w_t, Delta_0 = 0
pos = torch.arange(g.shape[1]).expand_as(g)
inside = (pos >= b.assistant_start[:, None]) & (pos <= last_nonpad(b.attention_mask)[:, None])
outside_share = (jump * ~inside).sum(1) / jump.sum(1)  # (K,)
findings["MI: mean share of reference M from prompt and padding"] = float(outside_share.mean())
share = dict(zip(dev[0].teachers, outside_share.tolist()))
mi["share of reference M outside the rationale"] = [share[t] if v == "reference" else float("nan") for v, t in mi.index]
mi.round(4)

# %% [markdown]
# ### The attention backend moves reference MI
#
# The released trainer loads the student with flash-attention 2, which drops pad tokens and returns zeros
# at their positions; transformers' default (sdpa, and eager) lets a pad query attend to the real tokens
# before it. Real tokens' hidden states are identical under both (right padding: no real token attends to a
# pad), so the loss, consensus and masked MI do not change, but reference MI sums ReLU jumps over the
# padded row and does. `model.attn_implementation: auto` (the paper config) picks flash-attention on a GPU
# that has it; `compact.method.adaptability.zero_pad_attention` reproduces its pad semantics on any device, as here.

# %%
import contextlib

from compact.method.adaptability import zero_pad_attention

b = wb.batch(dev[:4], max_length=max_length)
args = (W_U, b.gold_ids, b.gold_mask, b.group, b.input_ids, b.attention_mask, b.assistant_start, b.thinking_ids)
backend_rows = {}
for backend in ("sdpa", "flash-attention 2"):
    with zero_pad_attention(student, b.attention_mask) if backend != "sdpa" else contextlib.nullcontext():
        h = wb.forward(b).hidden
    for v in ("reference", "masked_mean"):
        backend_rows[backend, v] = mi_proxy(h, *args, v)
backend_mi = pd.DataFrame({f"{v}, {bk}": m.tolist() for (bk, v), m in backend_rows.items()})
backend_mi.insert(0, "teacher", [teachers[int(t)] for t in b.teacher])
findings["MI: max change sdpa -> flash pad semantics (reference)"] = float(
    (backend_rows["sdpa", "reference"] - backend_rows["flash-attention 2", "reference"]).abs().max())
findings["MI: max change sdpa -> flash pad semantics (masked_mean)"] = float(
    (backend_rows["sdpa", "masked_mean"] - backend_rows["flash-attention 2", "masked_mean"]).abs().max())
backend_mi.round(4)

# %% [markdown]
# ## 2. Grouped-query keys widened element by element
#
# The student has fewer key/value heads than query heads. Attention pairs query head $h$ with key head
# $\lfloor h / r \rfloor$, $r = n_{\text{heads}} / n_{\text{kv}}$ (HF `repeat_kv`: whole head blocks). The
# released consensus widens the key vector with `repeat_interleave(r, dim=-1)`: each *element* is repeated, so
# the widened key no longer lines up with the query heads. On a toy key with 2 heads of 3 dimensions ($r=2$):

# %%
k_toy = torch.tensor([[1.0, 2.0, 3.0, 10.0, 20.0, 30.0]])  # kv head 0 = (1,2,3), kv head 1 = (10,20,30)
print("element   :", widen_keys(k_toy, 4, 2, "element").int().tolist()[0])
print("head_block:", widen_keys(k_toy, 4, 2, "head_block").int().tolist()[0])
print("with n_heads == n_kv_heads both are the identity:",
      torch.equal(widen_keys(k_toy, 2, 2, "element"), widen_keys(k_toy, 2, 2, "head_block")))

# %% [markdown]
# On the student, the two widenings give different consensus scores, hence different weights:

# %% tags=["hide-input"]
b = wb.batch(dev[:8], max_length=max_length)
h = wb.forward(b).hidden
e = h[torch.arange(len(h)), last_nonpad(b.attention_mask)]  # (N, H)
proj = find_attention_projections(student)
c_el = consensus_scores(e, proj.q_proj, proj.k_proj, proj.n_heads, proj.n_kv_heads, b.group, "element")
c_hb = consensus_scores(e, proj.q_proj, proj.k_proj, proj.n_heads, proj.n_kv_heads, b.group, "head_block")
rank_el = torch.stack([c_el[b.group == g].argsort().argsort() for g in range(b.n_questions)])
rank_hb = torch.stack([c_hb[b.group == g].argsort().argsort() for g in range(b.n_questions)])
findings["GQA: share of questions whose consensus ranking changes"] = float((rank_el != rank_hb).any(1).float().mean())
fig, ax = plt.subplots(figsize=(4.5, 4))
ax.scatter(c_el, c_hb, s=14)
ax.set(xlabel="$C_k$, element widening (reference)", ylabel="$C_k$, head-block widening",
       title="Consensus under the two widenings")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 3. Consistency position by position, prompt in the denominator
#
# The reference $D_{ij}$ averages the symmetric KL over every position where both rows are non-pad. The
# prompt is the same text in every branch, so its positions contribute (almost) nothing to the numerator
# but count in the denominator; the rationale positions compare *different* texts token by token. A longer
# question dilutes $D_{ij}$ by its extra zero-KL positions, while the longer context also changes the
# rationale positions' distributions; which effect wins is measured below, not assumed. The answer-span variant (MCC-KD)
# compares only the distributions that predict each branch's final-answer tokens, aligned by answer-token
# index, $\tfrac12$ per direction. We lengthen the question with an irrelevant sentence and compare.

# %%
inst = dev[0]
longer = dataclasses.replace(inst, question=inst.question + " The weather was nice that day." * 3)
rows = []
for name, x in (("original question", inst), ("question + filler", longer)):
    bx = wb.batch([x], max_length=max_length)
    for mode in ("sequence", "answer_span"):
        out = compact_objective(student, bx, ObjectiveConfig(consistency=mode, weighting="uniform"))
        rows.append({"question": name, "consistency": mode, "prompt tokens": int(bx.assistant_start[0]),
                     "consistency term": float(out.loss_consistency)})
cons = pd.DataFrame(rows).pivot_table(index="consistency", columns="question", values="consistency term")
cons["ratio"] = cons["question + filler"] / cons["original question"]
findings["consistency: sequence term ratio after lengthening the prompt"] = float(cons.loc["sequence", "ratio"])
findings["consistency: answer-span term ratio"] = float(cons.loc["answer_span", "ratio"])
print("prompt tokens:", sorted({r["prompt tokens"] for r in rows}))
cons.round(5)

# %% [markdown]
# ## 4. log-softmax recomputed for every pair
#
# The released loop computes `log_softmax` of both branches inside the pair loop: $K(K-1)/2$ pairs, each
# materialising $2 \times L \times V$ log-probabilities. `path: fast` computes them once per branch and chunk,
# vectorised over questions and pairs, with an analytic backward. Same numbers:

# %%
b = wb.batch(dev[:2], max_length=max_length)
times, outs = {}, {}
with torch.enable_grad():
    for path in ("reference", "fast"):
        student.zero_grad()
        t0 = time.perf_counter()
        out = compact_objective(student, b, ObjectiveConfig(path=path))
        out.loss.backward()
        times[path] = time.perf_counter() - t0
        outs[path] = (out.loss.detach(), out.alpha, torch.cat([p.grad.flatten() for p in student.parameters()]))
student.zero_grad()
same_loss = torch.allclose(outs["reference"][0], outs["fast"][0], rtol=1e-4)
same_alpha = torch.allclose(outs["reference"][1], outs["fast"][1], atol=1e-5)
grad_err = float((outs["reference"][2] - outs["fast"][2]).abs().max() / outs["reference"][2].abs().max())
n, L = b.input_ids.shape
V = student.config.vocab_size
pairs = sum(k * (k - 1) // 2 for k in torch.bincount(b.group).tolist())
findings["fast path: max relative gradient difference"] = grad_err
pd.DataFrame({"loss": [float(outs[p][0]) for p in times], "forward+backward s": [times[p] for p in times]},
             index=list(times)).assign(
    same_loss=same_loss, same_alpha=same_alpha,
    **{"log-prob floats per step": [2 * pairs * L * V, n * L * V]}).round(5)

# %% [markdown]
# ## 5. With K = 2 every z-score is $\pm 0.707$
#
# For two values, $z = \pm \frac{|v_1 - v_2|/2}{|v_1 - v_2|/\sqrt2} = \pm\frac{1}{\sqrt 2}$ whatever their gap
# (up to the $10^{-4}$ in the denominator, which matters only when the two values are
# closer than about $10^{-3}$, as the consensus scores of [chapter 3](03_consensus.ipynb) can be). Each of the three scores then contributes only *which branch wins*, and
# $S_k \in \{\pm 0.707 \cdot (\pm\beta_1 \pm \beta_2 \pm \beta_3)\}$: $\alpha$ takes at most 8 values.

# %% tags=["hide-input"]
gen = torch.Generator().manual_seed(seed)
n_q = 2000
raw = {s: torch.randn(2 * n_q, generator=gen) * scale for s, scale in (("M", 5.0), ("C", 0.5), ("L", 1.0))}
group = torch.arange(n_q).repeat_interleave(2)
z_m = zscore_per_group(raw["M"], group)
_, a2 = fuse(raw["M"], raw["C"], raw["L"], group)
group4 = torch.arange(n_q // 2).repeat_interleave(4)
_, a4 = fuse(raw["M"], raw["C"], raw["L"], group4)
findings["K=2: distinct |z| values (3 decimals)"] = len(torch.unique(z_m.abs().round(decimals=3)))
findings["K=2: distinct alpha values (3 decimals)"] = len(torch.unique(a2.round(decimals=3)))
findings["K=4: distinct alpha values (3 decimals)"] = len(torch.unique(a4.round(decimals=3)))
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
axes[0].hist(a2.numpy(), bins=100, color="C3")
axes[0].set(title=f"K = 2: alpha over {n_q} random questions", xlabel=r"$\alpha$")
axes[1].hist(a4.numpy(), bins=100, color="C0")
axes[1].set(title=f"K = 4: alpha over {n_q // 2} random questions", xlabel=r"$\alpha$")
fig.tight_layout()
plt.show()
print("distinct |z| with K = 2 (3 decimals):", torch.unique(z_m.abs().round(decimals=3)).tolist())

# %% [markdown]
# ## 6. One question per micro-step
#
# The released loop feeds one question (its K branches) per forward pass. We batch B questions; $\alpha$ is
# still computed per question (the z-scores and the softmax never mix questions), and the summed loss is
# invariant to how a batch is split. Scoring 8 questions in one pass, in 4 micro-batches and one by one:

# %%
b = wb.batch(dev[:8], max_length=max_length)
full = compact_objective(student, b, ObjectiveConfig())
rows = []
for n_micro in (1, 4, 8):
    parts = [compact_objective(student, mb, ObjectiveConfig()) for mb in b.split(n_micro)]
    alpha = torch.cat([p.alpha for p in parts])
    rows.append({"micro-batches": n_micro, "questions per pass": 8 // n_micro,
                 "max |alpha - alpha_full|": float((alpha - full.alpha).abs().max()),
                 "sum of losses": float(sum(p.loss_sum for p in parts))})
split = pd.DataFrame(rows).set_index("micro-batches")
findings["batching: max alpha difference across splits"] = float(split["max |alpha - alpha_full|"].max())
split

# %% [markdown]
# ## What we saw

# %%
for key, value in findings.items():
    print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
print()
ref_change = findings["MI: max change from padding (reference)"]
print(f"Lengthening one teacher's rationale changed the OTHER branches' reference MI by up to {ref_change:.4g} and "
      f"their masked variant by {findings['MI: max change from padding (masked_mean)']:.2g}"
      + ("." if ref_change > 0 else " (here g only fell across the extra padding, so no upward jump was added)."))
print(f"On average {findings['MI: mean share of reference M from prompt and padding']:.0%} of the reference M comes "
      "from positions outside the rationale.")
print(f"Lengthening the prompt multiplies the sequence consistency term by "
      f"{findings['consistency: sequence term ratio after lengthening the prompt']:.2f} and the answer-span term by "
      f"{findings['consistency: answer-span term ratio']:.2f}.")
print(f"With K = 2 the fusion produces {findings['K=2: distinct alpha values (3 decimals)']} distinct weights "
      f"over {n_q} random questions; with K = 4, {findings['K=4: distinct alpha values (3 decimals)']}.")

# %% [markdown]
# ## Exercises
#
# 1. Set `extra_sentences = 0`: nothing changes; at which `extra_sentences` does the reference change the
#    *ranking* of the other teachers?
# 2. In section 3, make the filler longer (`* 20`): how far can you push the sequence consistency term down
#    without touching a rationale?
# 3. In section 5, set the consensus scale to 100 instead of 0.5: does anything change for K = 2? Why not?
# 4. Run section 4 with `dev[:6]`: how do the two paths' times and memory estimates scale with the number of
#    pairs?


# %% [markdown]
# ## Solutions
#
# Each solution runs with the notebook (on the smoke world in the tests, on the default world in the book);
# open a cell to see its code. Each reruns its section's computation locally with the changed value.
#
# ### Exercise 1
#
# The cell lengthens the same rationale as section 1 by 0, 1, 2, ... sentences and ranks the *other* teachers
# by their $M_k$, for the reference and the masked variant.

# %% tags=["solution", "hide-input"]
def fits(text: str) -> int:
    """How many copies of `text` fit after dev[0]'s longest branch within max_length (one spare)."""
    room = max_length - int(wb.batch(dev[:1], max_length=max_length).attention_mask.sum(1).max())
    return max(0, room // len(wb.tokenizer(text)["input_ids"]) - 1)


def other_mi(n_sentences):
    """Section 1 with `extra_sentences = n_sentences`: the other branches' M_k by teacher, both variants."""
    x = dataclasses.replace(dev[0], rationales=[r + " We are done." * n_sentences if k == k_long else r
                                                for k, r in enumerate(dev[0].rationales)])
    bx = wb.batch([x], max_length=max_length)
    hx = wb.forward(bx).hidden
    out = {}
    for v in ("reference", "masked_mean"):
        m = mi_proxy(hx, W_U, bx.gold_ids, bx.gold_mask, bx.group, bx.input_ids, bx.attention_mask, bx.assistant_start,
                     bx.thinking_ids, v)
        out[v] = {t: float(mk) for k, (t, mk) in enumerate(zip(x.teachers, m)) if k != k_long}
    return out


def ranking(scores):
    return " > ".join(sorted(scores, key=scores.get, reverse=True))


most = fits(" We are done.")  # beyond this the lengthened rationale would be cut at max_length
sweep = {n_sent: other_mi(n_sent) for n_sent in sorted({*range(min(17, most + 1)), *range(24, most + 1, 8), most})}
print(f"extra_sentences = 0: the other branches' reference M_k differ from section 1's 'as generated' by up to "
      f"{max(abs(m - mi.loc[('reference', t), 'as generated']) for t, m in sweep[0]['reference'].items()):.1e}")
for v in ("reference", "masked_mean"):
    flips = [n_sent for n_sent, r in sweep.items() if ranking(r[v]) != ranking(sweep[0][v])]
    print(f"{v}: as generated {ranking(sweep[0][v])}; lengthening {dev[0].teachers[k_long]}'s rationale "
          + (f"first changes it at extra_sentences = {flips[0]}: {ranking(sweep[flips[0]][v])}" if flips else
             f"never changes it (up to {most} sentences, the most that fit in max_length)"))
shown = sorted({n_sent for n_sent in (0, 1, 2, 4, 8, 16, 32, 64) if n_sent in sweep} | {most})
pd.DataFrame({n_sent: sweep[n_sent]["reference"] for n_sent in shown}).T.rename_axis(
    "extra_sentences (reference M_k)").round(3)

# %% [markdown]
# ### Exercise 2
#
# The cell repeats section 3 with 0, 3, 10, 20 filler sentences and with the most that fit before a rationale
# would be cut at `max_length`.

# %% tags=["solution", "hide-input"]
filler_text = " The weather was nice that day."
filler_most = fits(filler_text)
filler_rows = []
for reps in sorted({r for r in (0, 3, 10, 20) if r <= filler_most} | {filler_most}):
    x = dataclasses.replace(dev[0], question=dev[0].question + filler_text * reps)
    bx = wb.batch([x], max_length=max_length)
    row = {"filler sentences": reps, "prompt tokens": int(bx.assistant_start[0])}
    for mode in ("sequence", "answer_span"):
        row[mode] = float(compact_objective(student, bx, ObjectiveConfig(consistency=mode, weighting="uniform"))
                          .loss_consistency)
    filler_rows.append(row)
filler = pd.DataFrame(filler_rows).set_index("filler sentences")
for mode in ("sequence", "answer_span"):
    filler[f"{mode} / original"] = filler[mode] / filler.loc[0, mode]
low = filler["sequence / original"].idxmin()
print(f"lowest sequence term: {filler.loc[low, 'sequence / original']:.0%} of the original, with {low} filler "
      f"sentences ({filler.loc[low, 'prompt tokens']} prompt tokens) and every rationale unchanged; the answer-span "
      f"term there: {filler.loc[low, 'answer_span / original']:.0%} of its original")
filler.round(4)

# %% [markdown]
# ### Exercise 3
#
# Nothing changes: a z-score does not see the scale of its inputs, for any $K$, up to the $10^{-4}$ in the
# denominator (which nudges the questions whose scores lie close together). With $K = 2$ it sees even less: only which of the two branches is larger. The cell rescales the consensus
# scores, then bends them with a map that keeps each question's order and never narrows a gap ($C + C^3$):
# for $K = 2$ the weights stay the same, for $K = 4$ the bend moves them. Shrinking the scores until their gaps
# are near $10^{-4}$ is the one change that matters for both.

# %% tags=["solution", "hide-input"]
changes = []
for label, c_new in (("scale 100 instead of 0.5", raw["C"] / 0.5 * 100), ("C + C^3 (same order, wider gaps)",
                     raw["C"] + raw["C"] ** 3), ("scale 1e-4 instead of 0.5", raw["C"] / 0.5 * 1e-4)):
    row = {"consensus scores": label}
    for k_branches, grp, before in ((2, group, a2), (4, group4, a4)):
        _, after = fuse(raw["M"], c_new, raw["L"], grp)
        moved_q = (after - before).abs().reshape(-1, k_branches).max(1).values  # per question
        row[f"K={k_branches}: share of questions moved > 0.01"] = float((moved_q > 0.01).float().mean())
        row[f"K={k_branches}: median change"] = float(moved_q.median())
    changes.append(row)
pd.DataFrame(changes).set_index("consensus scores").round(4)

# %% [markdown]
# ### Exercise 4

# %% tags=["solution", "hide-input"]
b6 = wb.batch(dev[:6], max_length=max_length)
times6 = {}
with torch.enable_grad():
    for path in ("reference", "fast"):
        student.zero_grad()
        t0 = time.perf_counter()
        compact_objective(student, b6, ObjectiveConfig(path=path)).loss.backward()
        times6[path] = time.perf_counter() - t0
student.zero_grad()
n6, L6 = b6.input_ids.shape
pairs6 = sum(k * (k - 1) // 2 for k in torch.bincount(b6.group).tolist())
scaling = pd.DataFrame([  # section 4 scored dev[:2]
    {"questions": 2, "pairs": pairs, "padded width L": L, "reference s": times["reference"], "fast s": times["fast"], "reference floats (2 pairs L V)": 2 * pairs * L * V, "fast floats (N L V)": n * L * V},
    {"questions": b6.n_questions, "pairs": pairs6, "padded width L": L6, "reference s": times6["reference"],
     "fast s": times6["fast"], "reference floats (2 pairs L V)": 2 * pairs6 * L6 * V, "fast floats (N L V)": n6 * L6 * V},
]).set_index("questions")
ratio = scaling.iloc[1] / scaling.iloc[0]
print(f"from {scaling.index[0]} to {scaling.index[1]} questions: pairs x{ratio['pairs']:.1f}, L x{ratio['padded width L']:.2f}; "
      f"reference time x{ratio['reference s']:.1f}, fast time x{ratio['fast s']:.1f}; memory estimate x"
      f"{ratio['reference floats (2 pairs L V)']:.1f} (reference) and x{ratio['fast floats (N L V)']:.1f} (fast); "
      f"the reference holds {2 * pairs6 / n6:.1f} times the fast path's log-probabilities at any size (K - 1)")
scaling.round(3)
