"""Training instances from a rationale store, a generate config or a JSONL file: resolved and validated once."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..data.records import iter_jsonl
from ..errors import ArtifactError, ConfigError, DataError
from ..paths import resolve
from ..provenance import read_manifest
from ..teachers.generate import generate_store
from ..teachers.generate import load_config as load_generate
from ..teachers.view import build_instances, read_instance_rows
from .model import tokenizer_hash

if TYPE_CHECKING:  # the trainer's config type: annotations only (the trainer stands above this room)
    from ..trainer.config import TrainConfig


def instances_hash(instances: Sequence) -> str:
    h = hashlib.sha256()
    for inst in instances:
        h.update(json.dumps([inst.id, inst.question, inst.answer, list(inst.teachers), list(inst.rationales)],
                            separators=(",", ":")).encode())
    return h.hexdigest()[:16]


def load_instances(cfg: TrainConfig) -> tuple[list, dict[str, Any]]:
    """The run's instances from ``data.store`` (a store directory) or ``data.generate`` (a generate config)."""
    d = cfg.data
    if d.instances is not None:
        instances = read_instances_jsonl(resolve(d.instances))
        if d.teachers:
            instances = [_select_teachers(inst, d.teachers, d.instances) for inst in instances]
        if d.max_instances is not None:
            instances = instances[: d.max_instances]
        return instances, {"instances": str(resolve(d.instances)), "instances_sha": instances_hash(instances)}
    if d.generate is not None:
        store = generate_store(load_generate(d.generate))
    elif d.store is not None:
        store = resolve(d.store)
    else:
        raise ConfigError("give data.store (a rationale store), data.generate (a generate config) or "
                          "data.instances (a JSONL file of instances)")
    if not Path(store).is_dir():
        raise ArtifactError(f"rationale store not found: {store}")
    instances = [inst for key in d.split
                 for inst in build_instances(store, key, d.teachers or None, d.policy, d.correctness_filter)]
    if d.max_instances is not None:
        instances = instances[: d.max_instances]
    info: dict[str, Any] = {"store": str(store)}
    try:
        info["store_manifest"] = {k: v for k, v in read_manifest(store).items() if k in ("config_hash", "kind",
                                                                                     "tokenizer_hash", "world")}
    except ArtifactError:
        pass
    return list(instances), info


def read_instances_jsonl(path: Path) -> list:
    """Instances from JSONL (one :class:`compact.teachers.view.Instance` per line, its fields as keys), checked
    by the validator every instance reader shares (:func:`compact.teachers.view.read_instance_rows`)."""
    if not path.is_file():
        raise ArtifactError(f"instances file not found: {path}")
    return read_instance_rows(jsonl_lines(path), path=str(path), id_required=True, default_answer_type="number",
                              default_source="instances")


def jsonl_lines(path: Path):
    """``("line N", row)`` for each non-blank line of a JSONL file (N counted from 1, as editors do)."""
    for i, row in iter_jsonl(path):
        yield f"line {i + 1}", row


def _select_teachers(inst, teachers: Sequence[str], where: str):
    idx = []
    for name in teachers:
        if name not in inst.teachers:
            raise DataError(f"no rationale from teacher {name!r}", path=where, record=inst.id, field="teachers")
        idx.append(inst.teachers.index(name))
    return dataclasses.replace(inst, rationales=[inst.rationales[k] for k in idx],
                               teachers=[inst.teachers[k] for k in idx],
                               labels=[inst.labels[k] for k in idx] if len(inst.labels) == len(inst.teachers) else [])


def check_store_tokenizer(info: dict[str, Any], tokenizer) -> None:
    """ArtifactError when the store's manifest names another tokenizer than the student's."""
    expected = (info.get("store_manifest") or {}).get("tokenizer_hash")
    if expected and expected != tokenizer_hash(tokenizer):
        raise ArtifactError(f"rationale store {info.get('store')} was written for tokenizer {expected}, but the "
                            f"student's tokenizer is {tokenizer_hash(tokenizer)}: they do not belong together")
