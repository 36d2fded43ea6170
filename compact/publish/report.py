r"""The pipeline's results stage: the tables and figures the book shows, from one registry of runs.

Input: the registry the pipeline assembles (runs, merges, their evaluation folders and metrics). Output,
under ``<results>/``, each with provenance (:mod:`compact.publish.results`):

* ``main/main_table``: every method, per-task strict accuracy, the in-distribution (ID) and
  out-of-distribution (OOD) averages as mean $\pm$ std over seeds, and a 95% bootstrap interval over
  questions of the seed-averaged accuracy;
* ``main/comparisons``: COMPACT minus each other method, paired by question (seed-averaged correctness per
  question, then a bootstrap over questions), for ID and OOD accuracy;
* ``main/ablations``: COMPACT, its variants and ablations side by side;
* ``forgetting/*``, ``latent/*``, ``validation/*``, ``dynamics/*``: the analyses of :mod:`compact.analysis`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import textwrap
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from safetensors.torch import load_file

from ..analysis import AnalyzeConfig, analyze
from ..analysis.parity import objective_parity, thinking_words_table
from ..analysis.scoring import ScoreConfig, ScoreInput, run_score
from ..analysis.validation import score_auc_table
from ..config import config_hash, from_dict
from ..eval.evaluate import EvalResult, evaluate, load_examples
from ..eval.stats import bootstrap_ci, mean_std
from ..inputs.encode import encode_question
from ..inputs.instances import load_instances
from ..inputs.model import load_student, load_tokenizer
from ..log import get_logger
from ..paths import artifacts_dir, resolve
from ..provenance import atomic_dir, is_complete, manifest
from ..teachers.generate import generate_store
from ..teachers.generate import load_config as load_generate_config
from ..teachers.view import build_instances
from ..trainer.checkpoint import load_trainable_state
from ..trainer.run import load_config as load_train_config
from .plan import PipelineConfig, eval_configs_for
from .registry import Registry
from .results import save_figure, write_table

log = get_logger("report")

MAIN_REF = "compact"  # the run name COMPACT (reference mode) has in every profile


def _samples(registry: Registry, mid: str) -> list[dict[str, Any]]:
    rows = []
    for d in registry.evals[mid].dirs:
        rows += EvalResult.read(resolve(d)).samples
    return rows


def _per_question(registry: Registry, mids: Sequence[str], tasks: Sequence[str]) -> dict[str, float]:
    """Seed-averaged correctness per question id over the given tasks."""
    acc: dict[str, list[float]] = {}
    tasks = set(tasks)
    for mid in mids:
        for s in _samples(registry, mid):
            if s["task"] in tasks:
                acc.setdefault(f"{s['task']}/{s['id']}", []).append(float(s["correct_strict"]))
    return {k: float(np.mean(v)) for k, v in acc.items()}


def _task_acc(metrics: Mapping[str, Any], tasks: Sequence[str]) -> float:
    vals = [metrics[t]["strict"] for t in tasks if t in metrics]
    return float(np.mean(vals)) if vals else math.nan


def main_tables(registry: Registry, *, n_bootstrap: int = 1000, seed: int = 0) -> dict[str, list[dict]]:
    """The main table, the paired comparisons with COMPACT and the ablation table."""
    id_tasks, ood_tasks = registry.tasks.id, registry.tasks.ood
    models = registry.models()
    by_name: dict[str, list[str]] = {}
    for mid, m in models.items():
        by_name.setdefault(m.name, []).append(mid)
    # tasks of further eval configs (e.g. world questions read through the GSM8K adapter): a column each,
    # outside the ID and OOD means
    extra_tasks = sorted({t for e in registry.evals.values() for t in e.metrics} - {*id_tasks, *ood_tasks})
    rows = []
    for name, mids in by_name.items():
        m0 = models[mids[0]]
        metrics = [registry.evals[mid].metrics for mid in mids]
        row: dict[str, Any] = {"method": m0.label, "name": name, "group": m0.group, "seeds": len(mids)}
        for t in [*id_tasks, *ood_tasks, *extra_tasks]:
            row[t] = float(np.mean([m[t]["strict"] for m in metrics if t in m])) if any(t in m for m in metrics) \
                else math.nan
        for t in extra_tasks:  # its own bootstrap interval (over questions; the first seed's evaluation)
            m = next((m for m in metrics if t in m), None)
            row[f"{t}_ci_low"] = m[t]["strict_ci_low"] if m else math.nan
            row[f"{t}_ci_high"] = m[t]["strict_ci_high"] if m else math.nan
        for part, tasks in (("id", id_tasks), ("ood", ood_tasks)):
            mean, std = mean_std(_task_acc(m, tasks) for m in metrics)
            per_q = _per_question(registry, mids, tasks)
            iv = bootstrap_ci(list(per_q.values()), n_resamples=n_bootstrap, seed=seed)
            row[f"{part}_mean"], row[f"{part}_std"] = mean, std
            row[f"{part}_ci_low"], row[f"{part}_ci_high"] = iv.low, iv.high
        row["id_lenient"] = float(np.mean([np.mean([m[t]["lenient"] for t in id_tasks if t in m]) for m in metrics]))
        rows.append(row)
    order = {"base": 0, "main": 1, "variant": 2, "baseline": 3, "ablation": 4}
    rows.sort(key=lambda r: (order.get(r["group"], 9), -r["id_mean"] if not math.isnan(r["id_mean"]) else 0))

    comparisons = []
    if MAIN_REF in by_name:
        ref = by_name[MAIN_REF]
        for part, tasks in (("id", id_tasks), ("ood", ood_tasks)):
            ref_q = _per_question(registry, ref, tasks)
            for name, mids in by_name.items():
                if name == MAIN_REF:
                    continue
                other = _per_question(registry, mids, tasks)
                common = sorted(set(ref_q) & set(other))
                diffs = [ref_q[k] - other[k] for k in common]
                iv = bootstrap_ci(diffs, n_resamples=n_bootstrap, seed=seed)
                comparisons.append({
                    "split": part.upper(), "versus": models[mids[0]].label, "group": models[mids[0]].group,
                    "n_questions": len(common), "compact_minus_other": iv.estimate,
                    "ci_low": iv.low, "ci_high": iv.high,
                    "verdict": ("COMPACT better" if iv.low > 0 else "COMPACT worse" if iv.high < 0
                                else "no significant difference"),
                })
    ablations = [r for r in rows if r["group"] in ("main", "variant", "ablation")]
    return {"main_table": rows, "comparisons": comparisons, "ablations": ablations}


def plot_main(rows: Sequence[Mapping[str, Any]]):
    """Grouped bars: ID and OOD accuracy per method with the seed std as error bars."""
    import matplotlib.pyplot as plt  # no backend switch: a notebook kernel must keep its inline one

    # long method names wrap (a 70-character label would squeeze the bars into a third of the width)
    labels = [textwrap.fill(r["method"], 34) for r in rows]
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(rows) + 1.6))
    h = 0.38
    ax.barh(y - h / 2, [100 * r["id_mean"] for r in rows], h, xerr=[100 * r["id_std"] for r in rows],
            color="#4c72b0", label="in distribution (arith, variation, symbolic)")
    ax.barh(y + h / 2, [100 * r["ood_mean"] for r in rows], h, xerr=[100 * r["ood_std"] for r in rows],
            color="#dd8452", label="out of distribution (mcq, yesno)")
    ax.set_yticks(y, labels, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("strict accuracy (%), mean over seeds; bars: std")
    ax.set_xlim(0, 100)
    # above the axes, not inside: inside, the legend covers the last method's bars
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=9, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def write_all(registry: Registry, results: Path, *, runner=None, n_bootstrap: int = 1000,
              validation_limit: int = 100, latent_limit: int = 200, curves: Sequence[str] = (),
              curve_limit: int = 100, validation_generate: str = "",
              validation_scorers: Sequence[str] = ()) -> dict[str, Any]:
    """Write every table and figure of the results stage under ``results``."""
    import matplotlib.pyplot as plt  # local: plotting only: matplotlib is imported where a figure is drawn

    prov = {"pipeline_keys": registry.keys, "profile": registry.profile}
    written: dict[str, Any] = {}
    tables = main_tables(registry, n_bootstrap=n_bootstrap)
    for name, rows in tables.items():
        written[f"main/{name}"] = write_table(f"main/{name}", rows, prov, root=results)
    fig = plot_main(tables["main_table"])
    written["main/accuracy"] = save_figure(fig, "main/accuracy", prov, root=results)
    plt.close(fig)

    # the objective's two paths on this profile's own student and rationales; its tokenizer's thinking words
    if runner is not None and registry.runs:
        for name, rows in objective_checks(registry, runner).items():
            written[f"parity/{name}"] = write_table(f"parity/{name}", rows, prov, root=results)

    # the instrument: the world's calibration table, as the build measured it
    world = runner.world() if runner is not None else None
    if world is not None and (world.path / "calibration.json").is_file():
        table = json.loads((world.path / "calibration.json").read_text())
        written["calibration/calibration"] = write_table("calibration/calibration", table["rows"], prov, root=results)
        written["calibration/rationales"] = write_table("calibration/rationales", rationale_lengths(registry, runner),
                                                        prov, root=results)
    if curves and runner is not None:
        rows = learning_curves(registry, runner, curves, limit=curve_limit)
        written["curves/learning_curves"] = write_table("curves/learning_curves", rows, prov, root=results)
        fig = plot_curves(rows)
        written["curves/learning_curves_fig"] = save_figure(fig, "curves/learning_curves", prov, root=results)
        plt.close(fig)

    models = registry.models()
    seed0 = {mid: m for mid, m in models.items() if m.seed == min(
        x.seed for x in models.values() if x.name == m.name)}
    label = {mid: m.name for mid, m in seed0.items()}
    world_cfg = registry.config.get("world") or ""
    common = dict(results_root=str(results), n_bootstrap=n_bootstrap, world=world_cfg or "configs/world/default.yaml")

    # forgetting: OOD (and ID) accuracy before and after, per method (first seed)
    evals = {label[mid]: registry.evals[mid].dirs[0] for mid in seed0 if mid != "base"}
    written.update(analyze(AnalyzeConfig(analysis="forgetting", name="forgetting", base_eval=registry.evals["base"].dirs[0],
                                         evals=evals, tasks=list(registry.tasks.ood), **common)))
    # latent space: OOD representations, PCA fitted on the base student
    paths = {**registry.runs, **registry.merges}
    if world_cfg:
        latent_models = {label[mid]: paths[mid].path for mid in seed0 if mid != "base"}
        # PCA fitted on the profile's base model (a real model's hidden size is not the world student's)
        base_model = str(runner.base_model()) if runner is not None else ""
        written.update(analyze(AnalyzeConfig(analysis="latent", name="latent", models=latent_models,
                                             base_model=base_model, tasks=list(registry.tasks.ood),
                                             limit=latent_limit, **common)))
    # weight dynamics of the COMPACT-family runs (alpha.jsonl)
    dyn = {label[mid]: paths[mid].path for mid in seed0 if mid in registry.runs and models[mid].method == "compact"}
    if dyn:
        written.update(analyze(AnalyzeConfig(analysis="dynamics", name="dynamics", runs=dyn, **common)))
    # metric validation: score the labelled rationale store with the base student
    if runner is not None and world_cfg:
        scores_dir = _score_store(registry, runner, limit=validation_limit)
        if scores_dir is not None:
            written.update(analyze(AnalyzeConfig(analysis="validation", name="validation", scores=str(scores_dir),
                                                 **common)))
    # the scores on other rationales (a real model's own beside the simulated teachers') and other scorers
    if runner is not None and validation_generate:
        rows = scorer_comparison(registry, runner, generate=validation_generate, scorers=validation_scorers,
                                 limit=validation_limit)
        written["validation/scorers"] = write_table("validation/scorers", rows, prov, root=results)
    log.info("results stage wrote %d artifacts under %s", len(written), results)
    return written


def scorer_comparison(registry: Registry, runner, *, generate: str, scorers: Sequence[str] = (),
                      limit: int = 100) -> list[dict[str, Any]]:
    """Each score's AUC against the rationale's correctness, for each scorer, over the dev rationales of
    ``generate``'s store (built or reused): overall, over the simulated teachers' rationales alone (when a real
    model's own are beside them: correctness without the style difference), and per teacher.

    The scorers are the profile's base model and each of ``scorers`` (``"world"``: the world's base student;
    else a model folder or ``packaged:NAME``). Every scorer reads the same rationales: the first ``limit``
    dev questions of each ID task, all of the store's teachers per question, so the scores are fused across
    the same K branches as in training. Every rationale counts (policy ``keep``): one without a parseable
    answer line is a wrong one, not a reason to drop its question (a real model's own rationales often
    have none). A score whose AUC is below 0.5 ranks wrong rationales higher;
    ``auc_oriented`` is max(AUC, 1 - AUC).
    """
    gcfg = load_generate_config(generate)
    store = generate_store(gcfg)
    simulated = {t.name for t in gcfg.teachers if t.backend == "simulated"}
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for scorer in ["base", *scorers]:
        if scorer == "base":
            student = str(runner.base_model())
            name = registry.config.get("base_model") or "world student"
        elif scorer == "world":
            student, name = str(runner.world().student_path), "world student"
        else:
            student, name = scorer, scorer
        if student in seen:  # e.g. "world" on a profile whose base model is the world's student
            continue
        seen.add(student)
        rows: list[dict[str, Any]] = []
        for task in registry.tasks.id:
            cfg = ScoreConfig(student=student, world=registry.config.get("world") or "",
                              input=ScoreInput(store=str(store), split=f"{task}-dev", limit=limit,
                                                policy="keep"))
            task_rows, _ = run_score(cfg)
            rows += task_rows
        table = score_auc_table(rows, by="teacher")
        if simulated and len(simulated) < len({r["teacher"] for r in rows}):
            # the simulated teachers' rationales alone: correctness without the real model's style beside it
            sim = [{"teacher": "simulated teachers", **r}
                   for r in score_auc_table([r for r in rows if r["teacher"] in simulated])]
            table = [r for r in table if r["teacher"] == "all"] + sim + [r for r in table if r["teacher"] != "all"]
        out += [{"scorer": name, **r} for r in table]
    return out


def objective_checks(registry: Registry, runner, *, n_questions: int = 2) -> dict[str, list[dict]]:
    """Fast vs reference objective on the first ``n_questions`` training questions of the first run, with that
    run's student as it trains (LoRA-wrapped when the run uses LoRA), and the tokenizer's thinking words."""
    first = next(iter(registry.runs.values()))
    tcfg = load_train_config(resolve(first.path) / "config.yaml")
    instances, _ = load_instances(dataclasses.replace(tcfg, data=dataclasses.replace(tcfg.data,
                                                                                     max_instances=n_questions)))
    tokenizer = load_tokenizer(runner.base_model())
    model = load_student(tcfg, runner.base_model())
    rows = objective_parity(model, tokenizer, instances[:n_questions], max_length=tcfg.data.max_length,
                            cfg=tcfg.objective)
    return {"objective_paths": rows, "thinking_words": thinking_words_table(tokenizer)}


def rationale_lengths(registry: Registry, runner) -> list[dict]:
    """Per teacher: training branches, their token lengths (prompt + rationale, chat-formatted) and how many
    the training max_length would cut (the instrument's second gate: none may be cut)."""
    first = next(iter(registry.runs.values()), None)
    if first is None:
        return []
    tcfg = load_train_config(resolve(first.path) / "config.yaml")
    tokenizer = load_tokenizer(runner.base_model())
    instances = [i for key in tcfg.data.split for i in build_instances(runner.store(), key)]
    rows = []
    for name in dict.fromkeys(t for inst in instances for t in inst.teachers):
        lengths = sorted(len(encode_question(inst, tokenizer, teacher_index={name: 0},
                                             branches=[inst.teachers.index(name)], max_length=10**9).branches[0])
                         for inst in instances)
        rows.append({"teacher": name, "branches": len(lengths), "median_tokens": lengths[len(lengths) // 2],
                     "p95_tokens": lengths[int(0.95 * (len(lengths) - 1))], "max_tokens": lengths[-1],
                     "max_length": tcfg.data.max_length,
                     "cut": sum(n > tcfg.data.max_length for n in lengths)})
    return rows


def learning_curves(registry: Registry, runner, names: Sequence[str], *, limit: int = 100) -> list[dict]:
    """In-distribution accuracy of each snapshot a curve run kept (step 0 = the base student).

    Each snapshot's parameters go into the run's own student (LoRA-wrapped when the run used LoRA) and
    answer the first ``limit`` test questions of every ID task with the profile's evaluation settings.
    Cached under ``artifacts/curves/`` by the runs' keys, the snapshots and the evaluation config.
    """
    id_tasks = list(registry.tasks.id)
    runs = registry.runs
    chosen = {}
    for name in names:
        mids = sorted((m for m in runs if runs[m].name == name), key=lambda m: runs[m].seed)
        if mids:
            chosen[name] = mids[0]
    ecfg = eval_config_for_curves(registry, limit)
    key = config_hash({"runs": {n: registry.keys["runs"][m] for n, m in chosen.items()}, "eval": ecfg,
                       "tasks": id_tasks})
    out = artifacts_dir() / "curves" / key
    if is_complete(out):
        return json.loads((out / "curves.json").read_text())
    examples = load_examples(ecfg.data)
    tokenizer = load_tokenizer(runner.base_model())
    rows: list[dict] = []

    def score(model, name, label, step):
        res = evaluate(model, tokenizer, examples, ecfg)
        accs = {t: res.metrics[t]["strict"] for t in id_tasks if t in res.metrics}
        rows.append({"method": label, "name": name, "step": step, **accs,
                     "id_mean": float(np.mean(list(accs.values())))})

    for name, mid in chosen.items():
        run_dir = resolve(runs[mid].path)
        tcfg = load_train_config(run_dir / "config.yaml")
        model = load_student(tcfg, runner.base_model())
        score(model, name, runs[mid].label, 0)
        for snap in sorted((run_dir / "curve").glob("step-*.safetensors")):
            load_trainable_state(model, load_file(str(snap)), where=str(snap))
            score(model, name, runs[mid].label, int(snap.stem.split("-")[1]))
        log.info("learning curve of %s: %d points", name, sum(r["name"] == name for r in rows))
    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / "curves.json").write_text(json.dumps(rows, indent=1))
        (tmp / "manifest.json").write_text(json.dumps(manifest(ecfg, kind="curves"), default=str, indent=1))
    return rows


def step_costs(registry: Registry) -> dict[str, Any]:
    """Measured training cost of this profile's runs: seconds per optimizer step (each run's wall time over
    its steps, as the pipeline's workers ran it), split into multi-teacher and single-teacher runs."""
    per: dict[str, list[float]] = {"multi": [], "single": []}
    qps = None
    for meta in registry.runs.values():
        summary = resolve(meta.path) / "summary.json"
        if not summary.is_file():
            continue
        s = json.loads(summary.read_text())
        if not s.get("steps"):
            continue
        per["single" if meta.method == "single" else "multi"].append(s["time_s"] / s["steps"])
        if qps is None:
            qps = load_train_config(resolve(meta.path) / "config.yaml").optim.questions_per_step
    return {"questions_per_step": qps,
            **{f"{k}_runs": len(v) for k, v in per.items()},
            **{f"{k}_s_per_step": float(np.mean(v)) if v else None for k, v in per.items()}}


def budget_table(registry: Registry, curve_rows: Sequence[Mapping[str, Any]], *,
                 workers: int | None = None) -> list[dict]:
    """Budget against accuracy: for each step the learning curves measured, the questions a run has seen,
    each curve method's ID accuracy, and the training stage's time for the whole grid at that budget
    (projected from the measured seconds per step of its multi- and single-teacher runs on ``workers``)."""
    cost = step_costs(registry)
    workers = workers or int(registry.config.get("workers") or 1)
    steps = sorted({int(r["step"]) for r in curve_rows})
    methods = list(dict.fromkeys(r["method"] for r in curve_rows))
    acc = {(r["method"], int(r["step"])): r["id_mean"] for r in curve_rows}
    out = []
    for step in steps:
        row: dict[str, Any] = {"step": step,
                               "questions": step * cost["questions_per_step"] if cost["questions_per_step"] else None}
        for m in methods:
            row[m] = acc.get((m, step))
        cpu = sum((cost[f"{k}_runs"] * step * (cost[f"{k}_s_per_step"] or 0.0)) for k in ("multi", "single"))
        row["grid_training_min"] = round(cpu / workers / 60, 1)
        out.append(row)
    return out


def sample_sheet(registry: Registry, *, per_task: int = 2, tasks: Sequence[str] | None = None,
                 teachers: Sequence[Any] = (), world=None) -> list[dict]:
    """Per-sample outputs (lm-eval's ``--log_samples`` idea) for the first ``per_task`` test questions of each
    task: the question, the gold answer, every method's student answer (its lowest seed) with the extracted
    answer and whether it is right, and, when ``teachers`` (simulated teacher objects) and ``world`` are given,
    the rationale each teacher writes for the question (test questions are never in the training store)."""
    models = registry.models()
    tasks = list(tasks or [*registry.tasks.id, *registry.tasks.ood])
    first: dict[str, str] = {}
    for mid in sorted(registry.evals, key=lambda m: (models[m].seed, m)):
        first.setdefault(models[mid].name, mid)
    samples = {name: {s["id"]: s for s in _samples(registry, mid)} for name, mid in first.items()}
    if not samples:
        return []
    base = samples.get("base") or next(iter(samples.values()))
    chosen: list[dict] = []
    for task in tasks:
        chosen += [s for s in base.values() if s["task"] == task][:per_task]
    wanted = {s["id"] for s in chosen}
    examples = {} if world is None else {ex.id: ex for task in tasks for ex in world.examples(task, "test")
                                         if ex.id in wanted}
    rows = []
    for s in chosen:
        ex = examples.get(s["id"])
        row = {"id": s["id"], "task": s["task"], "question": ex.question if ex is not None else s["prompt"],
               "gold": s["gold"], "answers": [], "teachers": []}
        for name, mid in first.items():
            got = samples[name].get(s["id"])
            if got is not None:
                row["answers"].append({"method": models[mid].label, "name": name, "seed": models[mid].seed,
                                       "generation": got["generation"], "extracted": got["extracted_strict"],
                                       "correct": bool(got["correct_strict"])})
        for t in teachers if ex is not None else ():
            gen = t.generate_one(ex, 0)
            row["teachers"].append({"teacher": t.name, "rationale": gen.text,
                                    "correct": bool(gen.meta.get("final_correct"))})
        rows.append(row)
    return rows


def eval_config_for_curves(registry: Registry, limit: int):
    """The profile's first evaluation config, restricted to the ID tasks' first ``limit`` questions."""


    cfg = from_dict(PipelineConfig, registry.config)
    tasks = ",".join(registry.tasks.id)
    cfg = dataclasses.replace(cfg, eval_overrides=[*cfg.eval_overrides, f"data.tasks=[{tasks}]", f"data.limit={limit}"])
    return eval_configs_for(cfg, "<curve>")[0]


def plot_curves(rows: Sequence[Mapping[str, Any]]):
    """In-distribution accuracy against the optimizer step, one line per method."""
    import matplotlib.pyplot as plt  # local: plotting only: matplotlib is imported where a figure is drawn

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for name in dict.fromkeys(r["name"] for r in rows):
        pts = sorted((r["step"], 100 * r["id_mean"]) for r in rows if r["name"] == name)
        label = next(r["method"] for r in rows if r["name"] == name)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
    ax.set_xlabel("optimizer step", fontsize=11)
    ax.set_ylabel("ID accuracy (%), test subset", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=10)
    fig.tight_layout()
    return fig


def _score_store(registry: Registry, runner, *, limit: int = 150) -> Path | None:
    """Score the store's dev rationales (every ID task) with the base student, HSIC included, for validation."""


    store = runner.store()
    cfgs = [ScoreConfig(student=str(runner.base_model()), world=registry.config["world"], hsic=True,
                        input=ScoreInput(store=str(store), split=f"{task}-dev", limit=limit))
            for task in registry.tasks.id]
    out = artifacts_dir() / "score" / f"validation-{config_hash([c for c in cfgs])}"
    if is_complete(out):
        return out
    rows = []
    for cfg in cfgs:
        task_rows, _ = run_score(cfg)
        rows += [{**r, "task": cfg.input.split.rsplit("-", 1)[0]} for r in task_rows]
    with atomic_dir(out, overwrite=True) as tmp:
        with open(tmp / "scores.jsonl", "w") as fh:
            for r in rows:
                fh.write(json.dumps(r, default=float) + "\n")
        (tmp / "manifest.json").write_text(json.dumps(manifest([c for c in cfgs], kind="score-validation"),
                                                      default=str, indent=1))
    return out
