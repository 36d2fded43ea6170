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
# # The instrument: calibration and learning curves
#
# Every comparison in the results chapters is a measurement made with the embedded world, so the world is
# calibrated before anything is measured with it. Its base student must
#
# 1. **know its atomic skills**: every single-operation fact over the world's value range, in the exact
#    `a op b = c` form the teachers' rationales use (greedy completion of `a op b =`);
# 2. **know the knowledge base** the out-of-distribution (OOD) tasks rest on, scored as the field scores such
#    benchmarks: lm-evaluation-harness ranks the options of CommonsenseQA-style questions by their
#    log-likelihood, and so do we. A yes/no question is scored through the facts it rests on: the student's
#    belief about each fact is the value it finds most likely after the fact's recall question ("Where does a
#    crow live?"), and the answer follows from the beliefs. Both scorers read knowledge whatever style the
#    student now answers in, so a distilled student that writes a rationale for every question is not
#    counted as having forgotten what it still knows;
# 3. **not yet reason step by step**: answering the in-distribution (ID) questions directly, it is mostly
#    wrong, so distillation has something to teach.
#
# Each gate is reported against its chance or majority baseline. The table is written by `compact world`
# (`calibration.json` in the world folder); the pipeline refuses to publish results from a world that fails
# a gate unless told otherwise, and then every results page says so.

# %% tags=["parameters"]
profile = "smoke"
results = "artifacts/smoke/results"
world_config = "configs/world/smoke.yaml"
generate_config = "configs/generate/smoke.yaml"

# %% tags=["hide-input"]
import json

import pandas as pd

from compact.paths import resolve
from compact.publish.registry import read_registry
from compact.publish.results import figure, read_table
from compact.workbench import open_workbench

root = resolve(results)
registry = read_registry(root)
if registry.uncalibrated:
    print("NOTE: these results come from a world whose calibration gates FAIL:")
    for line in registry.uncalibrated:
        print("  " + line)
calibration = pd.DataFrame(read_table("calibration/calibration", root))
pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
view = pd.DataFrame({"what is measured": calibration["what"], "measured": calibration["value"].map(pct),
                     "baseline": calibration["baseline"].map(pct),
                     "gate": calibration["direction"] + " " + calibration["threshold"].map(pct),
                     "holds": calibration["holds"].map({True: "yes", False: "NO"})})
view.style.hide(axis="index")

# %% [markdown]
# ## What the base student writes
#
# Numbers can hide a broken instrument, so here are the base student's own outputs: a few facts, the recall
# questions behind the OOD tasks (with the log-likelihood of every candidate), and direct answers to ID
# questions.

# %% tags=["hide-input"]
wb = open_workbench(world_config, generate_config)
world, tok = wb.world, wb.tokenizer
model = world.load_student()
details = json.loads((world.path / "calibration.json").read_text())
print("facts per operation:", ", ".join(f"{op} {pct(v)}" for op, v in details["facts"]["per_op"].items()))
print("facts it gets wrong (first ones):", details["facts"]["examples_wrong"][:6] or "none")

# %% tags=["hide-input"]
from compact.eval.loglik import context_text, continuation_logprobs
from compact.world import tasks as T

probe = T.recall_probe("crow", "habitat")
scores = continuation_logprobs(model, tok, [(context_text(tok, probe["query"]), f" {o}.") for o in probe["options"]])
pd.DataFrame({"option": probe["options"], "log-likelihood": [round(s, 2) for s in scores]}).sort_values(
    "log-likelihood", ascending=False).style.hide(axis="index")

# %% tags=["hide-input"]
from compact.world.student import generate

for task in world.id_tasks:
    ex = world.examples(task, "test")[0]
    out = generate(model, tok, [ex.question], max_new_tokens=16)[0]
    print(f"[{task}] {ex.question}\n   base student: {out!r}   gold: {ex.answer}\n")

# %% [markdown]
# ## Where the training budget sits on the learning curve
#
# The pipeline keeps the parameters of COMPACT, uniform multi-teacher SFT and the single concise teacher at
# several optimizer steps and scores each snapshot on the first test questions of every ID task (step 0 is
# the base student). A reader sees whether the grid's budget stops on a plateau or while accuracy is still
# climbing; the grid's budget was chosen from these curves, not guessed.

# %% tags=["hide-input"]
curves = pd.DataFrame(read_table("curves/learning_curves", root))
figure("curves/learning_curves", root)  # as the results stage drew it

# %% tags=["hide-input"]
wide = curves.pivot_table(index="step", columns="method", values="id_mean").map(pct)
wide

