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
