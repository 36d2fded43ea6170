r"""The training loop: seeded global data order, sharded over processes, gradient accumulation, AdamW.

One optimizer step consumes ``Q = optim.questions_per_step`` questions in a global order drawn from a
``torch.Generator`` seeded by ``(seed, epoch)``. With ``P`` processes, process ``r`` takes the ``r``-th
``Q/P`` slice of every step's questions and splits it into micro-batches of ``m`` questions. The objective
returns each micro-batch's mean over its questions, so the micro-batch loss is weighted by

.. math::  w = \frac{n_\text{micro}}{Q / P}

and DDP's mean over processes turns the accumulated gradient into the gradient of the mean over all ``Q``
questions: the parameters do not depend on ``P`` or ``m`` (up to floating-point summation order).
An incomplete last step of an epoch is dropped, so every step sees exactly ``Q`` questions.
"""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState
from accelerate.utils import gather_object
from safetensors.torch import save_file
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from transformers import (
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)

from ..config import save_yaml, to_dict
from ..errors import ArtifactError, ConfigError, TrainingError
from ..inputs.encode import EncodedQuestion, TruncationStats, collate
from ..log import get_logger, progress, seed_everything
from ..method.objective import compact_objective
from ..method.shards import full
from ..provenance import (
    append_jsonl,
    artifact_path,
    atomic_dir,
    manifest,
    read_jsonl_tail,
    rewrite_jsonl,
    write_json,
)
from .checkpoint import (
    full_model_state,
    full_states,
    is_sharded_model,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    trainable_state,
)
from .config import TrainConfig

log = get_logger("train")


@dataclasses.dataclass
class Prepared:
    """Everything the loop needs besides the config: encoded data, teachers, tokenizer, model."""
    questions: list[EncodedQuestion]
    teachers: list[str]
    tokenizer: Any
    model: torch.nn.Module
    thinking_ids: list[int]
    truncation: TruncationStats
    objective: Any                      # the resolved compact.method.objective.ObjectiveConfig
    provenance: dict[str, Any]          # store / world / student paths and hashes


def run_dirs(cfg: TrainConfig, root: Path | None = None) -> tuple[Path, Path]:
    """(artifact dir named by the config hash, its sibling work dir holding checkpoints and live logs)."""
    out = artifact_path("runs", cfg.identity(), cfg.name, root=root)
    return out, out.parent / f".{out.name}.work"


