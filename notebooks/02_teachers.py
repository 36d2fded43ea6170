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
# 3. Copy `configs/generate/world.yaml` (the smoke config inherits its teacher list from it), give `sim-qwq`
#    a `profile` with `step_error_rate: 0.3` (and QwQ's other fields from `DEFAULT_POOL`: a `profile` replaces
#    the whole default), point `generate_config` at your copy and rerun: how do accuracy and disagreement change?
# 4. Compare `correct_only` with `none` above: what would a correctness filter cost in training branches, and
#    why can't a real-world COMPACT run rely on one for free?

# %% [markdown]
# ## Solutions
#
# Each solution runs with the notebook (on the smoke world in the tests, on the default world in the book);
# open a cell to see its code. Where an exercise asks for another world, the solution reads what the default
# profile published instead of building that world here.
#
# ### Exercise 1
#
# The cell walks the dev questions of `task` from `question_index` on and stops at the first whose teachers'
# final answers differ. For each wrong teacher it lines up the rationale's equation lines (`a op b = c.`) with
# the record's gold steps and tags each line: right, an arithmetic slip, a wrong operation, a slip caught and
# rewritten, or a right computation on a wrong input (the slip propagating).

# %% tags=["solution", "hide-input"]
import re
from fractions import Fraction

from compact.data.answers import number_value
from compact.world.tasks import apply_op

EQUATION = re.compile(r"^(\S+) ([-+*/]) (\S+) = (\S+)\.$")  # a whole line "a op b = c."


def equation_lines(text):
    """(a, op, b, c) of every line of ``text`` that is exactly one equation, in order (values as Fractions)."""
    out = []
    for line in text.splitlines():
        m = EQUATION.match(line.strip())
        vals = [number_value(m.group(i)) for i in (1, 3, 4)] if m else [None]
        if m and None not in vals:
            out.append((vals[0], m.group(2), vals[1], vals[2]))
    return out


def safe_op(op, a, b):
    return None if op == "/" and b == 0 else apply_op(op, Fraction(a), Fraction(b))


def tag_slips(text, steps):
    """Each equation line of a rationale with what happened there, against the gold ``steps``."""
    gold_vals, j, tagged = [], 0, []
    eqs = equation_lines(text)
    for n, (a, op, b, c) in enumerate(eqs):
        if j >= len(steps):
            tagged.append((a, op, b, c, "extra line"))
            continue
        st = steps[j]
        gold_in = [Fraction(gold_vals[r]) if r is not None else Fraction(x)
                   for x, r in zip(st["args"], st["refs"])]
        right = safe_op(op, a, b)
        if op != st["op"]:
            what = f"wrong operation (gold step: {st['op']})"
        elif right is None or abs(right - c) > Fraction(1, 100):
            what = f"arithmetic slip ({right})"
        elif [a, b] != gold_in:
            what = "right arithmetic on a wrong input (an earlier slip carried over)"
        else:
            what = "right"
        nxt = eqs[n + 1] if n + 1 < len(eqs) else None
        if what != "right" and nxt is not None and [nxt[0], nxt[2]] == [a, b] and nxt[1] == st["op"]:
            tagged.append((a, op, b, c, what + ", caught and rewritten on the next line"))
            continue  # the same step, written again
        tagged.append((a, op, b, c, what))
        gold_vals.append(apply_op(st["op"], *gold_in))
        j += 1
    return tagged


gold_records = {q.id: q for q in store.questions(f"{task}-dev")}
order = [(question_index + i) % len(instances) for i in range(len(instances))]
found = next((i for i in order if len({lab["extracted"] for lab in instances[i].labels}) > 1), None)
if found is None:
    print(f"The teachers agree on every {task} dev question of this store.")
else:
    inst1 = instances[found]
    print(f"question_index = {found}: {inst1.question}\ngold answer {inst1.answer}; final answers: "
          + ", ".join(f"{t} {lab['extracted']}" for t, lab in zip(inst1.teachers, inst1.labels)))
    steps1 = gold_records[inst1.id].meta["steps"]
    print("gold steps:", ", ".join(f"{st['args'][0]} {st['op']} {st['args'][1]} = {st['value']}" for st in steps1))
    for t, text, lab in zip(inst1.teachers, inst1.rationales, inst1.labels):
        if lab["final_correct"]:
            continue
        print(f"\n{t} is wrong (answer {lab['extracted']}):")
        for a, op, b, c, what in tag_slips(text, steps1):
            print(f"   {a} {op} {b} = {c}.   <- {what}")

# %% [markdown]
# ### Exercise 2
#
# Every style but the concise one quotes the question's first distractor sentence to set it aside; none uses
# it: the teachers walk the gold steps, so a distractor's number could enter an equation only by coincidence.
# The cell counts both over the `variation` dev questions: a rationale "uses" a distractor if one of its
# equations has as an operand a number that appears only in a distractor sentence and that the rationale has
# not computed itself.

