r"""Weight dynamics: alpha per teacher over training, per task (does a curriculum appear?).

Reads a run's ``alpha.jsonl`` (one record per instance, teacher and step: ``id, teacher, alpha, mi,
consensus, difficulty, step``), splits the steps into equal windows and reports, per task and teacher,
the mean and std of alpha in each window. A curriculum shows as a trend: the Spearman correlation
:math:`\rho(\text{step}, \alpha)` per (task, teacher) and the change between the first and last window.

How concentrated alpha is, apart from which teacher it goes to (:func:`effective_teachers`): per question,
:math:`\exp H(\alpha)` and :math:`1 / \sum_k \alpha_k^2`, both K for uniform weights and 1 for one teacher;
:func:`accuracy_vs_effective_teachers` relates it to accuracy over runs. Why a teacher's alpha moved
(:func:`score_contributions`, :func:`what_moved_first`): the mean contribution of each score to
:math:`S = \beta_1 z(M) + \beta_2 z(C) - \beta_3 z(L)`, recomputed per question from the logged raw scores as
:func:`compact.method.fusion.fuse` computes it. :func:`mean_alpha_per_teacher` gives the static weights that
method ``static`` trains with when a pipeline run spec says ``static_from: <run>``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import yaml

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


# ------------------------------------------------------------------------------------ teachers and weights
SCORES = ("mi", "consensus", "difficulty")
Source = str | Path | Sequence[Mapping[str, Any]]


def _rows(source: Source) -> list[Mapping[str, Any]]:
    """Records of a run folder or ``alpha.jsonl`` path, or records already read."""
    if isinstance(source, (str, Path)):
        return read_alpha_log(source)
    return list(source)


def _by_question(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[int, str], list[Mapping[str, Any]]]:
    """One question's branches at one step: records grouped by (step, id), in log order."""
    out: dict[tuple[int, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        out.setdefault((int(r["step"]), str(r["id"])), []).append(r)
    return out


def _edges(steps: np.ndarray, n_windows: int) -> np.ndarray:
    """The window edges of :func:`alpha_windows`: [min step, max step + 1] cut into ``n_windows`` equal parts."""
    return np.linspace(int(steps.min()), int(steps.max()) + 1, n_windows + 1)


def _window(edges: np.ndarray, step: int) -> int:
    return min(int(np.searchsorted(edges, step, side="right")) - 1, len(edges) - 2)


def mean_alpha_per_teacher(run_dir: str | Path) -> dict[str, float]:
    """Each teacher's mean alpha over every step and branch a run logged (its ``alpha.jsonl``), in the order the
    teachers first appear in the log. DataError when the run logged no alpha (``log.alpha_every: 0``)."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for r in read_alpha_log(run_dir):
        if r["alpha"] is None:
            continue
        t = str(r["teacher"])
        sums[t] = sums.get(t, 0.0) + float(r["alpha"])
        counts[t] = counts.get(t, 0) + 1
    if not counts:
        raise DataError("no alpha logged (the run had log.alpha_every: 0)", path=str(run_dir))
    return {t: sums[t] / counts[t] for t in counts}


def static_weights_from_run(run_dir: str | Path, digits: int = 6) -> tuple[list[str], list[float]]:
    """(teachers, weights): a finished run's teachers in its own order (``summary.json``, the order
    ``objective.static_weights`` is indexed by) and each one's :func:`mean_alpha_per_teacher`, rounded to ``digits``
    decimals (the weights are normalised per question, so only their ratios matter). DataError when the run has no
    summary or logged no alpha for one of its teachers."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise DataError("file not found (not a finished training run)", path=str(path))
    teachers = [str(t) for t in (json.loads(path.read_text()).get("teachers") or [])]
    if not teachers:
        raise DataError("no teachers listed", path=str(path), field="teachers")
    means = mean_alpha_per_teacher(run_dir)
    missing = [t for t in teachers if t not in means]
    if missing:
        raise DataError(f"no alpha logged for teachers {missing}", path=str(Path(run_dir) / "alpha.jsonl"))
    return teachers, [round(means[t], digits) for t in teachers]


def _neff(alpha: np.ndarray) -> tuple[float, float] | None:
    """(exp of the entropy, inverse Simpson index) of one question's weights, renormalised to sum 1."""
    total = float(alpha.sum())
    if not math.isfinite(total) or total <= 0 or (alpha < 0).any():
        return None
    p = alpha / total
    nz = p[p > 0]
    return float(np.exp(-(nz * np.log(nz)).sum())), float(1.0 / (p * p).sum())


def effective_teachers(source: Source) -> dict[str, Any]:
    r"""The effective number of teachers of each question's weights, per step and overall.

    Per question and step (records grouped by ``(step, id)``, one per branch): :math:`\exp H(\alpha)` with
    :math:`H = -\sum_k \alpha_k \log \alpha_k` (``exp_entropy``) and :math:`1 / \sum_k \alpha_k^2`
    (``inverse_simpson``); both are K for uniform weights over K branches, 1 for one branch, and lie in
    [1, K]. The loop logs every branch's alpha whatever the method, so deterministic weightings come out
    exactly: uniform K, oracle the number of branches kept for the question, single 1. Each question's
    weights are renormalised to sum 1 (the log rounds them to float32); questions with an alpha not logged
    (None) are left out. ``per_step``: the mean over the step's questions; ``overall``: the mean over every
    (step, question).
    """
    per_step: dict[int, list[tuple[float, float]]] = {}
    for (step, _), recs in _by_question(_rows(source)).items():
        a = [r["alpha"] for r in recs]
        v = None if any(x is None for x in a) else _neff(np.asarray(a, dtype=np.float64))
        if v is not None:
            per_step.setdefault(step, []).append(v)
    if not per_step:
        raise DataError("no question with logged alpha weights", path=str(source) if isinstance(source, (str, Path))
                        else None)
    steps = []
    for step in sorted(per_step):
        v = np.asarray(per_step[step])
        steps.append({"step": step, "n_questions": len(v), "exp_entropy": float(v[:, 0].mean()),
                      "inverse_simpson": float(v[:, 1].mean())})
    every = np.asarray([x for step in sorted(per_step) for x in per_step[step]])
    return {"per_step": steps, "overall": {"n_questions": len(every), "exp_entropy": float(every[:, 0].mean()),
                                           "inverse_simpson": float(every[:, 1].mean())}}


def accuracy_vs_effective_teachers(rows: Sequence[Mapping[str, Any]], *, x: str = "effective_teachers",
                                   y: str = "id_accuracy") -> dict[str, Any]:
    """Spearman's rho between ``y`` (ID accuracy) and ``x`` (effective number of teachers) over runs.

    ``rows``: one per (run, seed): ``name``, ``seed``, ``x``, ``y`` (``method`` optional). ``spearman``: over
    every (run, seed) point; ``spearman_run_means``: over runs, each its seeds' mean of ``x`` and ``y`` (NaN with
    fewer than 2 points or a constant variable)."""
    pts = [(float(r[x]), float(r[y])) for r in rows]
    by_run: dict[str, list[tuple[float, float]]] = {}
    for r, pt in zip(rows, pts):
        by_run.setdefault(str(r["name"]), []).append(pt)
    means = [tuple(np.mean(np.asarray(v), axis=0)) for v in by_run.values()]
    return {"n": len(pts), "n_runs": len(by_run),
            "spearman": spearman([p[0] for p in pts], [p[1] for p in pts]) if pts else float("nan"),
            "spearman_run_means": spearman([m[0] for m in means], [m[1] for m in means]) if means else float("nan")}


def plot_accuracy_vs_effective_teachers(rows: Sequence[Mapping[str, Any]], *, x: str = "effective_teachers",
                                        y: str = "id_accuracy", title: str = ""):
    """ID accuracy against the effective number of teachers: one point per (run, seed), coloured by method
    (``method``, else the run's ``name``); the Spearman correlation over the points in the title.
    Returns ``(figure, stats)`` with ``stats`` from :func:`accuracy_vs_effective_teachers`."""
    import matplotlib.pyplot as plt  # no backend switch: a notebook kernel must keep its inline one

    stats = accuracy_vs_effective_teachers(rows, x=x, y=y)
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(str(r.get("method") or r["name"]), []).append(r)
    for label, rs in sorted(groups.items()):
        ax.scatter([float(r[x]) for r in rs], [float(r[y]) for r in rs], label=label, s=22)
    ax.set_xlabel("effective number of teachers")
    ax.set_ylabel("ID accuracy")
    rho = stats["spearman"]
    ax.set_title((f"{title}\n" if title else "") + (f"Spearman rho = {rho:.2f} over {stats['n']} runs"
                                                     if math.isfinite(rho) else f"{stats['n']} runs"), fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig, stats


# ------------------------------------------------------------------------------------ why alpha moved
def _objective_settings(source: Source) -> dict[str, Any]:
    """beta and the use_* switches: the run folder's config.yaml when ``source`` is a run folder that has one,
    else :class:`compact.method.objective.ObjectiveConfig`'s defaults."""
    from ..method.objective import ObjectiveConfig

    d = ObjectiveConfig()
    out: dict[str, Any] = {"beta": tuple(d.beta), "use_mi": d.use_mi, "use_consensus": d.use_consensus,
                           "use_difficulty": d.use_difficulty}
    if isinstance(source, (str, Path)) and (Path(source) / "config.yaml").is_file():
        obj = (yaml.safe_load((Path(source) / "config.yaml").read_text()) or {}).get("objective") or {}
        out.update({k: (tuple(obj[k]) if k == "beta" else obj[k]) for k in out if k in obj})
    return out


def score_contributions(source: Source, *, n_windows: int = 10, beta: Sequence[float] | None = None,
                        use_mi: bool | None = None, use_consensus: bool | None = None,
                        use_difficulty: bool | None = None) -> list[dict[str, Any]]:
    r"""Per teacher and step window: mean alpha and the mean contribution of each score to the fused score S.

    The contributions are recomputed per question (records grouped by ``(step, id)``) from the logged raw scores
    exactly as :func:`compact.method.fusion.fuse` computes them, with
    :func:`compact.method.fusion.zscore_per_group`: ``contribution_mi`` = :math:`\beta_1 z(M)`,
    ``contribution_consensus`` = :math:`\beta_2 z(C)`, ``contribution_difficulty`` = :math:`-\beta_3 z(L)`
    (0 for a score the run switched off), ``fused_mean`` their sum S. A score the log does not hold for a
    question (None: e.g. the reference MI of a row-bucketed run) makes its contribution NaN there; the means
    leave NaN out (NaN when nothing is left). ``alpha_excess``: the mean of :math:`\alpha - 1/K_q` (K_q the
    question's branches), i.e. how far the teacher's weight is from uniform. beta and the switches come from
    the run folder's ``config.yaml`` unless given (:class:`~compact.method.objective.ObjectiveConfig`'s
    defaults for records). Windows split [min step, max step] as :func:`alpha_windows` does.
    """
    import torch

    from ..method.fusion import zscore_per_group

    settings = _objective_settings(source)
    for key, value in (("beta", beta), ("use_mi", use_mi), ("use_consensus", use_consensus),
                       ("use_difficulty", use_difficulty)):
        if value is not None:
            settings[key] = tuple(value) if key == "beta" else value
    b1, b2, b3 = (float(b) for b in settings["beta"])
    rows = [r for r in _rows(source) if r["alpha"] is not None]
    if not rows:
        return []
    questions = _by_question(rows)
    order = [r for recs in questions.values() for r in recs]
    k_of = np.asarray([len(recs) for recs in questions.values() for _ in recs], dtype=np.float64)
    group = torch.tensor([q for q, recs in enumerate(questions.values()) for _ in recs])

    def z(key: str) -> np.ndarray:
        v = torch.tensor([float("nan") if r.get(key) is None else float(r[key]) for r in order], dtype=torch.float64)
        return zscore_per_group(v, group).double().numpy()

    zero = np.zeros(len(order))
    contrib = {"mi": b1 * z("mi") if settings["use_mi"] else zero,
               "consensus": b2 * z("consensus") if settings["use_consensus"] else zero,
               "difficulty": -b3 * z("difficulty") if settings["use_difficulty"] else zero}
    alpha = np.asarray([float(r["alpha"]) for r in order])
    steps = np.asarray([int(r["step"]) for r in order])
    edges = _edges(steps, n_windows)
    cells: dict[tuple[str, int], list[int]] = {}
    for i, r in enumerate(order):
        cells.setdefault((str(r["teacher"]), _window(edges, int(steps[i]))), []).append(i)

    def mean(v: np.ndarray) -> float:
        v = v[~np.isnan(v)]
        return float(v.mean()) if v.size else float("nan")

    out = []
    for (teacher, w), idx in sorted(cells.items()):
        ix = np.asarray(idx)
        row = {"teacher": teacher, "window": w, "step_start": float(edges[w]), "step_end": float(edges[w + 1]),
               "n": len(ix), "alpha_mean": float(alpha[ix].mean()), "uniform": float((1 / k_of[ix]).mean()),
               "alpha_excess": float((alpha[ix] - 1 / k_of[ix]).mean())}
        for key in SCORES:
            row[f"contribution_{key}"] = mean(contrib[key][ix])
        row["fused_mean"] = mean(sum(contrib[key][ix] for key in SCORES))
        out.append(row)
    return out


def what_moved_first(windows: Sequence[Mapping[str, Any]], teacher: str, *, threshold: float = 0.05,
                     move_threshold: float = 0.1) -> dict[str, Any]:
    """For one teacher: the first window where its weight departs from uniform, and which score moved before it.

    ``windows``: :func:`score_contributions` of one run. The departure is the first window whose mean
    ``alpha_excess`` (alpha - 1/K) exceeds ``threshold`` in absolute value. Each score's contribution to S is
    followed from the first window to the departure window (inclusive; to the last window when alpha never
    departs): ``first_move_window`` is the first window where it differs from its first-window value by more
    than ``move_threshold``, ``max_abs_change`` its largest such difference. ``first_mover``: the score that moved
    first (ties: the larger change then); ``largest_mover``: the score with the largest change, None when none
    exceeded ``move_threshold``; ``dominant_at_departure``: the score with the largest contribution (absolute)
    in the departure window, and ``agrees`` whether its sign is the departure's. A departure in the first window
    (``at_start``) has no mover before it: the contributions were already there when the run began.
    """
    ws = sorted((w for w in windows if w["teacher"] == teacher), key=lambda w: w["window"])
    if not ws:
        raise DataError(f"teacher {teacher!r} has no windows (teachers: {sorted({w['teacher'] for w in windows})})")
    pos = next((i for i, w in enumerate(ws) if abs(w["alpha_excess"]) > threshold), None)
    upto = ws[: (pos if pos is not None else len(ws) - 1) + 1]
    scores: dict[str, dict[str, Any]] = {}
    for key in SCORES:
        traj = np.asarray([w[f"contribution_{key}"] for w in upto], dtype=np.float64)
        change = traj - traj[0]
        moved = [upto[i]["window"] for i in range(1, len(upto)) if abs(change[i]) > move_threshold]
        biggest = float(np.nanmax(np.abs(change))) if not np.isnan(change).all() else float("nan")
        scores[key] = {"start": float(traj[0]), "end": float(traj[-1]), "change": float(change[-1]),
                       "max_abs_change": biggest, "first_move_window": moved[0] if moved else None}
    movers = [k for k in SCORES if scores[k]["first_move_window"] is not None]

    def change_at(key: str, window: int) -> float:
        i = next(i for i, w in enumerate(upto) if w["window"] == window)
        return abs(upto[i][f"contribution_{key}"] - upto[0][f"contribution_{key}"])

    first = min(movers, key=lambda k: (scores[k]["first_move_window"],
                                       -change_at(k, scores[k]["first_move_window"]))) if movers else None
    largest = max(movers, key=lambda k: scores[k]["max_abs_change"]) if movers else None
    out: dict[str, Any] = {"teacher": teacher, "threshold": threshold, "move_threshold": move_threshold,
                           "departs": pos is not None, "at_start": pos == 0, "scores": scores,
                           "first_mover": first, "largest_mover": largest}
    if pos is not None:
        dep = ws[pos]
        at_dep = {k: dep[f"contribution_{k}"] for k in SCORES if not math.isnan(dep[f"contribution_{k}"])}
        dominant = max(at_dep, key=lambda k: abs(at_dep[k])) if at_dep else None
        agrees = None if dominant is None else bool(np.sign(at_dep[dominant]) == np.sign(dep["alpha_excess"]))
        out.update({"departure_window": dep["window"], "departure_step": dep["step_start"],
                    "alpha_excess": dep["alpha_excess"], "direction": "up" if dep["alpha_excess"] > 0 else "down",
                    "dominant_at_departure": dominant, "agrees": agrees})
        if pos == 0:
            out["first_mover"] = out["largest_mover"] = None
    return out


def plot_seed_dynamics(runs: Mapping[str, Source], *, n_windows: int | None = 20, measure: str = "exp_entropy",
                       title: str = ""):
    """One panel per seed (``runs``: panel title -> run folder / records): mean alpha per teacher over training
    steps, and the effective number of teachers (:func:`effective_teachers`, ``measure``: ``exp_entropy`` or
    ``inverse_simpson``) on a twin axis; ``n_windows`` step windows (None: every logged step)."""
    import matplotlib.pyplot as plt  # no backend switch: a notebook kernel must keep its inline one

    names = list(runs) or ["(none)"]
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.0), squeeze=False, sharey=True)
    twins = []
    for ax, name in zip(axes[0], names):
        rows = [r for r in _rows(runs[name]) if r["alpha"] is not None] if name in runs else []
        if not rows:
            ax.set_title(f"{name} (no alpha logged)", fontsize=9)
            continue
        steps = np.asarray([int(r["step"]) for r in rows])
        edges = _edges(steps, n_windows) if n_windows else None

        def where(s: int, edges=edges) -> int:
            return _window(edges, s) if edges is not None else s

        def centre(w: int, edges=edges) -> float:
            return float((edges[w] + edges[w + 1]) / 2) if edges is not None else float(w)
        cells: dict[tuple[str, int], list[float]] = {}
        for r, s in zip(rows, steps):
            cells.setdefault((str(r["teacher"]), where(int(s))), []).append(float(r["alpha"]))
        for teacher in list(dict.fromkeys(str(r["teacher"]) for r in rows)):
            ks = sorted(w for (t, w) in cells if t == teacher)
            ax.plot([centre(w) for w in ks], [np.mean(cells[(teacher, w)]) for w in ks], marker="o", ms=2,
                    lw=1.2, label=teacher)
        neff: dict[int, list[float]] = {}
        for st in effective_teachers(rows)["per_step"]:
            neff.setdefault(where(st["step"]), []).append(st[measure])
        twin = ax.twinx()
        ws = sorted(neff)
        twin.plot([centre(w) for w in ws], [np.mean(neff[w]) for w in ws], color="black", ls="--", lw=1.0,
                  label="effective teachers")
        twin.set_ylim(bottom=1.0)
        twins.append(twin)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step")
    axes[0][0].set_ylabel(r"mean $\alpha$")
    if twins:
        twins[-1].set_ylabel("effective number of teachers" + (" (1/sum a^2)" if measure == "inverse_simpson" else ""))
        top = max(t.get_ylim()[1] for t in twins)
        for t in twins:
            t.set_ylim(1.0, top)
        handles, labels = axes[0][0].get_legend_handles_labels()
        h2, l2 = twins[0].get_legend_handles_labels()
        axes[0][0].legend(handles + h2, labels + l2, fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


__all__ = ["read_alpha_log", "default_task_of", "alpha_windows", "curriculum_trend", "plot_alpha_dynamics",
           "mean_alpha_per_teacher", "static_weights_from_run", "effective_teachers", "accuracy_vs_effective_teachers",
           "plot_accuracy_vs_effective_teachers", "score_contributions", "what_moved_first", "plot_seed_dynamics"]
