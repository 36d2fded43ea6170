r"""The pipeline's results stage: the tables and figures the book shows, from one registry of runs.

Input: the registry the pipeline assembles (runs, merges, their evaluation folders and metrics). Output,
under ``<results>/``, each with provenance (:mod:`compact.publish.results`):

* ``main/main_table``: every method, per-task strict accuracy, the in-distribution (ID) and
  out-of-distribution (OOD) averages as mean $\pm$ std over seeds, each seed's value, and a 95% interval that
  counts seed and question variance (:func:`compact.eval.stats.seed_question_interval`; a hierarchical
  bootstrap beside it);
* ``main/comparisons``: COMPACT minus each other method (or the profile's ``comparisons``) over matched seeds
  and questions (:func:`compact.eval.stats.paired_comparison`), for ID and OOD accuracy, with the per-seed
  differences and the smallest difference the seeds could resolve;
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

from ..analysis import AnalyzeConfig, analyze
from ..analysis.parity import objective_parity, thinking_words_table
from ..analysis.scoring import ScoreConfig, ScoreInput, run_score
from ..analysis.validation import score_auc_table
from ..config import config_hash, from_dict
from ..errors import ConfigError
from ..eval.evaluate import EvalResult, load_examples
from ..eval.stats import (
    constant_grid,
    difference_grid,
    hierarchical_bootstrap,
    mean_std,
    paired_comparison,
    seed_question_interval,
)
from ..inputs.encode import encode_question
from ..inputs.instances import load_instances
from ..inputs.model import load_student, load_tokenizer
from ..log import get_logger
from ..paths import artifacts_dir, resolve
from ..provenance import atomic_dir, is_complete, manifest
from ..teachers.generate import generate_store
from ..teachers.generate import load_config as load_generate_config
from ..teachers.view import build_instances
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


def _task_acc(metrics: Mapping[str, Any], tasks: Sequence[str]) -> float:
    vals = [metrics[t]["strict"] for t in tasks if t in metrics]
    return float(np.mean(vals)) if vals else math.nan


def _seed_grid(samples: Mapping[str, Sequence[Mapping[str, Any]]], models: Mapping[str, Any], mids: Sequence[str],
               tasks: Sequence[str]) -> dict[int, dict[str, float]]:
    """Per seed, strict correctness per question (``task/id``) of the given tasks (a :data:`SeedGrid`)."""
    tasks = set(tasks)
    return {models[mid].seed: {f"{s['task']}/{s['id']}": float(s["correct_strict"]) for s in samples[mid]
                               if s["task"] in tasks} for mid in mids}


def _pct_seeds(values: Mapping[Any, float], signed: bool = False) -> str:
    """``"s0 69.1, s1 68.8"`` (percentages)."""
    return ", ".join(f"s{k} {100 * v:{'+' if signed else ''}.1f}" for k, v in values.items())


def requested_comparisons(registry: Registry, names: Sequence[str]) -> list[tuple[str, str, bool]]:
    """The pairs the comparisons table shows: the profile's ``comparisons`` key, or COMPACT minus every other
    method (matched seeds) when the key is empty or absent (a registry written before the key existed)."""
    wanted = registry.config.get("comparisons") or []
    if wanted:
        return [(c["a"], c["b"], bool(c.get("unpaired", False))) for c in wanted]
    if MAIN_REF not in names:
        return []
    return [(MAIN_REF, n, False) for n in names if n != MAIN_REF]


def main_tables(registry: Registry, *, n_bootstrap: int = 1000, seed: int = 0) -> dict[str, list[dict]]:
    """The main table, the comparisons (COMPACT minus each other method, or the profile's ``comparisons``) and
    the ablation table.

    Every interval is seed- and question-aware (:func:`compact.eval.stats.seed_question_interval`, the
    hierarchical bootstrap beside it as ``*_boot_low/high``); a comparison is over matched seeds
    (:func:`compact.eval.stats.paired_comparison`): the base student, evaluated once, counts for every seed.
    """
    id_tasks, ood_tasks = registry.tasks.id, registry.tasks.ood
    models = registry.models()
    by_name: dict[str, list[str]] = {}
    for mid, m in models.items():
        by_name.setdefault(m.name, []).append(mid)
    for mids in by_name.values():
        mids.sort(key=lambda mid: models[mid].seed)
    samples = {mid: _samples(registry, mid) for mids in by_name.values() for mid in mids}
    # tasks of further eval configs (e.g. world questions read through the GSM8K adapter): a column each,
    # outside the ID and OOD means
    extra_tasks = sorted({t for e in registry.evals.values() for t in e.metrics} - {*id_tasks, *ood_tasks})
    rows = []
    for name, mids in by_name.items():
        m0 = models[mids[0]]
        metrics = [registry.evals[mid].metrics for mid in mids]
        row: dict[str, Any] = {"method": m0.label, "name": name, "group": m0.group, "seeds": len(mids),
                               "seed_ids": [models[mid].seed for mid in mids]}
        for t in [*id_tasks, *ood_tasks, *extra_tasks]:
            row[t] = float(np.mean([m[t]["strict"] for m in metrics if t in m])) if any(t in m for m in metrics) \
                else math.nan
        for t in extra_tasks:  # its own bootstrap interval (over questions; the first seed's evaluation)
            m = next((m for m in metrics if t in m), None)
            row[f"{t}_ci_low"] = m[t]["strict_ci_low"] if m else math.nan
            row[f"{t}_ci_high"] = m[t]["strict_ci_high"] if m else math.nan
        for part, tasks in (("id", id_tasks), ("ood", ood_tasks)):
            mean, std = mean_std(_task_acc(m, tasks) for m in metrics)
            grid = _seed_grid(samples, models, mids, tasks)
            iv = seed_question_interval(grid)
            boot = hierarchical_bootstrap(grid, n_resamples=n_bootstrap, seed=seed)
            row[f"{part}_mean"], row[f"{part}_std"] = mean, std
            row[f"{part}_ci_low"], row[f"{part}_ci_high"] = iv.low, iv.high
            row[f"{part}_boot_low"], row[f"{part}_boot_high"] = boot.low, boot.high
            row[f"{part}_per_seed"] = [round(v, 6) for v in iv.per_seed.values()]
            row[f"{part}_per_seed_text"] = _pct_seeds(iv.per_seed)
        row["ci_method"] = "seeds+questions, t" if len(mids) > 1 else "questions only (n_seeds=1)"
        row["id_lenient"] = float(np.mean([np.mean([m[t]["lenient"] for t in id_tasks if t in m]) for m in metrics]))
        rows.append(row)
    order = {"base": 0, "main": 1, "variant": 2, "baseline": 3, "control": 4, "ablation": 5, "budget": 6}
    rows.sort(key=lambda r: (order.get(r["group"], 9), -r["id_mean"] if not math.isnan(r["id_mean"]) else 0))

    comparisons = []
    configured = bool(registry.config.get("comparisons"))
    for a, b, unpaired in requested_comparisons(registry, list(by_name)):
        missing = [n for n in (a, b) if n not in by_name]
        if missing:
            raise ConfigError(f"config key 'comparisons': no evaluated run named {missing[0]!r} "
                              f"(evaluated: {', '.join(by_name)})")
        who = "COMPACT" if a == MAIN_REF else models[by_name[a][0]].label
        for part, tasks in (("id", id_tasks), ("ood", ood_tasks)):
            ga = _seed_grid(samples, models, by_name[a], tasks)
            gb = _seed_grid(samples, models, by_name[b], tasks)
            # the base student is deterministic (evaluated once): the same outcomes for every seed of the other
            if b == "base" and a != "base":
                gb = constant_grid(next(iter(gb.values())), ga)
            elif a == "base" and b != "base":
                ga = constant_grid(next(iter(ga.values())), gb)
            # every-method default: a method with no seed in common with COMPACT is compared unpaired (labelled);
            # a configured pair without a common seed was refused by make_plan unless it asked for unpaired
            free = unpaired or (not configured and not set(ga) & set(gb))
            cmp = paired_comparison(ga, gb, unpaired=free, names=(a, b))
            if cmp.verdict in ("better", "worse"):
                verdict = f"{who} {cmp.verdict}"
            elif cmp.verdict == "not resolved":
                verdict = f"not resolved (resolvable: ±{100 * cmp.resolvable:.1f} points)"
            else:
                verdict = cmp.verdict
            boot = (hierarchical_bootstrap(difference_grid(ga, gb), n_resamples=n_bootstrap, seed=seed)
                    if cmp.paired and len(cmp.seeds) > 1 else None)
            comparisons.append({
                "split": part.upper(), "method": models[by_name[a][0]].label, "versus": models[by_name[b][0]].label,
                "group": models[by_name[b][0]].group,
                "seeds": (",".join(map(str, cmp.seeds)) if cmp.paired
                          else f"{a}: {','.join(map(str, cmp.seeds_a))}; {b}: {','.join(map(str, cmp.seeds_b))}"),
                "paired": cmp.label, "n_questions": cmp.n_questions, "compact_minus_other": cmp.estimate,
                "ci_low": cmp.low, "ci_high": cmp.high,
                "per_seed": [round(v, 6) for v in cmp.per_seed.values()],
                "per_seed_text": (_pct_seeds(cmp.per_seed, signed=True) if cmp.paired else
                                  f"{a}: {_pct_seeds(cmp.per_seed_a)}; {b}: {_pct_seeds(cmp.per_seed_b)}"),
                "dropped_seeds": "; ".join(f"{k}: {','.join(map(str, v))}" for k, v in cmp.dropped_seeds.items()),
                "resolvable": cmp.resolvable, "boot_low": boot.low if boot else math.nan,
                "boot_high": boot.high if boot else math.nan, "verdict": verdict,
            })
    ablations = [r for r in rows if r["group"] in ("main", "variant", "ablation")]
    return {"main_table": rows, "comparisons": comparisons, "ablations": ablations}


def _alpha_log(path: str) -> Path | None:
    p = resolve(path) / "alpha.jsonl"
    return p if p.is_file() and p.stat().st_size else None


def seed_analyses(registry: Registry, prov, results: Path, *, n_windows: int = 20) -> dict[str, Any]:
    """The analyses that read every seed of a run, not its first:

    * ``dynamics/effective_teachers``: per multi-teacher run and seed, the effective number of teachers of its
      alpha (:func:`compact.analysis.dynamics.effective_teachers`, over all steps) beside its ID accuracy, and
      ``dynamics/effective_teachers_summary`` (Spearman's rho over the (run, seed) points and over the runs'
      means; the figures, :func:`compact.analysis.dynamics.plot_accuracy_vs_effective_teachers` and
      :func:`~compact.analysis.dynamics.plot_seed_dynamics`, are drawn by the book's pages from these tables
      and the runs' logs);
    * ``dynamics/what_moved_first``: per COMPACT seed, for the teacher its alpha favours most, the first step
      window where that teacher's weight leaves uniform and which score's contribution to S moved first
      (:func:`compact.analysis.dynamics.what_moved_first`);
    * ``forgetting/seeds``: per method, OOD (and mcq, yes/no) accuracy after distillation minus the base
      student's over every seed, with the seed- and question-aware interval of the main comparisons.
    """
    from ..analysis.dynamics import (
        accuracy_vs_effective_teachers,
        effective_teachers,
        mean_alpha_per_teacher,
        score_contributions,
        what_moved_first,
    )

    written: dict[str, Any] = {}
    runs = registry.runs
    id_tasks = registry.tasks.id
    neff_rows = []
    for mid, m in runs.items():
        if m.method == "single" or mid not in registry.evals:
            continue
        log_path = _alpha_log(m.path)
        if log_path is None:
            continue
        eff = effective_teachers(log_path)["overall"]
        neff_rows.append({"method": m.label, "name": m.name, "seed": m.seed, "group": m.group,
                          "effective_teachers": eff["exp_entropy"], "inverse_simpson": eff["inverse_simpson"],
                          "id_accuracy": _task_acc(registry.evals[mid].metrics, id_tasks)})
    if neff_rows:
        written["dynamics/effective_teachers"] = write_table("dynamics/effective_teachers", neff_rows, prov,
                                                             root=results)
        stats = accuracy_vs_effective_teachers(neff_rows)
        written["dynamics/effective_teachers_summary"] = write_table(
            "dynamics/effective_teachers_summary", [stats], prov, root=results)
    moved, by_name = [], {}
    for mid, m in runs.items():
        if m.method == "compact" and _alpha_log(m.path) is not None:
            by_name.setdefault(m.name, []).append(mid)
    for name, mids in by_name.items():
        mids.sort(key=lambda x: runs[x].seed)
        if name != MAIN_REF:
            continue
        for x in mids:
            src = _alpha_log(runs[x].path)
            favoured = max(mean_alpha_per_teacher(resolve(runs[x].path)).items(), key=lambda kv: kv[1])
            windows = score_contributions(src, n_windows=n_windows)
            row = what_moved_first(windows, favoured[0])
            moved.append({"seed": runs[x].seed, "teacher": favoured[0], "mean_alpha": favoured[1],
                          "id_accuracy": _task_acc(registry.evals[x].metrics, id_tasks) if x in registry.evals
                          else math.nan,
                          **{k: v for k, v in row.items() if not isinstance(v, (dict, list))}})
    if moved:
        written["dynamics/what_moved_first"] = write_table("dynamics/what_moved_first", moved, prov, root=results)
    forgetting = forgetting_over_seeds(registry)
    if forgetting:
        written["forgetting/seeds"] = write_table("forgetting/seeds", forgetting, prov, root=results)
    return written


def forgetting_over_seeds(registry: Registry) -> list[dict[str, Any]]:
    """Per method: OOD accuracy after distillation minus the base student's, over every seed (the base,
    evaluated once, counts for every seed), per OOD task and pooled, with the seed- and question-aware interval
    (:func:`compact.eval.stats.paired_comparison`)."""
    models = registry.models()
    if "base" not in registry.evals:
        return []
    by_name: dict[str, list[str]] = {}
    for mid, m in models.items():
        if mid != "base" and mid in registry.evals:
            by_name.setdefault(m.name, []).append(mid)
    samples = {mid: _samples(registry, mid) for mids in by_name.values() for mid in mids}
    samples["base"] = _samples(registry, "base")
    base_grid = {t: next(iter(_seed_grid(samples, models, ["base"], [t]).values())) for t in registry.tasks.ood}
    base_all = next(iter(_seed_grid(samples, models, ["base"], registry.tasks.ood).values()))
    rows = []
    for name, mids in by_name.items():
        mids.sort(key=lambda x: models[x].seed)
        grid = _seed_grid(samples, models, mids, registry.tasks.ood)
        cmp = paired_comparison(grid, constant_grid(base_all, grid), names=(name, "base"))
        row: dict[str, Any] = {"method": models[mids[0]].label, "name": name, "seeds": len(mids),
                               "ood_delta": cmp.estimate, "ci_low": cmp.low, "ci_high": cmp.high,
                               "per_seed": _pct_seeds(cmp.per_seed, signed=True)}
        for t in registry.tasks.ood:
            g = _seed_grid(samples, models, mids, [t])
            after = [float(np.mean(list(v.values()))) for v in g.values() if v]
            row[f"{t}_before"] = float(np.mean(list(base_grid[t].values()))) if base_grid[t] else math.nan
            row[f"{t}_after"] = float(np.mean(after)) if after else math.nan
            row[f"{t}_after_min"] = float(min(after)) if after else math.nan
        rows.append(row)
    return rows


def _dots(ax, y: float, values: Sequence[float], color: str) -> None:
    """Per-seed values as dots, spread deterministically around ``y`` (no random jitter: stable figures)."""
    n = len(values)
    offs = np.linspace(-0.12, 0.12, n) if n > 1 else np.zeros(1)
    ax.scatter([100 * v for v in values], y + offs[:n], s=18, color=color, alpha=0.75, zorder=3,
               edgecolors="white", linewidths=0.4)


def plot_main(rows: Sequence[Mapping[str, Any]]):
    """ID and OOD accuracy per method: each seed a dot, the mean a bar tick and the seed- and question-aware
    95% interval a line (one seed: the question-only interval, drawn dashed)."""
    import matplotlib.pyplot as plt  # no backend switch: a notebook kernel must keep its inline one

    # long method names wrap (a 70-character label would squeeze the panels into a third of the width)
    labels = [textwrap.fill(f"{r['method']} ({r['seeds']} seed{'s' if r['seeds'] != 1 else ''})", 34) for r in rows]
    y = np.arange(len(rows))
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.5 * len(rows) + 1.8), sharey=True)
    for ax, part, color, title in ((axes[0], "id", "#4c72b0", "in distribution (arith, variation, symbolic)"),
                                   (axes[1], "ood", "#dd8452", "out of distribution (mcq, yesno)")):
        for i, r in enumerate(rows):
            lo, hi = r.get(f"{part}_ci_low"), r.get(f"{part}_ci_high")
            if lo is not None and hi is not None and not (math.isnan(lo) or math.isnan(hi)):
                ax.plot([100 * lo, 100 * hi], [i, i], color=color, lw=2.2, alpha=0.55, zorder=2,
                        ls="-" if r["seeds"] > 1 else "--")
            ax.plot([100 * r[f"{part}_mean"]] * 2, [i - 0.28, i + 0.28], color="black", lw=1.6, zorder=4)
            _dots(ax, i, r.get(f"{part}_per_seed") or [], color)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("strict accuracy (%)")
        ax.set_xlim(0, 100)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, labels, fontsize=9)
    axes[0].invert_yaxis()
    fig.text(0.5, 0.005, "dots: seeds; black tick: mean over seeds; line: 95% interval over seeds and questions "
             "(dashed: one seed, questions only)", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def plot_comparisons(rows: Sequence[Mapping[str, Any]]):
    """``method - versus`` per comparison and split: the estimate, its 95% interval over matched seeds and
    questions, each seed's difference as a dot, and zero; a pair without a verdict shows its seeds only."""
    import matplotlib.pyplot as plt  # no backend switch: a notebook kernel must keep its inline one

    splits = list(dict.fromkeys(r["split"] for r in rows)) or ["ID"]
    pairs = list(dict.fromkeys((r.get("method", "COMPACT"), r["versus"]) for r in rows))
    one_ref = len({p[0] for p in pairs}) == 1
    labels = [textwrap.fill(b if one_ref else f"{a} − {b}", 34) for a, b in pairs]
    fig, axes = plt.subplots(1, len(splits), figsize=(5.5 * len(splits), 0.45 * len(pairs) + 1.8), sharey=True,
                             squeeze=False)
    for ax, split in zip(axes[0], splits):
        ax.axvline(0, color="black", lw=0.8)
        for r in rows:
            if r["split"] != split:
                continue
            i = pairs.index((r.get("method", "COMPACT"), r["versus"]))
            lo, hi = r["ci_low"], r["ci_high"]
            color = ("#2a9d4b" if str(r["verdict"]).endswith("better") else "#c0392b"
                     if str(r["verdict"]).endswith("worse") else "#7f7f7f")
            if lo is not None and hi is not None and not (math.isnan(lo) or math.isnan(hi)):
                ax.plot([100 * lo, 100 * hi], [i, i], color=color, lw=2.4, alpha=0.6, zorder=2)
                ax.plot([100 * r["compact_minus_other"]] * 2, [i - 0.28, i + 0.28], color="black", lw=1.6, zorder=4)
            _dots(ax, i, r.get("per_seed") or [], color)
        ax.set_title(f"{split}", fontsize=10)
        ax.set_xlabel("difference (points)" if not one_ref else f"{pairs[0][0]} minus method (points)")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(np.arange(len(pairs)), labels, fontsize=9)
    axes[0][0].invert_yaxis()
    fig.text(0.5, 0.005, "dots: per matched seed; line: 95% interval over seeds and questions (green: better, red: "
             "worse, grey: not resolved); no line: one matched seed", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
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
        tradeoff = matched_id_tradeoff(rows)
        if tradeoff:
            written["curves/matched_id_tradeoff"] = write_table("curves/matched_id_tradeoff", tradeoff, prov,
                                                                root=results)

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
    # every seed: alpha per teacher and the effective number of teachers, what moved first, accuracy against
    # concentration over every multi-teacher run, forgetting over seeds
    written.update(seed_analyses(registry, prov, results))
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
    """Accuracy of each snapshot a curve run kept (step 0 = the base student), per seed.

    Each snapshot's parameters go into the run's own student (LoRA-wrapped when the run used LoRA) and answer the
    first ``limit`` test questions of every ID task (and of every OOD task when the profile sets ``curve_ood``)
    with the profile's evaluation settings (:func:`compact.analysis.curves.snapshot_curve`). The profile's
    ``curve_seeds`` says whether the first seed of each curve run kept snapshots or every seed. Cached under
    ``artifacts/curves/`` by the runs' keys, the snapshots and the evaluation config.
    """
    from ..analysis.curves import snapshot_curve

    id_tasks, ood_tasks = list(registry.tasks.id), list(registry.tasks.ood)
    every_seed = registry.config.get("curve_seeds", "first") == "all"
    with_ood = bool(registry.config.get("curve_ood", False))
    runs = registry.runs
    chosen: dict[str, str] = {}
    for name in names:
        mids = sorted((m for m in runs if runs[m].name == name), key=lambda m: runs[m].seed)
        for mid in (mids if every_seed else mids[:1]):
            chosen[mid] = name
    ecfg = eval_config_for_curves(registry, limit, ood=with_ood)
    key = config_hash({"runs": {mid: registry.keys["runs"][mid] for mid in chosen}, "eval": ecfg,
                       "tasks": id_tasks + (ood_tasks if with_ood else [])})
    out = artifacts_dir() / "curves" / key
    if is_complete(out):
        return json.loads((out / "curves.json").read_text())
    examples = load_examples(ecfg.data)
    tokenizer = load_tokenizer(runner.base_model())
    base_rows: list[dict] | None = None  # the base student is the same step 0 for every run
    rows: list[dict] = []
    for mid, name in chosen.items():
        pts = snapshot_curve(resolve(runs[mid].path), runner.base_model(), tokenizer, examples, ecfg,
                             id_tasks=id_tasks, ood_tasks=ood_tasks if with_ood else (),
                             include_base=base_rows is None)
        if base_rows is None:
            base_rows = [p for p in pts if p["step"] == 0]
        else:
            pts = base_rows + pts
        rows += [{"method": runs[mid].label, "name": name, "seed": runs[mid].seed, **p} for p in pts]
        log.info("learning curve of %s: %d points", mid, len(pts))
    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / "curves.json").write_text(json.dumps(rows, indent=1))
        (tmp / "manifest.json").write_text(json.dumps(manifest(ecfg, kind="curves"), default=str, indent=1))
    return rows


def matched_id_tradeoff(rows: Sequence[Mapping[str, Any]], levels: Sequence[float] = ()) -> list[dict]:
    """OOD accuracy at matched ID accuracy along training: each curve (method, seed) read by linear interpolation
    at each ID level it crosses (levels: every 10 points between the curves' common range by default), then per
    method the mean and the per-seed values. Curves without OOD points give no rows."""
    curves: dict[tuple[str, int], list[tuple[float, float]]] = {}
    label: dict[str, str] = {}
    for r in rows:
        if r.get("ood_mean") is None or r.get("id_mean") is None:
            continue
        curves.setdefault((r["name"], int(r.get("seed", 0))), []).append((int(r["step"]), r["id_mean"], r["ood_mean"]))
        label[r["name"]] = r["method"]
    if not curves:
        return []
    if not levels:
        hi = min(max(p[1] for p in pts) for pts in curves.values())
        levels = [x / 10 for x in range(1, 10) if x / 10 <= hi]
    out = []
    for name in dict.fromkeys(n for n, _ in curves):
        for level in levels:
            per_seed = {}
            for (n, seed), pts in curves.items():
                if n != name:
                    continue
                pts = sorted(pts)
                for (s0, i0, o0), (s1, i1, o1) in zip(pts, pts[1:]):
                    if i0 < level <= i1 and i1 > i0:  # the first time the curve reaches the level
                        per_seed[seed] = o0 + (o1 - o0) * (level - i0) / (i1 - i0)
                        break
            if per_seed:
                vals = list(per_seed.values())
                out.append({"method": label[name], "name": name, "id_level": level, "ood_mean": float(np.mean(vals)),
                            "ood_min": float(min(vals)), "ood_max": float(max(vals)), "seeds": len(vals),
                            "per_seed": _pct_seeds(per_seed)})
    return out


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


def eval_config_for_curves(registry: Registry, limit: int, *, ood: bool = False):
    """The profile's first evaluation config, restricted to the ID tasks' (and with ``ood`` the OOD tasks') first
    ``limit`` questions."""


    cfg = from_dict(PipelineConfig, registry.config)
    tasks = ",".join([*registry.tasks.id, *(registry.tasks.ood if ood else [])])
    cfg = dataclasses.replace(cfg, eval_overrides=[*cfg.eval_overrides, f"data.tasks=[{tasks}]", f"data.limit={limit}"])
    return eval_configs_for(cfg, "<curve>")[0]


def plot_curves(rows: Sequence[Mapping[str, Any]]):
    """ID (and, when scored, OOD) accuracy against the optimizer step: per method the mean over seeds as a line
    and the seeds' range as a band (one seed: the line alone)."""
    import matplotlib.pyplot as plt  # local: plotting only: matplotlib is imported where a figure is drawn

    parts = [("id_mean", "ID accuracy (%), strict, test subset")]
    if any(r.get("ood_mean") is not None for r in rows):
        parts.append(("ood_mean", "OOD accuracy (%), option log-likelihood, test subset"))
    fig, axes = plt.subplots(1, len(parts), figsize=(7.5 * len(parts), 4.4), squeeze=False)
    for ax, (key, ylabel) in zip(axes[0], parts):
        for name in dict.fromkeys(r["name"] for r in rows):
            mine = [r for r in rows if r["name"] == name and r.get(key) is not None]
            steps = sorted({int(r["step"]) for r in mine})
            vals = [[100 * r[key] for r in mine if int(r["step"]) == s] for s in steps]
            label = next(r["method"] for r in mine)
            seeds = len({r.get("seed", 0) for r in mine})
            line, = ax.plot(steps, [np.mean(v) for v in vals], marker="o", ms=3,
                            label=f"{label} ({seeds} seed{'s' if seeds != 1 else ''})")
            if seeds > 1:
                ax.fill_between(steps, [min(v) for v in vals], [max(v) for v in vals], color=line.get_color(),
                                alpha=0.18, lw=0)
        ax.set_xlabel("optimizer step", fontsize=11)
        ax.set_ylabel(ylabel, fontsize=11)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=9)
    fig.text(0.5, 0.005, "line: mean over seeds; band: the seeds' range", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
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
