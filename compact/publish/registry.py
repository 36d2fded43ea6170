"""The results registry (``<results>/pipeline.json``), typed: what one execution of a profile produced.

The pipeline writes it; the staleness check, the results stage (:mod:`compact.publish.report`), the book's
execution page and the results notebooks read it. Reading goes through :func:`compact.config.from_dict`, so a
registry with a missing or mistyped field is a one-line error naming the field, not a ``KeyError`` deep in a
report. An absent or unreadable file reads as an empty registry (nothing was published yet).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ..config import from_dict, to_dict
from ..errors import ConfigError, DataError
from ..paths import resolve
from ..provenance import write_json

REGISTRY = "pipeline.json"


@dataclasses.dataclass
class ModelRecord:
    """A trained run (``<name>-s<seed>``) or a merge of seed-matched runs."""
    name: str
    seed: int
    group: str                  # main | baseline | variant | ablation
    label: str                  # display name in tables
    method: str                 # the training method, or merge-average / merge-ties
    path: str                   # its artifact folder, relative to the repository root
    members: list[str] = dataclasses.field(default_factory=list)  # merges: the run ids merged


@dataclasses.dataclass
class EvalRecord:
    """A model's evaluation: its artifact folders (one per eval config) and metrics per task."""
    dirs: list[str]
    metrics: dict[str, Any]


@dataclasses.dataclass
class Tasks:
    id: list[str]
    ood: list[str]


@dataclasses.dataclass
class StageTime:
    seconds: float
    items: int = 0


@dataclasses.dataclass
class Registry:
    profile: str = ""
    keys: dict[str, Any] = dataclasses.field(default_factory=dict)   # stage -> key (see publish.plan)
    world: dict[str, Any] = dataclasses.field(default_factory=dict)  # {path, key}
    tasks: Tasks = dataclasses.field(default_factory=lambda: Tasks([], []))
    store: dict[str, Any] = dataclasses.field(default_factory=dict)  # {path, key}
    runs: dict[str, ModelRecord] = dataclasses.field(default_factory=dict)
    merges: dict[str, ModelRecord] = dataclasses.field(default_factory=dict)
    evals: dict[str, EvalRecord] = dataclasses.field(default_factory=dict)  # model id ("base", run, merge) -> eval
    config: dict[str, Any] = dataclasses.field(default_factory=dict)  # the resolved pipeline config
    uncalibrated: list[str] = dataclasses.field(default_factory=list)  # failed calibration gates, if published anyway
    manifest: dict[str, Any] = dataclasses.field(default_factory=dict)  # provenance of the execution
    timings_s: dict[str, StageTime] = dataclasses.field(default_factory=dict)  # stage -> when it last ran
    notebook_seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def published(self) -> bool:
        """Whether a results stage ever completed here."""
        return bool(self.profile)

    def models(self) -> dict[str, ModelRecord]:
        """Every evaluated model: the base student, then the runs, then the merges."""
        base = ModelRecord(name="base", seed=0, group="base", label="Base student (no distillation)",
                           method="none", path=str(self.world.get("path") or ""))
        return {"base": base, **self.runs, **self.merges}

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def write(self, results: str | Path) -> None:
        write_json(resolve(results) / REGISTRY, self.to_dict())


def read_registry(results: str | Path) -> Registry:
    """The registry of a results folder; empty when none was written (or it is not JSON: a torn write)."""
    p = resolve(results) / REGISTRY
    if not p.is_file():
        return Registry()
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError:
        return Registry()
    if not isinstance(data, dict):
        raise DataError("the results registry is not a JSON object", path=str(p))
    try:
        return from_dict(Registry, data)
    except ConfigError as exc:
        raise DataError(f"the results registry does not fit its schema: {exc}", path=str(p)) from None


__all__ = ["REGISTRY", "EvalRecord", "ModelRecord", "Registry", "StageTime", "Tasks", "read_registry"]