# %% [markdown]
# ## What a larger budget costs
#
# The grid trains every run for the same number of optimizer steps, so the budget is one number, and its
# price is measured, not guessed: each run records its wall time, which gives the seconds per step of a
# multi-teacher run (four branches per question) and of a single-teacher run, as the pipeline's workers ran
# them. The table puts each budget the curves measured beside the training stage's time for the whole grid
# at that budget (the other stages do not grow with it). A four-teacher step costs several single-teacher
# steps, because every question is read four times.

# %% tags=["hide-input"]
from compact.publish.report import budget_table, step_costs

costs = step_costs(registry)
for kind in ("multi", "single"):
    per = costs[f"{kind}_s_per_step"]
    print(f"{kind}-teacher runs: {costs[f'{kind}_runs']}, "
          + (f"{per:.2f} s per step" if per is not None else "no step time recorded"))
print(f"{costs['questions_per_step']} questions per step")
budget = pd.DataFrame(budget_table(registry, curves.to_dict("records")))
budget.rename(columns={"grid_training_min": "grid training (min)"}).style.hide(axis="index").format(
    {m: pct for m in curves["method"].unique()} | {"grid training (min)": "{:.0f}"})

# %% [markdown]
# ## Exercises
#
# 1. Halve `student.steps` in `configs/world/default.yaml` and rebuild the world (`compact world --set
#    student.steps=750`): which gate fails first, and what does the base student then write for `7 + 8 =`?
# 2. Set `corpus.recall_docs: 0`: the OOD gates fall to chance. What does that do to the forgetting analysis?
# 3. Add `single-r1` to `curves:` in `configs/pipeline/default.yaml`: does the reflective teacher's curve
#    climb faster or slower than the concise one's?

# %% [markdown]
# ## Solutions
#
# Each solution runs with the notebook (on the smoke world in the tests, on the default world in the book);
# open a cell to see its code. Where an exercise asks to rebuild the world or to re-run the pipeline, the
# solution answers from what this world and this profile already published (the calibration table and its
# margins, the pretraining log, the forgetting table, the learning curves) and prints the command that
# measures the rest.
#
# ### Exercise 1
#
# A world built with fewer pretraining steps is another world (another config hash, another folder), so
# which gate fails first is only measured by building it. This world tells where to look: how much room each
# gate has (its value minus its threshold, in the gate's direction), and how far the pretraining loss still
# fell in the second half of the run. A shorter run is not the first half of this one (its learning-rate
# schedule decays sooner), but a gate with little room, or knowledge the loss was still paying for late, is
# the first to go. The cell also asks this world's base student for `7 + 8 =`, in the calibration's format.

# %% tags=["solution", "hide-input"]
from compact.config import load
from compact.eval.decode import greedy_generate
from compact.world.build import WorldConfig

wcfg13 = load(WorldConfig, resolve(world_config))
half13 = wcfg13.student.steps // 2
room13 = pd.DataFrame({"gate": calibration["gate"], "measured": calibration["value"].map(pct),
                       "gate at": calibration["direction"] + " " + calibration["threshold"].map(pct),
                       "room (points, < 0: fails)": [100 * ((v - t) if d == ">=" else (t - v)) for v, t, d in
                                         zip(calibration["value"], calibration["threshold"], calibration["direction"])]})
print(room13.sort_values("room (points, < 0: fails)").round(1).to_string(index=False))
print("facts, per operation:", ", ".join(f"{op} {pct(v)}" for op, v in details["facts"]["per_op"].items()))
plog13 = pd.read_json(world.path / "pretrain_log.jsonl", lines=True)
if len(plog13):
    at13 = plog13.iloc[(plog13["step"] - half13).abs().argmin()]
    end13 = plog13.iloc[-1]
    print(f"\npretraining loss (EMA): {plog13['loss_ema'].iloc[0]:.2f} at step 0, {at13['loss_ema']:.3f} at step "
          f"{int(at13['step'])}, {end13['loss_ema']:.3f} at step {int(end13['step'])} of {wcfg13.student.steps}")
ids13 = tok("7 + 8 =", add_special_tokens=False)["input_ids"]
pad13 = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
new13, _ = greedy_generate(model, [ids13], pad_id=pad13, eos_ids={tok.eos_token_id}, max_new_tokens=6)
print(f"this world's base student ({wcfg13.student.steps} steps): '7 + 8 =' -> {tok.decode(new13[0], skip_special_tokens=True)!r}")
print(f"\nto measure it: compact world --config {world_config} --set student.steps={half13}  "
      "(a new folder under artifacts/world/; its calibration.md holds the gates)")

