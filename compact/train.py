"""Train a student: COMPACT, its ablations and the multi-teacher baselines, through one loop.

    # CPU smoke run on the smoke world (a minute)
    python -m compact.train --config configs/train/smoke.yaml
    # the world student, COMPACT vs uniform multi-teacher SFT
    python -m compact.train --config configs/train/compact.yaml
    python -m compact.train --config configs/train/uniform.yaml
    # two CPU processes over gloo (same parameters as one process)
    torchrun --nproc_per_node 2 -m compact.train --config configs/train/smoke.yaml --set accelerator.cpu=true
    # GPUs: DDP / FSDP / DeepSpeed ZeRO through the checked-in accelerate configs
    accelerate launch --config_file configs/accelerate/ddp.yaml -m compact.train --config configs/paper/compact_qwen2.5-1.5b_gsm8k.yaml

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
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Sequence

from .config import config_hash, load
from .errors import ArtifactError, CompactError, ConfigError, TrainingError
from .log import get_logger, seed_everything, setup_logging
from .paths import resolve
from .provenance import file_lock, is_complete, read_manifest, storage_guard, tree_fingerprint
from .trainer.batching import encode_instances
from .trainer.config import TrainConfig
from .trainer.loop import Prepared, make_accelerator, run_dirs, train_loop
from .trainer.methods import oracle_keep, resolve_objective, single_teacher

log = get_logger("train")


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
    return load(TrainConfig, path, list(overrides))


# ---------------------------------------------------------------------------------------------- inputs
def load_tokenizer(path: str | Path, *, revision: str | None = None, trust_remote_code: bool = False):
    """The student's tokenizer; a plain ``tokenizers`` file keeps its own pre-tokenizer (not the model type's)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    p = Path(path)
    cfg_file = p / "tokenizer_config.json"
    if cfg_file.is_file():
        cls = json.loads(cfg_file.read_text()).get("tokenizer_class")
        if cls in ("TokenizersBackend", "PreTrainedTokenizerFast"):
            return PreTrainedTokenizerFast.from_pretrained(str(p))
    try:
        return AutoTokenizer.from_pretrained(str(path), revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot load the tokenizer of {path}: {exc}") from None


def tokenizer_hash(tokenizer) -> str:
    """A content hash of a tokenizer's vocabulary and chat template (pairs stores with students)."""
    vocab = sorted(tokenizer.get_vocab().items())
    blob = json.dumps([vocab, getattr(tokenizer, "chat_template", None)], separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def instances_hash(instances: Sequence) -> str:
    h = hashlib.sha256()
    for inst in instances:
        h.update(json.dumps([inst.id, inst.question, inst.answer, list(inst.teachers), list(inst.rationales)],
                            separators=(",", ":")).encode())
    return h.hexdigest()[:16]


def _world(cfg: TrainConfig):
    from .world.build import WorldConfig, build_world

    return build_world(load(WorldConfig, cfg.data.world))


def load_instances(cfg: TrainConfig) -> tuple[list, dict[str, Any]]:
    """The run's instances from ``data.store`` (a store directory) or ``data.generate`` (a generate config)."""
    from .teachers.view import build_instances

    d = cfg.data
    if d.instances is not None:
        instances = read_instances_jsonl(resolve(d.instances))
        if d.teachers:
            instances = [_select_teachers(inst, d.teachers, d.instances) for inst in instances]
        if d.max_instances is not None:
            instances = instances[: d.max_instances]
        return instances, {"instances": str(resolve(d.instances)), "instances_sha": instances_hash(instances)}
    if d.generate is not None:
        from .teachers.generate import generate_store, load_config as load_generate

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
    from .teachers.view import read_instance_rows

    if not path.is_file():
        raise ArtifactError(f"instances file not found: {path}")
    return read_instance_rows(jsonl_lines(path), path=str(path), id_required=True, default_answer_type="number",
                              default_source="instances")


def jsonl_lines(path: Path):
    """``("line N", row)`` for each non-blank line of a JSONL file (N counted from 1, as editors do)."""
    from .data.records import iter_jsonl
    from .errors import DataError

    try:
        for i, row in iter_jsonl(path):
            yield f"line {i + 1}", row
    except DataError as exc:  # iter_jsonl counts lines from 0: report the line an editor shows
        if isinstance(exc.record, int):
            raise DataError(str(exc).split(": ", 1)[-1], path=f"{path}, line {exc.record + 1}") from None
        raise


def _select_teachers(inst, teachers: Sequence[str], where: str):
    import dataclasses

    from .errors import DataError

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


def _weights_of(path: Path) -> tuple[bool, bool]:
    """(has safetensors weights, has pickle weights) of a local model folder."""
    names = {f.name for f in path.iterdir()} if path.is_dir() else set()
    safe = any(n.endswith(".safetensors") or n == "model.safetensors.index.json" for n in names)
    pickle = any(n in ("pytorch_model.bin", "pytorch_model.bin.index.json") or
                 (n.startswith("pytorch_model-") and n.endswith(".bin")) for n in names)
    return safe, pickle


def resolve_attn_implementation(name: str | None) -> str | None:
    """``"auto"``: flash-attention 2 on a CUDA machine that has ``flash_attn`` (the released trainer's backend),
    else transformers' default (sdpa). Backends differ at PAD positions, which reference-mode MI sums over:
    flash-attention returns zeros there, sdpa lets pad queries attend to the real tokens before them
    (:func:`compact.adaptability.zero_pad_attention` reproduces the flash semantics on any device)."""
    if name != "auto":
        return name
    import importlib.util

    import torch

    return "flash_attention_2" if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") else None


def load_student(cfg: TrainConfig, path: str | Path):
    """The student model (float32 unless ``model.dtype``), with LoRA adapters when ``model.lora`` is set.

    Weights are read from safetensors; a folder with only pickle weights (``pytorch_model.bin``) is refused
    unless ``model.allow_pickle`` is set (unpickling a file can run code).
    """
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": getattr(torch, cfg.model.dtype), "trust_remote_code": cfg.model.trust_remote_code}
    if cfg.model.revision:
        kwargs["revision"] = cfg.model.revision
    attn = resolve_attn_implementation(cfg.model.attn_implementation)
    if attn:
        kwargs["attn_implementation"] = attn
    local = Path(path)
    if local.is_dir():
        safe, pickle = _weights_of(local)
        if not safe and pickle and not cfg.model.allow_pickle:
            raise ArtifactError(f"the student {local} has only pickle weights (pytorch_model.bin) and no "
                                "model.safetensors; loading a pickle can run code: convert it to safetensors or "
                                "set model.allow_pickle=true")
        if not safe and not pickle and not (local / "adapter_config.json").is_file():
            raise ArtifactError(f"the student {local} has no weights (model.safetensors is missing)")
        kwargs["use_safetensors"] = safe or not cfg.model.allow_pickle
    elif not cfg.model.allow_pickle:
        kwargs["use_safetensors"] = True  # a hub id: safetensors only, unless pickle is allowed
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    except Exception as exc:  # noqa: BLE001 - OSError, safetensors' and transformers' errors alike: one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ArtifactError(f"cannot load the student {path}: {first}") from None
    if cfg.model.lora is not None:
        from peft import LoraConfig, get_peft_model

        lc = cfg.model.lora
        present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        missing = [t for t in lc.target_modules if t not in present]
        if missing:
            raise ConfigError(f"model.lora.target_modules {missing} are not modules of {type(model).__name__}")
        model = get_peft_model(model, LoraConfig(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout,
                                                 target_modules=list(lc.target_modules), task_type="CAUSAL_LM"))
    return model


def check_model(model, objective) -> None:
    """A clear error when the objective needs the last layer's q/k projections and the model has none."""
    if objective.weighting == "compact" and objective.use_consensus:
        from .consensus import find_attention_projections

        try:
            find_attention_projections(model)
        except CompactError as exc:
            raise TrainingError(f"{exc} (config: objective.use_consensus=false)") from None


def prepare(cfg: TrainConfig, acc, *, instances: Sequence | None = None) -> Prepared:
    """Instances, tokenizer, encoded questions and the student for ``cfg`` (main process builds inputs first)."""
    from .world.tokenizer import thinking_token_ids

    info: dict[str, Any] = {}
    with acc.main_process_first():
        if instances is None:
            instances, info = load_instances(cfg)
        else:
            from .teachers.view import check_instances

            instances = check_instances(instances, path="the instances given to train()")
            if cfg.data.max_instances is not None:
                instances = instances[: cfg.data.max_instances]
            info["instances_sha"] = instances_hash(instances)
        student, tok_path = cfg.model.path, None
        if student is None:
            if cfg.data.world is None:
                raise ConfigError("give model.path (a student folder or hub id) or data.world (its student)")
            world = _world(cfg)
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
        log.info("oracle: %d of %d questions have no rationale labelled correct and are left out",
                 stats.questions_no_branch, len(instances))
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
    from .config import config_hash

    d = cfg.data
    out: dict[str, Any] = {}
    if instances is not None:
        out["instances"] = instances_hash(list(instances))
    elif d.instances is not None:
        out["instances"] = tree_fingerprint(resolve(d.instances))
    elif d.generate is not None:
        from .teachers.generate import load_config as load_generate, store_root

        out["store"] = store_root(load_generate(d.generate)).name
    elif d.store is not None:
        from .teachers.store import RationaleStore

        out["store"] = RationaleStore(resolve(d.store)).fingerprint(d.split, d.teachers or None)
    if d.world is not None:
        from .world.build import WorldConfig

        out["world"] = config_hash(load(WorldConfig, d.world))
    if cfg.model.path is not None and resolve(cfg.model.path).is_dir():
        out["student"] = model_fingerprint(resolve(cfg.model.path))
    return out


def model_fingerprint(path: Path) -> str:
    """A content hash of a model folder's own files (weights, config, tokenizer; not sub-folders)."""
    import hashlib

    from .provenance import file_sha256

    h = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if f.is_file() and not f.name.startswith(".") and f.suffix in (".json", ".safetensors", ".bin", ".model",
                                                                        ".txt", ".py", ".tiktoken"):
            h.update(f.name.encode() + b"\0" + file_sha256(f).encode() + b"\n")
    for sub in ("adapter",):
        if (path / sub).is_dir():
            h.update(sub.encode() + model_fingerprint(path / sub).encode())
    return h.hexdigest()[:16]


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
    from .cli import add_common

    add_common(parser, config_required=True)
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
    parser = argparse.ArgumentParser(prog="python -m compact.train", description=__doc__.split("\n\n")[0])
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
           "config_hash", "artifact_dirs", "inputs_fingerprint", "read_instances_jsonl"]
