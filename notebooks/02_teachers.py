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
# # Teachers and their rationales

# %% [markdown]
# COMPACT learns from $K$ teachers at once. A training instance is a question $x$, one rationale per teacher
# $c_1, \dots, c_K$ and the gold answer $a^{\star}$:
#
# $$\mathcal D = \{(x, \{c_k\}_{k=1}^K, a^{\star})\},\qquad c_k \sim \text{teacher}_k(\cdot \mid x).$$
#
# The paper's pool is DeepSeek-R1-Distill-Llama-70B, Qwen2.5-72B-Instruct, Llama-3.1-70B-Instruct and QwQ-32B.
# In the embedded world four **simulated teachers** stand in for them (`compact.teachers.simulated`): each
# walks the record's gold computation in its own style and *slips* now and then; a slip propagates through
# the later steps, so a wrong rationale ends with a consistently wrong answer. Every rationale ends with the
# same parseable line `The answer is X.`, and carries ground-truth labels (final answer correct? every step
# correct?) that the analysis reads and training never does. The rationales are written once into a
# resumable store (`compact generate`) and read back as instances (`compact.teachers.view.build_instances`).

# %% tags=["parameters"]
profile = "smoke"
results = "artifacts/smoke/results"
world_config = "configs/world/smoke.yaml"
generate_config = "configs/generate/smoke.yaml"
question_index = 0  # which dev question to print with its K rationales
task = "arith"  # in-distribution task shown
seed = 0

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from compact.teachers.simulated import DEFAULT_POOL
from compact.teachers.view import build_instances, disagreement
from compact.workbench import open_workbench
from compact.method.adaptability import thinking_token_ids

wb = open_workbench(world_config, generate_config, seed=seed)  # world, store, base student (cached)
world, store, teachers = wb.world, wb.store, wb.teachers
print("store keys:", store.keys())
print("teachers:", teachers)

# %% [markdown]
# ## The pool
#
# Each simulated teacher has a style and error rates (`SimulatedProfile`): a per-step slip probability, the
# share of slips that are arithmetic (versus a wrong operation), how often a reflective teacher catches its
# own slip ("Wait, ..."), and how often an over-thinker adds a wrong side remark that does not change the
# answer.

# %%
pool = pd.DataFrame([{"teacher": name, "stands for": paper, "style": p.style, "P(slip)/step": p.step_error_rate,
                      "catch rate": p.catch_rate, "wrong aside": p.aside_error_rate}
                     for name, (paper, p) in DEFAULT_POOL.items() if name in teachers]).set_index("teacher")
pool

# %% [markdown]
# ## One question, K rationales
#
# The four styles differ in everything around the computation (a preamble, checks by the inverse operation,
# a caught slip, an explanation of each operation in words, hesitations and asides, a summary line) and share
# its skeleton: each step is written as the bare equation `a op b = c.`, the form in which the base student
# learned its facts and its one-step questions. That is what real teachers share too (the equations of a
# solution), and it is what lets a small student learn to chain steps within a CPU budget: the same
# computations written as `Step j: a op b = c (what it is).` lines wrap every equation in a context the base
# student has never seen, and a student of this size then copies the template but not the question's numbers.

# %%
instances = build_instances(store, f"{task}-dev", teachers)
inst = instances[question_index % len(instances)]
print("Q:", inst.question, "\ngold:", inst.answer)
for name, text, lab in zip(inst.teachers, inst.rationales, inst.labels):
    flag = "correct" if lab["final_correct"] else "WRONG"
    print(f"\n--- {name}: final answer {lab['extracted']} ({flag}; steps correct: {lab['steps_correct']}, "
          f"{lab['n_errors']} error(s))")
    print(text)

# %% [markdown]
# ## How good, how long, how "thoughtful"
#
# Per teacher over every dev key of the store: accuracy of the final answer, the share of rationales with
# every step right (a rationale can reach the right answer through a wrong side remark), length in student
# tokens, and thinking tokens per rationale (they matter for the MI proxy of
# [chapter 4](04_adaptability.ipynb)).

# %%
tok = world.tokenizer
think = set(thinking_token_ids(tok))
dev_keys = [k for k in store.keys() if k.endswith("-dev")]
rows = []
for key in dev_keys:
    for name in teachers:
        for r in store.load(key, name):
            ids = tok(r["rationale"], add_special_tokens=False)["input_ids"]
            rows.append({"key": key, "teacher": name, "final_correct": bool(r["final_correct"]),
                         "steps_correct": bool(r["steps_correct"]), "tokens": len(ids),
                         "thinking tokens": sum(i in think for i in ids)})
