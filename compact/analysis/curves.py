r"""Learning curves: the accuracy of a run's parameter snapshots along training, in and out of distribution.

A run trained with ``log.curve_steps`` keeps its trainable parameters after each of those optimizer steps
(``curve/step-NNNNN.safetensors``). :func:`snapshot_curve` loads each snapshot into the run's own student
(LoRA-wrapped when the run used LoRA), answers the given questions with the evaluation settings, and returns
one row per step: per-task strict accuracy, the ID mean and, when OOD tasks are scored, the OOD mean. Scoring
OOD along the curve gives the ID-OOD trade-off of training: methods compared at matched ID accuracy rather
than at one budget. :func:`flattening` reads a curve the way the budget rule does (points gained over the last
quarter of the steps).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from safetensors.torch import load_file

from ..eval.evaluate import EvalConfig, evaluate
from ..inputs.model import load_student
from ..trainer.checkpoint import load_trainable_state


def snapshots(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, file) of every curve snapshot a run (or its live work folder) kept, in step order."""
    return sorted((int(p.stem.split("-")[1]), p) for p in Path(run_dir).glob("curve/step-*.safetensors"))


def snapshot_curve(run_dir: str | Path, base_model: str | Path, tokenizer: Any, examples: Sequence[Any],
                   ecfg: EvalConfig, *, id_tasks: Sequence[str], ood_tasks: Sequence[str] = (),
                   include_base: bool = True, steps: Sequence[int] | None = None,
                   on_point: Callable[[dict], None] | None = None) -> list[dict[str, Any]]:
    """Evaluate the base student (step 0) and every snapshot of ``run_dir`` (``steps``: only those).

    ``run_dir`` is a finished run folder or a run's work folder (``config.yaml`` is read from the run folder
    when present, else ``train_config`` of the pipeline's resolved config must be given by the caller through
    :func:`compact.trainer.run.load_config`).
    """
    from ..trainer.run import load_config as load_train_config

    run_dir = Path(run_dir)
    tcfg = load_train_config(run_dir / "config.yaml")
    model = load_student(tcfg, base_model)
    rows: list[dict[str, Any]] = []

    def score(step: int) -> None:
        res = evaluate(model, tokenizer, examples, ecfg)
        row: dict[str, Any] = {"step": step}
        for t in [*id_tasks, *ood_tasks]:
            if t in res.metrics:
                row[t] = res.metrics[t]["strict"]
        row["id_mean"] = _mean(row, id_tasks)
        if ood_tasks:
            row["ood_mean"] = _mean(row, ood_tasks)
        rows.append(row)
        if on_point is not None:
            on_point(row)

    if include_base:
        score(0)
    for step, snap in snapshots(run_dir):
        if steps is not None and step not in steps:
            continue
        load_trainable_state(model, load_file(str(snap)), where=str(snap))
        score(step)
    return rows


def _mean(row: Mapping[str, Any], tasks: Sequence[str]) -> float:
    vals = [row[t] for t in tasks if t in row]
    return float(np.mean(vals)) if vals else float("nan")


def flattening(points: Sequence[Mapping[str, Any]], key: str = "id_mean") -> dict[str, float]:
    """How much a curve still rises at its end: the gain over the last quarter of its steps (in the units of
    ``key``), read at the snapshot nearest to 3/4 of the last step. Steps 0 (the base) count as points."""
    pts = sorted((int(p["step"]), float(p[key])) for p in points if p.get(key) is not None)
    if len(pts) < 2:
        raise ValueError("a curve needs at least two points")
    last_step, last = pts[-1]
    target = 0.75 * last_step
    ref_step, ref = min(pts[:-1], key=lambda p: (abs(p[0] - target), -p[0]))
    return {"last_step": last_step, "last": last, "ref_step": ref_step, "ref": ref, "gain": last - ref}


__all__ = ["snapshots", "snapshot_curve", "flattening"]
