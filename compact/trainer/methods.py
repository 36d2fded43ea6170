"""Training methods: every method is the same objective with a different weighting of the teachers' branches.

    compact   alpha = softmax(S / tau), S = b1 z(M) + b2 z(C) - b3 z(L)   (+ lambda * consistency)
              ablations: objective.use_mi / use_consensus / use_difficulty = false, consistency = none
    uniform   alpha_k = 1/K, no consistency                             (multi-teacher SFT)
    single    K = 1: only teacher k's branch, alpha = 1                  (single-teacher SFT)
    static    alpha_k = objective.static_weights[k], no consistency     (fixed per-teacher weights; a pipeline
              run spec's ``static_from: <run>`` sets them to that run's mean alpha per teacher, seed-matched)
    mcckd     alpha_k = 1/K + lambda * answer-span consistency           (MCC-KD, Chen et al. 2023)
    oracle_answer  alpha_k = 1/K' over the K' rationales whose FINAL ANSWER is labelled correct (ground truth;
              questions with none dropped), no consistency
    oracle_steps   alpha_k = 1/K' over the K' rationales whose every written STEP is labelled correct
              (``steps_correct``; a rationale without step labels, e.g. from a real teacher, falls back to
              ``final_correct``), no consistency: the ceiling of any weighting of these teachers
    oracle    the name ``oracle_steps`` had first (kept so that the committed runs keep their names)
    random    alpha ~ Dirichlet(1, ..., 1) per question and step, COMPACT's consistency: does weighting
              per se matter?
    shuffled  COMPACT's alpha, permuted at random among each question's branches at every step, with COMPACT's
              consistency (pair weights from the permuted alpha): the same concentration of alpha, the teacher
              it goes to chosen at random: does it matter WHICH teacher COMPACT weights up?
    uniform_consistency  alpha_k = 1/K + lambda * sequence consistency (COMPACT's term): the consistency term
              without the weighting

All of them go through :func:`compact.method.objective.compact_objective` and the same loop, so their steps
differ only in the weights and the consistency term.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from ..errors import ConfigError
from ..method.fusion import check_static_weights
from ..method.objective import ObjectiveConfig


# What each method fixes in the objective section. A method's fixed choices are the config: they are applied
# when the config is loaded (so a run's saved config and its key say what it trains with), and a config that
# sets one of them to something else is an error, never silently overwritten.
PRESETS: dict[str, dict[str, str]] = {
    "compact": {"weighting": "compact"},
    "uniform": {"weighting": "uniform", "consistency": "none"},
    "single": {"weighting": "uniform", "consistency": "none"},
    "static": {"weighting": "static", "consistency": "none"},
    "mcckd": {"weighting": "uniform", "consistency": "answer_span"},
    "oracle": {"weighting": "uniform", "consistency": "none"},  # = oracle_steps
    "oracle_answer": {"weighting": "uniform", "consistency": "none"},
    "oracle_steps": {"weighting": "uniform", "consistency": "none"},
    "random": {"weighting": "random"},
    "shuffled": {"weighting": "shuffled"},
    "uniform_consistency": {"weighting": "uniform", "consistency": "sequence"},
}
_DEFAULTS = ObjectiveConfig()


def _preset(method: str) -> dict[str, str]:
    try:
        return PRESETS[method]
    except KeyError:
        raise ConfigError(f"unknown method {method!r} (known: {', '.join(PRESETS)})") from None


def check_explicit(method: str, objective: dict | None, where: str) -> None:
    """Refuse a config file whose ``objective`` section sets a field that ``method`` fixes to another value.

    ``objective`` is the section as written (after ``base:`` merging and overrides), so a value inherited from a
    base file counts as written: ``uniform.yaml`` cannot inherit ``consistency: sequence`` from ``compact.yaml``.
    """
    for key, want in _preset(method).items():
        given = (objective or {}).get(key)
        if given is not None and given != want:
            raise ConfigError(f"{where}: objective.{key}={given!r}, but method {method!r} trains with "
                              f"objective.{key}={want!r} (drop the key or choose another method)")


def resolve_objective(method: str, objective: ObjectiveConfig, teachers: Sequence[str] = ()) -> ObjectiveConfig:
    """The objective config a method trains with: the method's fixed choices (:data:`PRESETS`) applied.

    A field still at the :class:`ObjectiveConfig` default takes the method's value; a field set to another
    value raises :class:`ConfigError`. ``teachers`` (when known) checks method ``static``'s weights.
    """
    changes = {}
    for key, want in _preset(method).items():
        have = getattr(objective, key)
        if have != want:
            if have != getattr(_DEFAULTS, key):
                raise ConfigError(f"objective.{key}={have!r}, but method {method!r} trains with "
                                  f"objective.{key}={want!r}")
            changes[key] = want
    if method == "static" and teachers:
        try:
            check_static_weights(objective.static_weights, len(teachers))
        except ValueError as exc:
            hint = (" (or, in a pipeline profile, `static_from: <run>`: that run's mean alpha per teacher)"
                    if not objective.static_weights else "")
            raise ConfigError(f"method 'static', objective.static_weights: {exc} (teachers: {list(teachers)})"
                              + hint) from None
    return dataclasses.replace(objective, **changes) if changes else objective


def oracle_keep(method: str):
    """For the oracle methods: which branches to keep, from their ground-truth labels; else None.

    ``oracle_answer``: a branch whose final answer is labelled correct (``final_correct``; a right answer
    reached through a wrong step counts). ``oracle_steps`` (and ``oracle``, its first name): a branch whose
    every written step is labelled correct (``steps_correct``, which the simulated teachers carry); a branch
    without step labels (``steps_correct`` missing or None: real teachers, whose steps nobody checked) falls
    back to ``final_correct``, so on real teachers it keeps what ``oracle_answer`` keeps.
    """
    if method == "oracle_answer":
        return _final_correct
    if method in ("oracle_steps", "oracle"):
        return _steps_correct
    return None


def _final_correct(label: dict) -> bool:
    return bool(label.get("final_correct"))


def _steps_correct(label: dict) -> bool:
    ok = label.get("steps_correct")
    return bool(label.get("final_correct") if ok is None else ok)


def single_teacher(method: str, teacher: str | None, teachers: Sequence[str]) -> str | None:
    """For method 'single': the teacher's name (``teacher`` may be a name or an index); else None."""
    if method != "single":
        return None
    if teacher is None:
        raise ConfigError("method 'single' needs `teacher`")
    if teacher in teachers:
        return teacher
    if teacher.lstrip("-").isdigit():
        k = int(teacher)
        if 0 <= k < len(teachers):
            return teachers[k]
    raise ConfigError(f"teacher {teacher!r} is neither a name nor an index of the run's teachers {list(teachers)}")