df = pd.DataFrame(rows)
per_teacher = df.groupby("teacher")[["final_correct", "steps_correct", "tokens", "thinking tokens"]].mean()
per_teacher = per_teacher.loc[teachers].round(2)
per_teacher

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
acc = df.pivot_table(index="key", columns="teacher", values="final_correct", aggfunc="mean")[teachers]
acc.plot.bar(ax=axes[0], rot=0, width=0.8)
axes[0].set(ylim=(0, 1.05), ylabel="final-answer accuracy", title="Accuracy per task (dev)")
axes[0].legend(fontsize=9, loc="lower right")
for i, name in enumerate(teachers):
    sub = df[df.teacher == name]
    axes[1].hist(sub["tokens"], bins=20, alpha=0.5, label=name, color=f"C{i}")
axes[1].set(xlabel="rationale length (student tokens)", ylabel="rationales", title="Length")
axes[1].legend(fontsize=9)
axes[2].scatter(df["tokens"], df["thinking tokens"], c=[f"C{teachers.index(t)}" for t in df["teacher"]], s=10)
axes[2].set(xlabel="rationale length (tokens)", ylabel="thinking tokens", title="Thinking words per rationale")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Do the teachers disagree?
#
# COMPACT matters only when teachers disagree: with identical rationales every weighting is the same. Below,
# the share of questions whose teachers' final answers are not all equal, and the pairwise agreement of final
# answers.

# %% tags=["hide-input"]
dis = {key: disagreement(store, key, teachers) for key in store.keys()}
extracted = {name: {} for name in teachers}
for key in dev_keys:
    for name in teachers:
        for r in store.load(key, name):
            extracted[name][(key, r["id"])] = r["extracted"]
common = sorted(set.intersection(*[set(v) for v in extracted.values()]))
agree = np.array([[np.mean([extracted[a][q] == extracted[b][q] for q in common]) for b in teachers]
                  for a in teachers])
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
axes[0].bar(list(dis), list(dis.values()), color="C3")
axes[0].set(ylabel="share of questions", title="Teachers' final answers not all equal", ylim=(0, 1))
axes[0].tick_params(axis="x", rotation=30)
im = axes[1].imshow(agree, vmin=0.5, vmax=1, cmap="viridis")
axes[1].set_xticks(range(len(teachers)), teachers, rotation=30, ha="right")
axes[1].set_yticks(range(len(teachers)), teachers)
for i in range(len(teachers)):
    for j in range(len(teachers)):
        axes[1].text(j, i, f"{agree[i, j]:.2f}", ha="center", va="center", color="w", fontsize=9)
axes[1].set_title("Pairwise final-answer agreement (dev)")
fig.colorbar(im, ax=axes[1])
fig.tight_layout()
plt.show()

# %% [markdown]
# ## From the store to training instances
#
# `build_instances` fixes the teacher order and states what happens to missing or unparseable rationales
# (`policy`) and whether rationales are filtered by their stated answer (`correctness_filter`). COMPACT's
# own setting keeps everything (`none`): the method has to cope with wrong rationales itself.

# %%
train_key = f"{task}-train"
counts = []
for filt in ("none", "any_correct", "all_correct", "correct_only"):
    got = build_instances(store, train_key, teachers, correctness_filter=filt)
    counts.append({"correctness_filter": filt, "instances": len(got),
                   "branches": sum(len(i.rationales) for i in got),
                   "wrong branches": sum(not lab["final_correct"] for i in got for lab in i.labels)})
pd.DataFrame(counts).set_index("correctness_filter")

# %% [markdown]
# ## What we saw

# %%
best = per_teacher["final_correct"].idxmax()
worst = per_teacher["final_correct"].idxmin()
gap = per_teacher["final_correct"] - per_teacher["steps_correct"]
longest = per_teacher["tokens"].idxmax()
print(f"Most accurate teacher on dev: {best} ({per_teacher.loc[best, 'final_correct']:.0%}); least: {worst} "
      f"({per_teacher.loc[worst, 'final_correct']:.0%}).")
print(f"Largest gap between a right final answer and all steps right: {gap.idxmax()} ({gap.max():.0%} of its "
      "rationales reach the right answer through a wrong statement).")
print(f"Longest rationales: {longest} ({per_teacher.loc[longest, 'tokens']:.0f} tokens on average, "
      f"{per_teacher.loc[longest, 'thinking tokens']:.1f} thinking tokens).")
print("Share of questions on which the teachers' final answers differ, per key:",
      {k: round(v, 2) for k, v in dis.items()})
print(f"With correctness_filter='none', {counts[0]['wrong branches']} of {counts[0]['branches']} training "
      f"branches of {train_key} end in a wrong answer: these are what COMPACT's weights should push down.")

# %% [markdown]
# ## Exercises
#
# 1. Change `question_index` until you find a question where the teachers disagree. Which teacher is wrong, and
#    where did its slip enter?
# 2. Set `task = "variation"`: do the teachers ever use the distractor sentence?
# 3. Copy `configs/generate/smoke.yaml`, give `sim-qwq` a `profile` with `step_error_rate: 0.3`, point
#    `generate_config` at your copy and rerun: how do accuracy and disagreement change?
# 4. Compare `correct_only` with `none` above: what would a correctness filter cost in training branches, and
#    why can't a real-world COMPACT run rely on one for free?