# %% [markdown]
# ### Exercise 2
#
# The forgetting analysis measures how much of what the base student knew survives distillation. With
# `recall_docs: 0` the base student never reads the recall questions, its OOD accuracy sits at the chance
# (or majority) baseline, and there is nothing to forget: `before` is chance, `delta` is noise around zero (or
# a gain the teachers' rationales happened to teach), and a method that "kept everything" cannot be told from
# one that kept nothing. The cell puts each method's OOD accuracy on the scale that makes this visible: the
# share of the base student's margin over chance that is still there after distillation. With `before` at
# chance the denominator is zero and the share is undefined. The world to try it:
# `compact world --config configs/world/default.yaml --set corpus.recall_docs=0`.

# %% tags=["solution", "hide-input"]
forget13 = pd.DataFrame(read_table("forgetting/forgetting", root))
gates13 = calibration.set_index("gate")
print("base student vs the OOD gates' baselines (chance for mcq, majority for yes/no):")
for t13 in registry.tasks.ood:
    if t13 in gates13.index:
        g13 = gates13.loc[t13]
        print(f"  {t13}: {pct(g13['value'])} vs baseline {pct(g13['baseline'])} -> gate "
              f"{'holds' if g13['holds'] else 'FAILS: this world is the one the exercise describes'}")
kept13 = pd.DataFrame({"method": forget13["method"], "OOD before": forget13["ood_before"].map(pct),
                       "OOD after": forget13["ood_after"].map(pct), "delta (points)": (100 * forget13["delta"]).round(1)})
for t13 in registry.tasks.ood:
    if t13 in gates13.index and f"{t13}_before" in forget13:
        margin13 = forget13[f"{t13}_before"] - gates13.loc[t13, "baseline"]
        share13 = (forget13[f"{t13}_after"] - gates13.loc[t13, "baseline"]) / margin13.where(margin13 > 0)
        kept13[f"{t13}: margin over baseline kept"] = share13.map(lambda x: "undefined" if pd.isna(x) else f"{100 * x:.0f}%")
print(kept13.head(10).to_string(index=False))

# %% [markdown]
# ### Exercise 3
#
# The profile's curves cover the runs named in `curves:`; the cell compares the reflective and the concise
# single-teacher students (found by their teacher's style) where both have a curve, and otherwise shows what
# the profile has on them: the curve that exists, the final ID accuracy of both (main table) and how long
# each teacher's rationales are (a reflective rationale is longer, so the student reads more tokens per
# question). Adding a run to `curves:` changes its training config (it keeps snapshots), so
# that run retrains; `compact pipeline --profile default --dry-run --set curves=[...]` lists what would run.

# %% tags=["solution", "hide-input"]
from compact.teachers.generate import GenerateConfig, make_teacher

styles13 = {t.name: make_teacher(t).profile.style
            for t in load(GenerateConfig, resolve(generate_config)).teachers if t.backend == "simulated"}
single13 = {}
for spec13 in registry.config.get("runs", []):
    for o13 in spec13.get("overrides", []):
        if o13.startswith("teacher=") and o13.split("=", 1)[1] in styles13:
            single13[styles13[o13.split("=", 1)[1]]] = spec13["name"]
pair13 = {st: single13[st] for st in ("reflective", "concise") if st in single13}
print("single-teacher runs by style:", pair13 or "none in this profile")
have13 = [n for n in pair13.values() if n in set(curves["name"])]
if have13:
    c13 = curves[curves["name"].isin(have13)].pivot_table(index="step", columns="name", values="id_mean")
    gain13 = c13.diff().div(c13.index.to_series().diff(), axis=0) * 100
    print("ID accuracy (%) on the curve subset, and its gain per 100 steps since the previous snapshot:")
    print(pd.concat([(100 * c13).round(1), (100 * gain13).round(1).add_suffix(" gain")], axis=1).to_string())
main13 = pd.DataFrame(read_table("main/main_table", root)).set_index("name")
lengths13 = pd.DataFrame(read_table("calibration/rationales", root)).set_index("teacher") \
    if (root / "tables" / "calibration" / "rationales.json").is_file() else None
for st13, n13 in pair13.items():
    teacher13 = next(t for t, s in styles13.items() if s == st13)
    line13 = f"{st13} ({n13}, teacher {teacher13}):"
    if n13 in main13.index:
        line13 += f" final ID accuracy {pct(main13.loc[n13, 'id_mean'])} (main table)"
    if lengths13 is not None and teacher13 in lengths13.index:
        line13 += f"; median rationale {int(lengths13.loc[teacher13, 'median_tokens'])} tokens"
    print(line13)
missing13 = [n for n in pair13.values() if n not in set(curves["name"])]
if missing13:
    print(f"\nno curve for {', '.join(missing13)} in this profile (curves: {registry.config.get('curves')}); to add it:")
    print(f"  compact pipeline --profile {registry.profile} --dry-run "
          f"--set curves=[{','.join([*registry.config.get('curves', []), *missing13])}]   (then without --dry-run)")
