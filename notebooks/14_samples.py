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
# # Per-sample outputs
#
# Accuracies summarise; a reader should also see what the students write. For the first test questions of
# every task this page shows the gold answer, each method's student answer (its first seed; strict
# extraction, as in the main table) and the rationale each simulated teacher writes for the same question
# (test questions are never in the training store, so the teachers answer them here, seeded as always).
# Out-of-distribution questions are scored by log-likelihood: their "answer" is the option the student finds
# most likely. Every evaluation keeps all its samples (`samples.jsonl` beside `metrics.json` in the
# evaluation's folder), so any question can be looked up the same way.

# %% tags=["parameters"]
profile = "smoke"
results = "artifacts/smoke/results"
world_config = "configs/world/smoke.yaml"
generate_config = "configs/generate/smoke.yaml"
per_task = 2

# %% tags=["hide-input"]
import html

from IPython.display import HTML

from compact.config import load
from compact.paths import resolve
from compact.publish.registry import read_registry
from compact.publish.report import sample_sheet
from compact.teachers.generate import GenerateConfig, make_teacher
from compact.world.build import WorldConfig, build_world

registry = read_registry(resolve(results))
world = build_world(load(WorldConfig, resolve(world_config)))
teachers = [make_teacher(t) for t in load(GenerateConfig, resolve(generate_config)).teachers
            if t.backend == "simulated"]
sheet = sample_sheet(registry, per_task=per_task, teachers=teachers, world=world)


def shown(text, limit=600):
    """A generation as the page shows it: stripped, cut at ``limit`` characters, never blank."""
    text = text.strip()
    return (text[:limit] + " [...]" if len(text) > limit else text) or "(nothing but whitespace)"


def render(row):
    e = html.escape
    answers = "".join(
        f"<tr><td>{e(a['method'])}</td><td>{'right' if a['correct'] else 'wrong'}</td><td>{e(str(a['extracted']))}</td>"
        f"<td><pre style='white-space:pre-wrap;margin:0'>{e(shown(a['generation']))}</pre></td></tr>"
        for a in row["answers"])
    rationales = "".join(
        f"<details><summary>{e(t['teacher'])} ({'right' if t['correct'] else 'wrong'})</summary>"
        f"<pre style='white-space:pre-wrap'>{e(t['rationale'])}</pre></details>" for t in row["teachers"])
    return (f"<h3>{e(row['task'])}: {e(row['id'])}</h3><p>{e(row['question'])}</p><p><b>gold:</b> {e(row['gold'])}</p>"
            f"<table><tr><th>method</th><th>strict</th><th>extracted</th><th>student's answer</th></tr>{answers}</table>"
            + (f"<p><b>the teachers' rationales</b></p>{rationales}" if rationales else ""))


HTML("".join(render(r) for r in sheet))

# %% [markdown]
# ## Exercises
#
# 1. Set `per_task = 5` and find a question that COMPACT gets right and uniform gets wrong: which teachers
#    were right on it, and which style does each student's answer resemble?
# 2. Look up one wrong answer of the best method in its `samples.jsonl` (the folder is in
#    `results/pipeline.json` under `evals`): is the first wrong equation a copied number or an arithmetic slip?

# %% [markdown]
# ## Solutions
#
# Each solution runs with the notebook (on the smoke profile in the tests, on the default profile in the book);
# open a cell to see its code. Both read the evaluations the profile published (`samples.jsonl` of every
# model's first seed, through the registry) and let the simulated teachers answer the questions again, as the
# sheet above does; nothing is trained or re-evaluated.
#
# ### Exercise 1
#
# The cell builds the sheet with five questions per task and looks for one that COMPACT answers right and
# uniform SFT wrong; when none of those questions qualifies, it searches every published test question. For
# the question it finds it lists which teachers were right, and which teacher's rationale each student's
# answer resembles most (text similarity with the numbers masked, so the comparison is about the wording and
# the layout, the style, rather than about the values).

# %% tags=["solution", "hide-input"]
import difflib
import re

from compact.eval.evaluate import EvalResult


def first_seed14(name):
    mids = [m for m, rec in registry.models().items() if rec.name == name and m in registry.evals]
    return min(mids, key=lambda m: registry.models()[m].seed) if mids else None


def style_match14(text, rationales):
    """The teacher whose rationale reads most like ``text`` (digits masked), and the similarity (0-1)."""
    masked = re.sub(r"\d+", "#", text.strip())
    sims = {t: difflib.SequenceMatcher(None, masked, re.sub(r"\d+", "#", r.strip())).ratio()
            for t, r in rationales.items()}
    best = max(sims, key=sims.get) if sims else None
    return best, (sims[best] if best else float("nan"))


sheet14 = sample_sheet(registry, per_task=5, teachers=teachers, world=world)
pair14 = {n: first_seed14(n) for n in ("compact", "uniform")}
row14 = None
for r14 in sheet14:
    got14 = {a["name"]: a["correct"] for a in r14["answers"]}
    if got14.get("compact") and got14.get("uniform") is False:
        row14 = r14
        break
