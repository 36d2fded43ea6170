"""Analyses: latent shift (PCA, CKA), metric validation, weight dynamics, forgetting.

    compact analyze --config configs/eval/analyze_latent.yaml --set base_model=<folder> --set models.compact=<folder>
    compact analyze --set analysis=validation --set scores=artifacts/score/<name>
    compact analyze --set analysis=dynamics --set runs.compact=artifacts/runs/<run>
    compact analyze --set analysis=forgetting --set base_eval=artifacts/eval/<base> --set evals.compact=<dir>

Each module holds the math and a Python API the pipeline and notebooks call (:mod:`.latent`,
:mod:`.validation`, :mod:`.dynamics`, :mod:`.forgetting`); this entry point only wires files to them and
writes the tables and figures with :mod:`compact.publish.results` (provenance = this config).
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, Literal

from ..config import add_config_arguments, load
from ..data.benchmarks import read_local_rows
from ..errors import ConfigError, DataError
from ..eval.evaluate import EvalResult
from ..inputs.model import load_model, load_tokenizer
from ..log import get_logger
from ..paths import resolve
from ..publish.results import save_figure, write_table
from ..world.build import World, world_from
from .dynamics import (
    alpha_windows,
    curriculum_trend,
    plot_alpha_dynamics,
    read_alpha_log,
)
from .forgetting import forgetting_table, plot_forgetting
from .latent import hidden_representations, pca_shift, plot_pca_shift
from .validation import SCORES, correlation_matrix, proxy_vs_estimator, score_auc_table

log = get_logger("analysis")


@dataclasses.dataclass
class AnalyzeConfig:
    """Which analysis to run and on which artifacts."""
    analysis: Literal["latent", "validation", "dynamics", "forgetting"] = "latent"
    name: str = ""                  # prefix of the result names ("" = the analysis name)
    # latent
    base_model: str = ""            # the base student's HF folder ("" = the world's student)
    models: dict[str, str] = dataclasses.field(default_factory=dict)  # method -> HF folder
    world: str = "configs/world/default.yaml"
    tasks: list[str] = dataclasses.field(default_factory=list)        # [] = the world's OOD tasks
    split: str = "test"
    limit: int = 200                # questions per task
    pooling: Literal["mean", "last"] = "mean"
    batch_size: int = 64
    # validation
    scores: str = ""                # a `compact score` output folder (or its parquet/jsonl)
    label: str = "final_correct"
    # dynamics
    runs: dict[str, str] = dataclasses.field(default_factory=dict)    # method -> training run folder
    n_windows: int = 10
    # forgetting
    base_eval: str = ""             # `compact eval` folder of the base student
    evals: dict[str, str] = dataclasses.field(default_factory=dict)   # method -> `compact eval` folder
    mode: Literal["strict", "lenient"] = "strict"
    n_bootstrap: int = 1000
    seed: int = 0
    results_root: str = ""          # "" = results/

    def validate(self) -> None:
        if self.limit < 1 or self.n_windows < 1:
            raise ValueError("limit and n_windows must be >= 1")


def run_latent(cfg: AnalyzeConfig) -> dict[str, Any]:
    """Representations of OOD questions for base + methods, PCA shift + CKA table, scatter figure."""
    if not cfg.models:
        raise ConfigError("analysis=latent needs models.<method>=<HF folder> (one or more)")
    world = world_from(cfg.world)  # the OOD questions come from the world
    base_path = cfg.base_model or str(world.student_path)
    tasks = cfg.tasks or list(world.ood_tasks)
    examples = [e for t in tasks for e in world.examples(t, cfg.split)[:cfg.limit]]
    tok = load_tokenizer(base_path, pad_to_eos=True)
    reps = {}
    for name, path in {"base": base_path, **cfg.models}.items():
        model = load_model(path)
        reps[name] = hidden_representations(model, tok, examples, pooling=cfg.pooling, batch_size=cfg.batch_size)
        del model
    base = reps.pop("base")
    rows, pca = pca_shift(base, reps)
    fig = plot_pca_shift(base, reps, pca, title=f"OOD representations in the base PCA plane ({cfg.pooling})")
    return {"tables": {"pca_shift": rows}, "figures": {"pca_shift": fig}}


def _read_score_rows(path: str) -> list[dict[str, Any]]:
    p = resolve(path)
    if p.is_dir():
        for cand in ("scores.parquet", "scores.jsonl"):
            if (p / cand).is_file():
                p = p / cand
                break
        else:
            raise DataError("no scores.parquet or scores.jsonl (a `compact score` output folder?)", path=str(p))

    return read_local_rows(p)


def run_validation(cfg: AnalyzeConfig) -> dict[str, Any]:
    """AUC per score for the label, Spearman/Pearson matrices, MI proxy vs HSIC when present."""
    if not cfg.scores:
        raise ConfigError("analysis=validation needs scores=<`compact score` output>")
    rows = _read_score_rows(cfg.scores)
    if not rows or rows[0].get(cfg.label) is None:
        raise DataError(f"no '{cfg.label}' labels in the scores (score the store, whose rationales are labelled)",
                        path=cfg.scores, field=cfg.label)
    tables: dict[str, Any] = {
        "metric_auc": score_auc_table(rows, label=cfg.label),
        "metric_auc_by_teacher": score_auc_table(rows, label=cfg.label, by="teacher"),
        "score_corr_spearman": correlation_matrix(rows, SCORES, "spearman"),
        "score_corr_pearson": correlation_matrix(rows, SCORES, "pearson"),
    }
    if "hsic" in rows[0]:
        tables["mi_vs_hsic"] = [proxy_vs_estimator([r["mi"] for r in rows], [r["hsic"] for r in rows],
                                                   [r["id"] for r in rows])]
    return {"tables": tables, "figures": {}}


def run_dynamics(cfg: AnalyzeConfig) -> dict[str, Any]:
    if not cfg.runs:
        raise ConfigError("analysis=dynamics needs runs.<method>=<training run folder>")
    windows, trends, figures = [], [], {}
    for name, path in cfg.runs.items():
        rows = read_alpha_log(resolve(path))
        w = alpha_windows(rows, n_windows=cfg.n_windows)
        windows += [{"method": name, **r} for r in w]
        trends += [{"method": name, **r} for r in curriculum_trend(rows, n_windows=cfg.n_windows)]
        figures[f"alpha_dynamics_{name}"] = plot_alpha_dynamics(w, title=f"alpha per teacher over training: {name}")
    return {"tables": {"alpha_windows": windows, "alpha_trend": trends}, "figures": figures}


def run_forgetting(cfg: AnalyzeConfig) -> dict[str, Any]:
    if not cfg.base_eval or not cfg.evals:
        raise ConfigError("analysis=forgetting needs base_eval=<eval folder> and evals.<method>=<eval folder>")
    before = EvalResult.read(resolve(cfg.base_eval))
    after = {k: EvalResult.read(resolve(v)) for k, v in cfg.evals.items()}
    if cfg.tasks:
        ood, id_tasks = cfg.tasks, []
    else:
        ood, id_tasks = list(World.ood_tasks), list(World.id_tasks)
    rows = forgetting_table(before, after, ood_tasks=ood, id_tasks=id_tasks, mode=cfg.mode,
                            n_bootstrap=cfg.n_bootstrap, seed=cfg.seed)
    return {"tables": {"forgetting": rows}, "figures": {"forgetting": plot_forgetting(rows)}}


RUNNERS = {"latent": run_latent, "validation": run_validation, "dynamics": run_dynamics,
           "forgetting": run_forgetting}


def analyze(cfg: AnalyzeConfig) -> dict[str, dict[str, Path]]:
    """Run ``cfg.analysis`` and write its tables and figures under ``results/`` with this config as provenance."""
    import matplotlib.pyplot as plt  # local: plotting only: matplotlib is imported where a figure is drawn

    out = RUNNERS[cfg.analysis](cfg)
    prefix = cfg.name or cfg.analysis
    root = resolve(cfg.results_root) if cfg.results_root else None
    written: dict[str, dict[str, Path]] = {}
    for name, rows in out["tables"].items():
        written[f"{prefix}/{name}"] = write_table(f"{prefix}/{name}", rows, cfg=cfg, root=root)
    for name, fig in out["figures"].items():
        written[f"{prefix}/{name}"] = save_figure(fig, f"{prefix}/{name}", cfg=cfg, root=root)
        plt.close(fig)
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    cfg = load(AnalyzeConfig, args.config, args.overrides)
    for name, files in analyze(cfg).items():
        print(f"{name}: {', '.join(str(p) for p in files.values())}")
    return 0


__all__ = ["AnalyzeConfig", "analyze", "run_latent", "run_validation", "run_dynamics", "run_forgetting"]