# %% tags=["solution", "hide-input"]
var_key = "variation-dev"
var_records = {q.id: q for q in store.questions(var_key)}
rows2 = []
for inst2 in build_instances(store, var_key, teachers):
    record = var_records[inst2.id]
    rest = record.question
    for d in record.meta["distractors"]:
        rest = rest.replace(d, "")
    only_distractor = ({Fraction(x) for d in record.meta["distractors"] for x in re.findall(r"\d+", d)}
                       - {Fraction(x) for x in re.findall(r"\d+", rest)})
    for t, text in zip(inst2.teachers, inst2.rationales):
        eqs, used = equation_lines(text), False
        for n, (a, op, b, c) in enumerate(eqs):
            computed = {e[3] for e in eqs[:n]}
            used |= any(x in only_distractor and x not in computed for x in (a, b))
        rows2.append({"teacher": t, "quotes a distractor": any(d in text for d in record.meta["distractors"]),
                      "uses a distractor's number": used})
ex2 = pd.DataFrame(rows2).groupby("teacher").mean().reindex(teachers)
print(f"share of the {len(rows2) // len(teachers)} {var_key} questions' rationales, per teacher:")
print(ex2.round(2).to_string())
first2 = build_instances(store, var_key, teachers)[0]
distractors2 = var_records[first2.id].meta["distractors"]
print(f"\ne.g. {first2.id}, distractors {distractors2}:")
for t, text in zip(first2.teachers, first2.rationales):
    quoting = [line for line in text.splitlines() if any(d in line for d in distractors2)]
    print(f"   {t}: {quoting[0] if quoting else '(no mention)'}")

# %% [markdown]
# ### Exercise 3
#
# A generate config turns each teacher entry into a teacher with `compact.teachers.generate.make_teacher`;
# the cell builds the edited `sim-qwq` entry in memory (QwQ's default profile with `step_error_rate: 0.3`), shows
# that the edited config is another store (another hash), and has that teacher write the dev rationales here,
# in memory, instead of filling a store. The other three teachers' answers are the stored ones.

# %% tags=["solution", "hide-input"]
import dataclasses

from compact.config import config_hash, from_dict
from compact.teachers.generate import make_teacher
from compact.teachers.simulated import SimulatedProfile
from compact.teachers.store import make_row

spec3 = next(t for t in wb.generate_cfg.teachers if t.name == "sim-qwq")
hot_spec = dataclasses.replace(spec3, profile=dataclasses.replace(spec3.profile or DEFAULT_POOL["sim-qwq"][1],
                                                                   step_error_rate=0.3))
hot_cfg = dataclasses.replace(wb.generate_cfg, teachers=[hot_spec if t.name == "sim-qwq" else t
                                                         for t in wb.generate_cfg.teachers])
print(f"generate config hash {config_hash(wb.generate_cfg)} -> {config_hash(hot_cfg)}: another store")
print("(a profile giving only step_error_rate would fall back to the other defaults, e.g. style "
      f"{from_dict(SimulatedProfile, {'step_error_rate': 0.3}).style!r} instead of {hot_spec.profile.style!r})")
hot = make_teacher(hot_spec)
rows3 = []
for key in dev_keys:
    questions3 = store.questions(key)
    new = {q.id: make_row(q, hot.name, 0, g[0], "")
           for q, g in zip(questions3, hot.generate(questions3, hot_spec.sampling))}
    stored = {name: {r["id"]: r for r in store.load(key, name) if r["sample"] == 0} for name in teachers}
    for label, qwq in (("stored sim-qwq", stored["sim-qwq"]), ("step_error_rate 0.3", new)):
        ids3 = [q.id for q in questions3]
        answers = [[str(stored[t][i]["extracted"]) if t != "sim-qwq" else str(qwq[i]["extracted"])
                    for t in teachers] for i in ids3]
        rows3.append({"key": key, "sim-qwq": label,
                      "sim-qwq accuracy": sum(qwq[i]["final_correct"] for i in ids3) / len(ids3),
                      "disagreement": sum(len(set(a)) > 1 for a in answers) / len(ids3)})
pd.DataFrame(rows3).set_index(["key", "sim-qwq"]).round(2)

# %% [markdown]
# ### Exercise 4
#
# A correctness filter needs a gold answer for every training question and a parser that finds the final
# answer in every rationale. The embedded world has both for free; a real distillation corpus often has
# neither (unlabelled questions, open-ended answers, rationales whose last line does not parse), and a right
# final answer does not certify the reasoning: a rationale can reach it through a wrong statement. The filter
# also changes what a multi-teacher method sees: questions left with a single branch have nothing to weigh.
# COMPACT's scores are meant to do without it. The cell counts the cost on `train_key`.

# %% tags=["solution", "hide-input"]
none4 = build_instances(store, train_key, teachers, correctness_filter="none")
kept4 = build_instances(store, train_key, teachers, correctness_filter="correct_only")
n_branches = sum(len(i.rationales) for i in none4)
k_left = pd.Series([len(i.rationales) for i in kept4]).value_counts().sort_index()
print(f"{train_key}, correctness_filter='correct_only' against 'none':")
print(f"  branches kept: {sum(len(i.rationales) for i in kept4)} of {n_branches} "
      f"({sum(len(i.rationales) for i in kept4) / n_branches:.0%})")
print(f"  questions kept: {len(kept4)} of {len(none4)} ({len(none4) - len(kept4)} had no correct branch)")
print("  branches left per question:", {int(k): int(v) for k, v in k_left.items()},
      f"-- {int(k_left.get(1, 0))} question(s) with one branch: nothing for the weights to choose")
print(f"  kept branches with a wrong statement on the way (steps_correct False): "
      f"{sum(lab['steps_correct'] is False for i in kept4 for lab in i.labels)}")
