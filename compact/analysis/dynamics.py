r"""Weight dynamics: alpha per teacher over training, per task (does a curriculum appear?).

Reads a run's ``alpha.jsonl`` (one record per instance, teacher and step: ``id, teacher, alpha, mi,
consensus, difficulty, step``), splits the steps into equal windows and reports, per task and teacher,
the mean and std of alpha in each window. A curriculum shows as a trend: the Spearman correlation
:math:`\rho(\text{step}, \alpha)` per (task, teacher) and the change between the first and last window.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..data.records import iter_jsonl
from ..errors import DataError
from .validation import spearman

REQUIRED = ("id", "teacher", "alpha", "step")


def read_alpha_log(path: str | Path) -> list[dict[str, Any]]:
    """The records of an ``alpha.jsonl`` (a run folder or the file itself)."""
    p = Path(path)
    p = p / "alpha.jsonl" if p.is_dir() else p
    if not p.is_file():
        raise DataError("file not found", path=str(p))
    rows = []
    for i, r in iter_jsonl(p):
        for k in REQUIRED:
            if k not in r:
                raise DataError("missing", path=str(p), record=f"line {i + 1}", field=k)
        rows.append(r)
    return rows


def default_task_of(row: Mapping[str, Any]) -> str:
    """The task of an alpha record: its ``task`` field, else the world id prefix (``arith-train-00012``)."""
    if row.get("task"):
        return str(row["task"])
    return str(row["id"]).split("-", 1)[0]


def alpha_windows(rows: Sequence[Mapping[str, Any]], *, n_windows: int = 10,
                  task_of: Callable[[Mapping[str, Any]], str] | Mapping[str, str] | None = None,
                  ) -> list[dict[str, Any]]:
    """Mean/std of alpha per (task, teacher, step window); windows split [min step, max step] evenly."""
    if not rows:
        return []
    tf = _task_fn(task_of)
    steps = np.array([int(r["step"]) for r in rows])
    lo, hi = int(steps.min()), int(steps.max())
    edges = np.linspace(lo, hi + 1, n_windows + 1)
    groups: dict[tuple[str, str, int], list[float]] = {}
    for r, s in zip(rows, steps):
        w = min(int(np.searchsorted(edges, s, side="right")) - 1, n_windows - 1)
        groups.setdefault((tf(r), str(r["teacher"]), w), []).append(float(r["alpha"]))
    out = []
    for (task, teacher, w), vals in sorted(groups.items()):
        a = np.asarray(vals)
        out.append({"task": task, "teacher": teacher, "window": w, "step_start": float(edges[w]),
                    "step_end": float(edges[w + 1]), "alpha_mean": float(a.mean()),
                    "alpha_std": float(a.std(ddof=1)) if a.size > 1 else 0.0, "n": int(a.size)})
    return out


def curriculum_trend(rows: Sequence[Mapping[str, Any]], *, n_windows: int = 10,
                     task_of: Callable[[Mapping[str, Any]], str] | Mapping[str, str] | None = None,
                     ) -> list[dict[str, Any]]:
    """Per (task, teacher): Spearman(step, alpha), alpha in the first and last window, and their change."""
    tf = _task_fn(task_of)
    per: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for r in rows:
        per.setdefault((tf(r), str(r["teacher"])), []).append((int(r["step"]), float(r["alpha"])))
    win = {(w["task"], w["teacher"], w["window"]): w["alpha_mean"]
           for w in alpha_windows(rows, n_windows=n_windows, task_of=tf)}
    out = []
    for (task, teacher), pts in sorted(per.items()):
        ws = sorted(w for (t, k, w) in win if t == task and k == teacher)
        first, last = win[(task, teacher, ws[0])], win[(task, teacher, ws[-1])]
        out.append({"task": task, "teacher": teacher, "n": len(pts),
                    "spearman_step_alpha": spearman([p[0] for p in pts], [p[1] for p in pts]),
                    "alpha_first_window": first, "alpha_last_window": last, "alpha_change": last - first})
    return out


def _task_fn(task_of) -> Callable[[Mapping[str, Any]], str]:
    if task_of is None:
        return default_task_of
    if callable(task_of):
        return task_of
    mapping = dict(task_of)
    return lambda r: mapping.get(str(r["id"]), default_task_of(r))


def plot_alpha_dynamics(windows: Sequence[Mapping[str, Any]], *, title: str = ""):
    """One panel per task: mean alpha (band = +- std) per teacher over training steps."""
    import matplotlib.pyplot as plt  # no backend switch: a notebook kernel must keep its inline one

    tasks = sorted({w["task"] for w in windows}) or ["(none)"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.4 * len(tasks), 3.0), squeeze=False, sharey=True)
    for ax, task in zip(axes[0], tasks):
        teachers = sorted({w["teacher"] for w in windows if w["task"] == task})
        for teacher in teachers:
            pts = sorted((w for w in windows if w["task"] == task and w["teacher"] == teacher),
                         key=lambda w: w["window"])
            x = np.array([(w["step_start"] + w["step_end"]) / 2 for w in pts])
            m = np.array([w["alpha_mean"] for w in pts])
            s = np.array([w["alpha_std"] for w in pts])
            ax.plot(x, m, marker="o", ms=3, label=teacher)
            ax.fill_between(x, m - s, m + s, alpha=0.15)
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("step")
        ax.legend(fontsize=9)
    axes[0][0].set_ylabel(r"mean $\alpha$")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


__all__ = ["read_alpha_log", "default_task_of", "alpha_windows", "curriculum_trend", "plot_alpha_dynamics"]