def make_accelerator(cfg: TrainConfig, work: Path):
    cpu = cfg.accelerator.cpu or not torch.cuda.is_available()
    state = PartialState(cpu=cpu)
    n_proc = state.num_processes
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    wanted = [name for name, var in (("FSDP", "ACCELERATE_USE_FSDP"), ("DEEPSPEED", "ACCELERATE_USE_DEEPSPEED"))
              if os.environ.get(var, "false").lower() == "true"]
    if wanted and state.distributed_type.value != wanted[0]:
        # accelerate runs an FSDP or DeepSpeed config without GPUs as plain DDP over gloo: the run would not be
        # what its config says (nor shard anything)
        raise ConfigError(f"the accelerate config asks for {wanted[0]} but accelerate runs "
                          f"{state.distributed_type.value} here: its FSDP and DeepSpeed modes need GPUs (on CPU use "
                          f"configs/accelerate/cpu_ddp.yaml; python -m compact.trainer.fsdp_parity checks the "
                          f"objective under FSDP2 on CPU)")
    if cfg.accelerator.fsdp and cfg.model.lora is not None:
        raise ConfigError("accelerator.fsdp shards full fine-tuning; with model.lora use DDP (accelerator.fsdp=false)")
    if cfg.accelerator.fsdp and wanted:
        raise ConfigError(f"accelerator.fsdp shards the student itself: launch it with torchrun, not an accelerate "
                          f"{wanted[0]} config")
    if launched != n_proc:
        raise ConfigError(f"launched as {launched} processes (WORLD_SIZE) but accelerate connected {n_proc} "
                          f"({state.distributed_type.value}): each process would train alone on all the data")
    q, m = cfg.optim.questions_per_step, cfg.optim.micro_batch_questions
    if q % n_proc:
        raise ConfigError(f"optim.questions_per_step={q} must be a multiple of the number of processes ({n_proc})")
    n_micro = math.ceil((q // n_proc) / m)
    kwargs: dict[str, Any] = {}
    if cfg.log.tensorboard:
        kwargs.update(log_with="tensorboard", project_dir=str(work / "tb"))
    precision = cfg.accelerator.cpu_mixed_precision if cpu else cfg.accelerator.mixed_precision
    if n_proc == 1:  # one process may train several runs (notebooks, tests), each with its own precision
        AcceleratorState._reset_state(reset_partial_state=False)
    acc = Accelerator(cpu=cpu, mixed_precision=precision,
                      gradient_accumulation_steps=n_micro, step_scheduler_with_optimizer=False, **kwargs)
    return acc


def shard_fsdp2(model: torch.nn.Module, *, bf16: bool = False) -> None:
    """FSDP2 in place: each decoder layer (``*DecoderLayer``), then the root, parameters sharded over the process
    group (gradients reduced in float32; parameters computed in bf16 when the run is)."""
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if bf16 else None, reduce_dtype=torch.float32)
    layers = [m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")]
    if not layers:
        raise ConfigError(f"accelerator.fsdp: {type(model).__name__} has no *DecoderLayer modules to shard")
    for layer in layers:
        fully_shard(layer, mp_policy=mp)
    fully_shard(model, mp_policy=mp)


def make_schedule(optimizer, cfg: TrainConfig, total_steps: int):
    """constant / linear / cosine learning rate, each with linear warmup (transformers' schedules)."""
    w = cfg.optim.warmup_steps
    if cfg.optim.schedule == "constant":
        return get_constant_schedule_with_warmup(optimizer, w)
    if cfg.optim.schedule == "linear":
        return get_linear_schedule_with_warmup(optimizer, w, total_steps)
    return get_cosine_schedule_with_warmup(optimizer, w, total_steps)


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The global question order of an epoch: the same on every process, for any number of processes."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def _per_teacher(values: Sequence[float], teachers: Sequence[int], names: Sequence[str]) -> dict[str, dict]:
    out = {}
    for k, name in enumerate(names):
        v = torch.tensor([x for x, t in zip(values, teachers) if t == k], dtype=torch.float64)
        if v.numel():
            out[name] = {"mean": v.mean().item(), "std": v.std(unbiased=False).item(),
                         "min": v.min().item(), "max": v.max().item(), "n": int(v.numel())}
    return out


def _truncate_jsonl(path: Path, max_step: int) -> None:
    """Keep the records up to ``max_step`` (a killed run may have logged steps after its last checkpoint).

    A last line torn by the kill is dropped with one warning; a bad line elsewhere is a DataError.
    """
    if not path.is_file():
        return
    records, torn = read_jsonl_tail(path)
    if torn:
        log.warning("%s: dropped a torn last line (%d bytes) left by an interrupted run", path, torn)
    keep = [r for r in records if isinstance(r.get("step"), int) and r["step"] <= max_step]
    if torn or len(keep) != len(records):
        rewrite_jsonl(path, keep)


def _vec(x) -> list[float]:
    if x is None:
        return []
    return [float(v) for v in x.detach().float().reshape(-1).cpu()]


def train_loop(cfg: TrainConfig, prep: Prepared, acc, *, out: Path, work: Path,
               after_step: Callable[[int], None] | None = None) -> Path:
    """Train ``prep.model`` under accelerator ``acc``; the main process publishes the artifact ``out``."""
    main = acc.is_main_process
    rank, n_proc = acc.process_index, acc.num_processes
    q_step = cfg.optim.questions_per_step
    q_local, m = q_step // n_proc, cfg.optim.micro_batch_questions
    n = len(prep.questions)
    steps_per_epoch = n // q_step
    if steps_per_epoch == 0:
        raise ConfigError(f"{n} training questions are fewer than optim.questions_per_step={q_step}")
    total = steps_per_epoch * cfg.optim.epochs
    if cfg.optim.max_steps is not None:
        total = min(total, cfg.optim.max_steps)

    seed_everything(cfg.seed)
    model = prep.model
    if cfg.accelerator.fsdp:  # sharded before the optimizer sees the parameters (they become DTensor shards)
        shard_fsdp2(model, bf16=acc.mixed_precision == "bf16")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), eps=cfg.optim.eps,
                                  weight_decay=cfg.optim.weight_decay)
    scheduler = make_schedule(optimizer, cfg, total)  # not prepared: accelerate would step it P times
    if not cfg.accelerator.fsdp:  # (an FSDP2 model is not wrapped again: accelerate would add DDP on top)
        model, optimizer = acc.prepare(model, optimizer)
    model.train()

    ckpt_root = work / "checkpoints"
    log_path, alpha_path = work / "log.jsonl", work / "alpha.jsonl"
    step, elapsed_before, tokens_before = 0, 0.0, 0
    latest = latest_checkpoint(ckpt_root) if cfg.checkpoint.resume == "auto" else None
    if latest is not None:
        try:
            meta = load_checkpoint(latest, model=acc.unwrap_model(model), optimizer=optimizer,
                                   scheduler=scheduler, rank=rank)
        except ArtifactError as exc:
            older = [p for _, p in list_checkpoints(ckpt_root) if p != latest]
            hint = (f"; delete {latest} to resume from {older[-1]}" if older
                    else f"; delete {latest} (or use --force) to start over")
            raise ArtifactError(f"{exc}{hint}") from None
        step, elapsed_before, tokens_before = int(meta["step"]), float(meta["elapsed_s"]), int(meta["tokens"])
        if main:
            log.info("resumed from %s (step %d of %d)", latest, step, total)
            _truncate_jsonl(log_path, step)
            _truncate_jsonl(alpha_path, step)
    elif main:
        for p in (log_path, alpha_path):
            p.unlink(missing_ok=True)
    acc.wait_for_everyone()
    if cfg.log.tensorboard:
        acc.init_trackers(cfg.name)

    obj_cfg = prep.objective
    pad_id = prep.tokenizer.pad_token_id
    t0, tokens = time.perf_counter(), tokens_before
    bar = progress(total=total, initial=step, desc=f"train {cfg.name}", **({} if main else {"disable": True}))
    while step < total:
        epoch, in_epoch = divmod(step, steps_per_epoch)
        order = epoch_order(n, cfg.seed, epoch)
        global_ids = order[in_epoch * q_step:(in_epoch + 1) * q_step]
        local_ids = global_ids[rank * q_local:(rank + 1) * q_local]
        # micro-batches of questions of similar length pad less (every question's loss and alpha are its own)
        local_ids = sorted(local_ids, key=lambda i: (max(len(b) for b in prep.questions[i].branches), i))
        step += 1
        sums = torch.zeros(4, dtype=torch.float64)  # loss, loss_sft, loss_consistency, tokens (weighted)
        records: list[dict[str, Any]] = []
        for start in range(0, q_local, m):
            micro = [prep.questions[i] for i in local_ids[start:start + m]]
            batch = collate(micro, pad_id=pad_id, thinking_ids=prep.thinking_ids).to(acc.device)
            with acc.accumulate(model):
                res = compact_objective(model, batch, obj_cfg)
                # this micro-batch's share of the mean over the step's questions (see the module docstring)
                loss = (res.loss_sum if res.loss_sum is not None else res.loss * len(micro)) / q_local
                if cfg.debug.nan_at_step == step:
                    loss = loss * float("nan")
                bad = torch.tensor([0.0 if torch.isfinite(loss.detach()).all() else 1.0], device=acc.device)
                if acc.reduce(bad, "sum").item() > 0:
                    ids = [q.id for q in micro] if bad.item() else []
                    good = latest_checkpoint(ckpt_root)
                    raise TrainingError(
                        f"non-finite loss at optimizer step {step} (epoch {epoch + 1})"
                        + (f" on instances {ids}" if ids else " on another process")
                        + (f"; the last good checkpoint is {good}" if good else "; no checkpoint was written yet"))
                # accelerate divides by the number of accumulation steps; our weights already sum to 1
                acc.backward(loss * acc.gradient_accumulation_steps)
            w = len(micro) / q_local
            sums += torch.tensor([float(res.loss.detach()) * w, float(res.loss_sft.detach()) * w,
                                  float(res.loss_consistency.detach()) * w, float(batch.attention_mask.sum())],
                                 dtype=torch.float64)
            if cfg.log.alpha_every and step % cfg.log.alpha_every == 0:
                alpha, mi, cons, diff = (_vec(res.alpha), _vec(res.mi), _vec(res.consensus), _vec(res.difficulty))
                lk = _vec(res.per_branch_loss)
                grp, tch = batch.group.tolist(), batch.teacher.tolist()
                for i in range(len(grp)):
                    records.append({"step": step, "id": micro[grp[i]].id, "teacher": prep.teachers[tch[i]],
                                    "teacher_index": tch[i], "alpha": alpha[i] if alpha else None,
                                    "mi": mi[i] if mi else None, "consensus": cons[i] if cons else None,
                                    "difficulty": diff[i] if diff else None, "loss": lk[i] if lk else None})
        if not acc.sync_gradients:  # cannot happen with a fixed number of micro-steps per step
            raise TrainingError(f"gradient accumulation out of step at optimizer step {step}")
        clip = cfg.optim.grad_clip if cfg.optim.grad_clip is not None else float("inf")
        grad_norm = acc.clip_grad_norm_(model.parameters(), clip)
        grad_norm = float(full(grad_norm)) if grad_norm is not None else float("nan")  # a DTensor under FSDP2
        if not math.isfinite(grad_norm):
            raise TrainingError(f"non-finite gradient norm at optimizer step {step} (epoch {epoch + 1}) on "
                                f"instances {[prep.questions[i].id for i in global_ids]}")
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        sums = acc.reduce(sums.to(acc.device), "sum").cpu() if n_proc > 1 else sums
        loss_mean = (sums[:3] / n_proc).tolist()
        tokens += int(sums[3])
        if records and n_proc > 1:
            records = gather_object(records)
        if main:
            entry: dict[str, Any] = {"step": step, "epoch": epoch + 1, "lr": lr, "loss": loss_mean[0],
                                     "loss_sft": loss_mean[1], "loss_consistency": loss_mean[2],
                                     "grad_norm": grad_norm, "tokens": int(sums[3])}
            if records:
                tch = [r["teacher_index"] for r in records]
                for key in ("alpha", "mi", "consensus", "difficulty"):
                    vals = [r[key] for r in records]
                    if all(v is not None for v in vals):
                        entry[key] = _per_teacher(vals, tch, prep.teachers)
                append_jsonl(alpha_path, records)  # one write() per line: a kill leaves whole lines
            if cfg.log.every and (step % cfg.log.every == 0 or step == total):
                append_jsonl(log_path, [entry])
                if cfg.log.tensorboard:
                    flat = {k: v for k, v in entry.items() if isinstance(v, (int, float))}
                    for key in ("alpha",):
                        for name, st in entry.get(key, {}).items():
                            flat[f"{key}/{name}"] = st["mean"]
                    acc.log(flat, step=step)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_mean[0]:.4f}")
        if cfg.checkpoint.every and step % cfg.checkpoint.every == 0 and step < total:
            _checkpoint(acc, ckpt_root, step, model, optimizer, scheduler, steps_per_epoch,
                        elapsed_before + time.perf_counter() - t0, tokens, cfg.checkpoint.keep)
        if step in cfg.log.curve_steps:
            snapshot = trainable_state(acc.unwrap_model(model))  # a collective under FSDP2: every process
            if main:
                (work / "curve").mkdir(exist_ok=True)
                save_file(snapshot, str(work / "curve" / f"step-{step:05d}.safetensors"))
        if after_step is not None:
            after_step(step)
        if cfg.debug.step_sleep_s:
            time.sleep(cfg.debug.step_sleep_s)
    bar.close()
    elapsed = elapsed_before + time.perf_counter() - t0
    if cfg.log.tensorboard:
        acc.end_training()
    acc.wait_for_everyone()
    unwrapped = acc.unwrap_model(model)
    whole = full_model_state(unwrapped) if is_sharded_model(unwrapped) else None  # a collective under FSDP2
    if main:
        _publish(cfg, prep, unwrapped, out=out, work=work, steps=total, elapsed=elapsed, tokens=tokens,
                 n_proc=n_proc, state_dict=whole)
    acc.wait_for_everyone()
    return out