where14 = "among the first 5 questions per task"
if row14 is None and all(pair14.values()):
    samples14 = {n: {x["id"]: x for d in registry.evals[m].dirs for x in EvalResult.read(resolve(d)).samples}
                 for n, m in pair14.items()}
    hit14 = next((i for i, x in samples14["compact"].items() if x["correct_strict"] and i in samples14["uniform"]
                  and not samples14["uniform"][i]["correct_strict"] and x["task"] in registry.tasks.id), None)
    if hit14 is not None:
        task14 = samples14["compact"][hit14]["task"]
        ex14 = next(e for e in world.examples(task14, "test") if e.id == hit14)
        row14 = {"id": hit14, "task": task14, "question": ex14.question, "gold": ex14.answer,
                 "answers": [{"method": n, "name": n, "correct": bool(samples14[n][hit14]["correct_strict"]),
                              "generation": samples14[n][hit14]["generation"]} for n in pair14],
                 "teachers": [{"teacher": t.name, "rationale": (g := t.generate_one(ex14, 0)).text,
                               "correct": bool(g.meta.get("final_correct"))} for t in teachers]}
        where14 = "in the whole published test split (none among the first 5 per task)"
if row14 is None:
    print("no published test question that COMPACT answers right and uniform SFT wrong; the style comparison "
          "below uses the first ID question of the sheet instead")
    row14 = next((r for r in sheet14 if r["task"] in registry.tasks.id), None)
else:
    print(f"{row14['task']}/{row14['id']} ({where14}): {row14['question']}\ngold: {row14['gold']}")
if row14 is not None:
    rats14 = {t["teacher"]: t["rationale"] for t in row14["teachers"]}
    print("teachers right on it:", ", ".join(t["teacher"] for t in row14["teachers"] if t["correct"]) or "none",
          "| wrong:", ", ".join(t["teacher"] for t in row14["teachers"] if not t["correct"]) or "none")
    for a14 in row14["answers"]:
        if a14["name"] in ("compact", "uniform"):
            best14, sim14 = style_match14(a14["generation"], rats14)
            like14 = (f"reads most like {best14} (similarity {sim14:.2f})" if a14["generation"].strip() and sim14 > 0
                      else "nothing to compare")
            print(f"\n{a14['method']} ({'right' if a14['correct'] else 'wrong'}); {like14}:\n"
                  + "\n".join("   " + ln for ln in shown(a14["generation"], 400).splitlines()[:8]))

# %% [markdown]
# ### Exercise 2
#
# The best method is the one with the highest ID accuracy in the main table (the base student left out); its
# first seed's `samples.jsonl` is in the folder the registry names under `evals`. The cell finds every
# equation `a op b = c` in a wrong answer, in the order written, and classifies the first one that is wrong:
# an *arithmetic slip* (the left side does not give the right side), or a *copied number* (the arithmetic is
# right but an operand is neither in the question nor an earlier result). When every equation checks out, the
# error lies in which numbers and operations were chosen (a distractor copied from the question, a step in the
# wrong order): the equations are right, the plan is not. The classification is a heuristic on the text.

# %% tags=["solution", "hide-input"]
import pandas as pd

from compact.publish.results import read_table

main14 = [r for r in read_table("main/main_table", resolve(results)) if r["group"] != "base"]
top14 = max(main14, key=lambda r: r["id_mean"])
mid14 = first_seed14(top14["name"])
EQ14 = re.compile(r"(?<![\d.])(\d+(?:\s*[-+*/x×]\s*\d+)+)\s*=\s*(-?\d+)")


def first_wrong14(sample):
    """(kind, equation) of the first wrong equation of a generation, in the order written."""
    known = {int(n) for n in re.findall(r"\d+", sample["prompt"])}
    for m in EQ14.finditer(sample["generation"]):
        lhs, rhs = m.group(1), int(m.group(2))
        expr = lhs.replace("x", "*").replace("×", "*")
        try:
            value = eval(expr, {"__builtins__": {}})  # digits and + - * / only (EQ14)
        except ZeroDivisionError:
            value = None
        if value is None or abs(value - rhs) > 1e-9:
            return "arithmetic slip", m.group(0)
        if any(int(n) not in known for n in re.findall(r"\d+", lhs)):
            return "copied number", m.group(0)
        known.add(rhs)
    return ("every equation right", "") if EQ14.search(sample["generation"]) else ("no equation", "")


if mid14 is None:
    print("no evaluation of the best method in the registry")
else:
    dirs14 = registry.evals[mid14].dirs
    wrong14 = [x for d in dirs14 for x in EvalResult.read(resolve(d)).samples
               if x["task"] in registry.tasks.id and not x["correct_strict"]]
    print(f"best ID method: {top14['method']} (ID {100 * top14['id_mean']:.1f}%); its first seed {mid14}: "
          f"{len(wrong14)} wrong ID answers in {', '.join(dirs14)}/samples.jsonl")
    kinds14 = pd.Series([first_wrong14(x)[0] for x in wrong14]).value_counts() if wrong14 else pd.Series(dtype=int)
    print("first wrong equation, over all its wrong answers:", ", ".join(f"{k} {v}" for k, v in kinds14.items()))
    wex14 = next((x for x in wrong14 if first_wrong14(x)[0] in ("arithmetic slip", "copied number")),
                wrong14[0] if wrong14 else None)
    if wex14 is not None:
        kind14, eq14 = first_wrong14(wex14)
        print(f"\ne.g. {wex14['id']}: {re.sub(r'<[|][^|]*[|]>', ' ', wex14['prompt']).strip()}")
        print(f"gold {wex14['gold']}, extracted {wex14['extracted_strict']}; first wrong equation: "
              f"{eq14 or '-'} ({kind14})")
        print("\n".join("   " + ln for ln in shown(wex14["generation"], 500).splitlines()[:10]))
