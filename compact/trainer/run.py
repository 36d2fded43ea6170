"""Train a student: COMPACT, its ablations and the multi-teacher baselines, through one loop.

    # CPU smoke run on the smoke world (a minute)
    python -m compact.trainer --config configs/train/smoke.yaml
    # the world student, COMPACT vs uniform multi-teacher SFT
    python -m compact.trainer --config configs/train/compact.yaml
    python -m compact.trainer --config configs/train/uniform.yaml
    # two CPU processes over gloo (same parameters as one process)
    torchrun --nproc_per_node 2 -m compact.trainer --config configs/train/smoke.yaml --set accelerator.cpu=true
    # GPUs: DDP (or FSDP2, fsdp.yaml) through the checked-in accelerate configs
    accelerate launch --config_file configs/accelerate/ddp.yaml -m compact.trainer --config configs/paper/compact_qwen2.5-1.5b_gsm8k.yaml
    # FSDP2: the student sharded with torch's fully_shard over the processes (gloo on CPU, NCCL on GPUs)
    torchrun --nproc_per_node 2 -m compact.trainer --config configs/train/smoke.yaml --set accelerator.cpu=true --set accelerator.fsdp=true
    # the objective under FSDP2 equals one process (loss, alpha, gradients; see compact.trainer.fsdp_parity)
    torchrun --nproc_per_node 2 -m compact.trainer.fsdp_parity

From Python: ``train(load_config("configs/train/compact.yaml")) -> Path`` (the run's artifact directory,
reused when complete unless ``force=True``). The directory is named by the config AND the content of its
inputs (:func:`inputs_fingerprint`: the instances file, the store's files, the world config, the student's
files), so an edited input is never answered with an old run. One process at a time works on a run: a
second ``compact train`` of the same run waits for the first (``--no-wait``: refuses, one line) and then
reuses its artifact. The directory holds the final model (``save_pretrained``,
safetensors; merged weights for LoRA plus ``adapter/``), the tokenizer, ``config.yaml``, ``manifest.json``,
``log.jsonl`` (per optimizer step), ``alpha.jsonl`` (per branch: alpha and raw scores) and ``summary.json``.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Sequence

from ..config import add_config_arguments, apply_overrides, config_hash, from_dict, load, read_yaml
from ..errors import ArtifactError, CompactError, ConfigError
from ..inputs.encode import encode_instances
from ..inputs.instances import (
    check_store_tokenizer,
    instances_hash,
    load_instances,
)
from ..inputs.model import (
    check_model,
    load_student,
    load_tokenizer,
    model_fingerprint,
    tokenizer_hash,
)
from ..inputs.packaged import PREFIX as PACKAGED_PREFIX, cached_folder
from ..log import get_logger, seed_everything, setup_logging
from ..method.adaptability import thinking_token_ids
from ..paths import resolve
from ..provenance import file_lock, is_complete, storage_guard, tree_fingerprint
from ..teachers.generate import load_config as load_generate
from ..teachers.generate import store_root
from ..teachers.store import RationaleStore
from ..teachers.view import check_instances
from ..world.build import WorldConfig, world_from
from .config import TrainConfig
from .loop import Prepared, make_accelerator, run_dirs, train_loop
from .methods import PRESETS, check_explicit, oracle_keep, resolve_objective, single_teacher

log = get_logger("train")


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """A train config from a YAML file (with its ``base:`` chain) and ``key=value`` overrides.

    The method's fixed objective choices (:data:`compact.trainer.methods.PRESETS`) fill the objective section;
    a file or override that sets one of them to another value is refused, naming the file and the key.
    """
    data = apply_overrides(read_yaml(path) if path is not None else {}, list(overrides))
    method = data.get("method", "compact")
    if isinstance(method, str) and method in PRESETS:
        objective = data.get("objective")
        check_explicit(method, objective if isinstance(objective, dict) else None,
                       f"config {path}" if path is not None else "config")
    return from_dict(TrainConfig, data)


# ---------------------------------------------------------------------------------------------- inputs


def prepare(cfg: TrainConfig, acc, *, instances: Sequence | None = None) -> Prepared:
    """Instances, tokenizer, encoded questions and the student for ``cfg`` (main process builds inputs first)."""
    info: dict[str, Any] = {}
    with acc.main_process_first():
        if instances is None:
            instances, info = load_instances(cfg)
        else:
            instances = check_instances(instances, path="the instances given to train()")
            if cfg.data.max_instances is not None:
                instances = instances[: cfg.data.max_instances]
            info["instances_sha"] = instances_hash(instances)
        student, tok_path = cfg.model.path, None
        if student is None:
            if cfg.data.world is None:
                raise ConfigError("give model.path (a student folder or hub id) or data.world (its student)")
            world = world_from(cfg.data.world)
            student = str(world.student_path)
            if not (world.student_path / "tokenizer_config.json").is_file():
                tok_path = world.tokenizer_path
            info["world"] = cfg.data.world
    if not instances:
        raise ConfigError(f"no training instances (data.split={list(cfg.data.split)})")
    student_path = resolve(student) if resolve(student).exists() else student
    info["student"] = str(student_path)
    tokenizer = load_tokenizer(tok_path or student_path, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code)
    if tokenizer.pad_token_id is None:
        raise ArtifactError(f"the tokenizer of {student_path} has no pad token")
    info["tokenizer_hash"] = tokenizer_hash(tokenizer)
    check_store_tokenizer(info, tokenizer)
    teachers = list(cfg.data.teachers) if cfg.data.teachers else list(dict.fromkeys(
        name for inst in instances for name in inst.teachers))
    objective = resolve_objective(cfg.method, cfg.objective, teachers)
    branch = single_teacher(cfg.method, cfg.teacher, teachers)
    questions, stats = encode_instances(instances, tokenizer, teachers=teachers, max_length=cfg.data.max_length,
                                        branch_teacher=branch, keep_branch=oracle_keep(cfg.method))
    if stats.questions_no_branch:
        log.info("%s: %d of %d questions have no rationale labelled correct and are left out",
                 cfg.method, stats.questions_no_branch, len(instances))
    if stats.branches_truncated or stats.questions_dropped:
        log.warning("max_length %d: %d of %d branches truncated (%d tokens cut), %d questions dropped",
                    cfg.data.max_length, stats.branches_truncated, stats.branches, stats.tokens_truncated,
                    stats.questions_dropped)
    if not questions:
        raise ConfigError(f"every question was dropped: prompts exceed data.max_length={cfg.data.max_length}")
    seed_everything(cfg.seed)  # LoRA initialisation draws from torch's generator
    model = load_student(cfg, student_path)
    check_model(model, objective)
    return Prepared(questions=questions, teachers=teachers, tokenizer=tokenizer, model=model,
                    thinking_ids=thinking_token_ids(tokenizer), truncation=stats, objective=objective,
                    provenance=info)


# ------------------------------------------------------------------------------------------------- API
def inputs_fingerprint(cfg: TrainConfig, instances: Sequence | None = None) -> dict[str, Any]:
    """Content hashes of what a run reads besides its config; they name the run with the config.

    ``data.instances``: the file's bytes; ``data.store``: the files of the selected keys and teachers;
    ``data.generate``: the store's key (the generate config and its inputs' contents, as the store is
    named); ``data.world``: the resolved world config; ``model.path`` (a local folder): its files.
    """
    d = cfg.data
    out: dict[str, Any] = {}
    if instances is not None:
        out["instances"] = instances_hash(list(instances))
    elif d.instances is not None:
        out["instances"] = tree_fingerprint(resolve(d.instances))
    elif d.generate is not None:
        out["store"] = store_root(load_generate(d.generate)).name
    elif d.store is not None:
        out["store"] = RationaleStore(resolve(d.store)).fingerprint(d.split, d.teachers or None)
    if d.world is not None:
        out["world"] = config_hash(load(WorldConfig, d.world))
    if cfg.model.path is not None and cfg.model.path.startswith(PACKAGED_PREFIX):
        out["student"] = cached_folder(cfg.model.path[len(PACKAGED_PREFIX):]).name  # the GGUF file's hash
    elif cfg.model.path is not None and resolve(cfg.model.path).is_dir():
        out["student"] = model_fingerprint(resolve(cfg.model.path))
    return out


def artifact_dirs(cfg: TrainConfig, root: Path | None = None, instances: Sequence | None = None) -> tuple[Path, Path]:
    """(the run's artifact directory, its work directory): named by the config and its inputs' contents."""
    return run_dirs(_Named(cfg, inputs_fingerprint(cfg, instances)), root)


def train(cfg: TrainConfig, *, force: bool = False, root: Path | None = None,
          instances: Sequence | None = None, wait: bool = True) -> Path:
    """Train (or reuse) the run named by ``cfg`` and its inputs; return its artifact directory.

    ``instances`` (optional) replaces the store: hand-made :class:`compact.teachers.view.Instance` lists
    for tests and notebooks; their content hash then names the artifact together with the config.
    ``root`` overrides the artifacts root (default ``compact.paths.artifacts_dir()``). Another process
    training the same run holds its lock: ``wait=True`` waits for it (then reuses its artifact unless
    ``force``), ``wait=False`` raises :class:`ArtifactError`.
    """
    fingerprint = inputs_fingerprint(cfg, instances)
    out, work = run_dirs(_Named(cfg, fingerprint), root)
    if is_complete(out) and not force:
        log.info("run %s is complete: %s (use --force to retrain)", cfg.name, out)
        return out
    with storage_guard(f"the run {out}"):
        acc = make_accelerator(cfg, work)
        lock = (file_lock(out.parent / f".{out.name}.lock", wait=wait, what=f"run {out.name}")
                if acc.is_main_process else contextlib.nullcontext())
        with lock:
            acc.wait_for_everyone()
            if is_complete(out) and not force:
                log.info("run %s was completed by another process: %s", cfg.name, out)
                return out
            if force and acc.is_main_process and work.exists():
                shutil.rmtree(work)
            acc.wait_for_everyone()
            work.mkdir(parents=True, exist_ok=True)
            prep = prepare(cfg, acc, instances=instances)
            prep.provenance["fingerprint"] = fingerprint
            return train_loop(cfg, prep, acc, out=out, work=work)


class _Named:
    """A config stand-in for naming: the config's identity plus the content hashes of its inputs."""
    def __init__(self, cfg: TrainConfig, inputs: dict[str, Any]):
        self.name = cfg.name
        self._identity = {**cfg.identity(), "inputs": inputs}

    def identity(self) -> dict:
        return self._identity


# ------------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, config_required=True)
    parser.add_argument("--force", action="store_true", help="retrain even when the run's artifact is complete")
    parser.add_argument("--no-wait", dest="wait", action="store_false",
                        help="refuse (exit 2) instead of waiting when another process is training the same run")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    out = train(cfg, force=args.force, wait=getattr(args, "wait", True))
    if int(os.environ.get("RANK", "0")) == 0:  # one line from the main process, not one per rank interleaved
        print(out, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compact.trainer", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        return run(args)
    except CompactError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["train", "load_config", "prepare", "load_student", "load_tokenizer", "tokenizer_hash", "TrainConfig",
           "config_hash", "artifact_dirs", "inputs_fingerprint"]