def _checkpoint(acc, root: Path, step: int, model, optimizer, scheduler, steps_per_epoch: int, elapsed: float,
                tokens: int, keep: int) -> None:
    """Gather every process's RNG state; the main process writes the checkpoint."""
    states = [rng_state()]
    if acc.num_processes > 1:
        states = gather_object(states)
    unwrapped = acc.unwrap_model(model)
    # an FSDP2 model's parameters and optimizer state are gathered whole by every process (a collective)
    whole = full_states(unwrapped, optimizer) if is_sharded_model(unwrapped) else None
    if acc.is_main_process:
        epoch, in_epoch = divmod(step, steps_per_epoch)
        save_checkpoint(root, step=step, model=unwrapped, optimizer=optimizer, scheduler=scheduler,
                        position={"epoch": epoch, "step_in_epoch": in_epoch, "elapsed_s": elapsed,
                                  "tokens": tokens}, rng_by_rank=states, keep=keep, states=whole)
    acc.wait_for_everyone()


def _publish(cfg: TrainConfig, prep: Prepared, model, *, out: Path, work: Path, steps: int, elapsed: float,
             tokens: int, n_proc: int, state_dict: dict | None = None) -> None:
    """Write the final model, tokenizer, logs, config, manifest and summary as one atomic artifact.
    ``state_dict``: the whole weights of a sharded model (gathered by every process beforehand)."""
    summary = {
        "name": cfg.name, "method": cfg.method, "teachers": prep.teachers, "steps": steps,
        "questions": len(prep.questions), "time_s": round(elapsed, 3), "tokens": tokens,
        "tokens_per_s": round(tokens / elapsed, 1) if elapsed > 0 else None,
        "questions_per_s": round(steps * cfg.optim.questions_per_step / elapsed, 3) if elapsed > 0 else None,
        "num_processes": n_proc, "truncation": prep.truncation.to_dict(),
        "objective": to_dict(prep.objective), "lora": cfg.model.lora is not None,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    with atomic_dir(out, overwrite=True) as tmp:
        if cfg.model.lora is not None:
            model.save_pretrained(tmp / "adapter")
            merged = model.merge_and_unload()
            merged.save_pretrained(tmp)
        else:
            model.save_pretrained(tmp, **({"state_dict": state_dict} if state_dict is not None else {}))
        prep.tokenizer.save_pretrained(tmp)
        for name in ("log.jsonl", "alpha.jsonl"):
            src = work / name
            shutil.copyfile(src, tmp / name) if src.is_file() else (tmp / name).write_text("")
        if (work / "checkpoints").is_dir():
            shutil.copytree(work / "checkpoints", tmp / "checkpoints")
        for name in ("tb", "curve"):
            if (work / name).is_dir():
                shutil.copytree(work / name, tmp / name)
        save_yaml(cfg, tmp / "config.yaml")
        write_json(tmp / "summary.json", summary)
        write_json(tmp / "manifest.json", manifest(cfg.identity(), kind="run",
                                                   extra={"inputs": prep.provenance, "summary": summary}))
    shutil.rmtree(work, ignore_errors=True)
    log.info("run %s: %d steps in %.1f s (%.0f tokens/s) -> %s", cfg.name, steps, elapsed,
             summary["tokens_per_s"] or 0, out)


__all__ = ["Prepared", "run_dirs", "make_accelerator", "make_schedule", "epoch_order", "train_loop"]
