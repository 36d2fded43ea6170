"""Periodic checkpoints that a SIGKILL cannot corrupt, and bitwise-exact resume.

A checkpoint ``ckpt-<step>/`` holds
    model.safetensors   the trainable parameters (LoRA adapters, or every parameter for full fine-tuning)
    optimizer.pt        optimizer state_dict (torch.save of tensors/dicts; loaded with weights_only=True)
    scheduler.pt        learning-rate scheduler state_dict
    rng-<rank>.pt       python / numpy / torch (and CUDA) generator states of each process
    manifest.json       step, epoch, position in the epoch, and the sha256 and size of every other file:
                        written last, so its presence marks a complete one
It is built in a temporary sibling directory and renamed into place (``provenance.atomic_dir``), so a kill
at any moment leaves either the old set of checkpoints or the new one, never a half-written directory.
On resume every file is checked against its recorded sha256 before anything is loaded: a flipped bit or
a truncated file is an :class:`ArtifactError` naming the file, never a silently different run.
"""
from __future__ import annotations

import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)

from ..errors import ArtifactError
from ..method.shards import is_sharded
from ..provenance import atomic_dir, file_sha256, is_complete, read_manifest, write_json

_NAME = re.compile(r"^ckpt-(\d+)$")


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters the optimizer updates, by name, as contiguous CPU tensors (gathered whole when the model is
    FSDP2-sharded: then a collective that every process calls, and only the main process's copy is complete)."""
    if is_sharded_model(model):
        return _trainable_of(model, full_model_state(model))
    return {n: p.detach().to("cpu").contiguous().clone() for n, p in model.named_parameters() if p.requires_grad}


def is_sharded_model(model: torch.nn.Module) -> bool:
    """Whether ``model``'s parameters are FSDP2 (DTensor) shards."""
    return any(is_sharded(p) for p in model.parameters())


def full_model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every weight of an FSDP2-sharded model, whole on the main process (a collective: every process calls it)."""
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def full_states(model: torch.nn.Module, optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """(trainable parameters, optimizer state) of an FSDP2-sharded model, gathered whole on the main process
    (torch.distributed.checkpoint's full state dicts, offloaded to the CPU; other processes get empty dicts). A
    collective: every process calls it. The optimizer state is keyed by parameter name, not index."""
    msd, osd = get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return _trainable_of(model, msd), osd


def _trainable_of(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    return {n: v.contiguous() for n, v in state.items() if n in trainable}


def load_full_states(model: torch.nn.Module, optimizer, model_state: dict, optimizer_state: dict, where: str) -> None:
    """Load whole (gathered) states into an FSDP2-sharded model and its optimizer; every process calls it."""
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    missing, extra = sorted(trainable - set(model_state)), sorted(set(model_state) - trainable)
    if missing or extra:
        raise ArtifactError(f"checkpoint {where} does not fit the model: missing {missing[:3]}, unexpected {extra[:3]}")
    try:
        set_state_dict(model, optimizer, model_state_dict=model_state, optim_state_dict=optimizer_state,
                       options=StateDictOptions(full_state_dict=True, strict=False))
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
        raise ArtifactError(f"checkpoint {where} does not fit this run: "
                            f"{(str(exc).splitlines() or [''])[0][:200]}") from None


def load_trainable_state(model: torch.nn.Module, state: dict[str, torch.Tensor], *, where: str = "") -> None:
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    missing = sorted(set(params) - set(state))
    extra = sorted(set(state) - set(params))
    if missing or extra:
        raise ArtifactError(f"checkpoint {where} does not fit the model: missing {missing[:3]}, unexpected {extra[:3]}")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(state[n].to(device=p.device, dtype=p.dtype))


def rng_state() -> dict[str, Any]:
    py = random.getstate()
    np_state = np.random.get_state()
    out: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {"key": torch.from_numpy(np.asarray(np_state[1]).astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``root``, oldest first."""
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_dir() and is_complete(p):
            out.append((int(m.group(1)), p))
    return sorted(out)


def latest_checkpoint(root: Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1][1] if found else None


def save_checkpoint(root: Path, *, step: int, model: torch.nn.Module | None, optimizer, scheduler,
                    position: dict[str, Any], rng_by_rank: list[dict[str, Any]], keep: int,
                    states: tuple[dict[str, torch.Tensor], dict] | None = None) -> Path:
    """Write ``root/ckpt-<step>`` atomically (call on the main process only) and prune to ``keep``. ``states``:
    (parameters, optimizer state) already gathered (:func:`full_states`, for a sharded model), else read from
    ``model`` and ``optimizer``."""
    final = root / f"ckpt-{step:08d}"
    model_state, optim_state = states if states is not None else (trainable_state(model), optimizer.state_dict())
    with atomic_dir(final, overwrite=True) as tmp:
        save_file(model_state, str(tmp / "model.safetensors"))
        torch.save(optim_state, tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        for rank, state in enumerate(rng_by_rank):
            torch.save(state, tmp / f"rng-{rank}.pt")
        files = {f.name: {"sha256": file_sha256(f), "bytes": f.stat().st_size}
                 for f in sorted(tmp.iterdir()) if f.is_file()}
        write_json(tmp / "manifest.json", {"kind": "checkpoint", "step": step, **position,
                                           "num_processes": len(rng_by_rank), "files": files})
    for _, old in list_checkpoints(root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def verify_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint's manifest, after checking every recorded file's size and sha256 (ArtifactError naming
    the first file that differs). Checkpoints written before checksums were recorded are loaded unchecked."""
    meta = read_manifest(path)
    files = meta.get("files")
    if files is None:
        return meta
    if not isinstance(files, dict):
        raise ArtifactError(f"{path / 'manifest.json'}: field 'files' is not a mapping")
    for name, rec in files.items():
        f = path / name
        if not f.is_file():
            raise ArtifactError(f"checkpoint file {f} is missing")
        size = f.stat().st_size
        if size != rec.get("bytes"):
            raise ArtifactError(f"checkpoint file {f} is corrupt: {size} bytes, the manifest records "
                                f"{rec.get('bytes')} (truncated or overwritten)")
        if file_sha256(f, memo=False) != rec.get("sha256"):
            raise ArtifactError(f"checkpoint file {f} is corrupt: its sha256 differs from the one recorded when "
                                "it was written")
    return meta


def _load_file(f: Path, loader):
    """``loader(f)``; any failure (truncated safetensors, garbage pickle, ...) is one line naming the file."""
    if not f.is_file():
        raise ArtifactError(f"checkpoint file {f} is missing")
    try:
        return loader(f)
    except ArtifactError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors, pickle, zip and torch errors alike
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ArtifactError(f"checkpoint file {f} cannot be loaded ({type(exc).__name__}: {first})") from None


def load_checkpoint(path: Path, *, model: torch.nn.Module, optimizer, scheduler, rank: int) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and this process's RNG; return the manifest (step, position)."""
    meta = verify_checkpoint(path)

    def torch_load(f: Path):
        return torch.load(f, weights_only=True)

    state = _load_file(path / "model.safetensors", lambda f: load_file(str(f)))
    targets = [("optimizer.pt", optimizer), ("scheduler.pt", scheduler)]
    if is_sharded_model(model):  # whole states, loaded into the shards by every process
        load_full_states(model, optimizer, state, _load_file(path / "optimizer.pt", torch_load), where=str(path))
        targets = targets[1:]
    else:
        load_trainable_state(model, state, where=str(path))
    for name, target in targets:
        sd = _load_file(path / name, torch_load)
        try:
            target.load_state_dict(sd)
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
            raise ArtifactError(f"checkpoint file {path / name} does not fit this run: "
                                f"{(str(exc).splitlines() or [''])[0][:200]}") from None
    rng_file = path / f"rng-{rank}.pt"
    if rng_file.is_file():  # absent when resuming with more processes than wrote it: fresh RNG
        rng = _load_file(rng_file, torch_load)
        try:
            set_rng_state(rng)
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
            raise ArtifactError(f"checkpoint file {rng_file} holds no usable RNG state ({exc})") from None
    return meta
