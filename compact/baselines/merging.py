r"""Parameter-space baselines: "Direct Avg." and TIES merging of single-teacher students.

Direct Avg. (uniform or weighted parameter average of students fine-tuned from the same base):

.. math:: \theta = \sum_i w_i \theta_i, \qquad \sum_i w_i = 1.

TIES (Yadav et al. 2023) on task vectors :math:`\tau_i = \theta_i - \theta_0`, per parameter tensor:

1. *Trim*: keep the top ``density`` fraction of entries of :math:`\tau_i` by magnitude, zero the rest.
2. *Elect*: :math:`\gamma = \operatorname{sign}(\sum_i \hat\tau_i)` (the sign with the larger summed mass).
3. *Disjoint mean*: :math:`\bar\tau = \sum_i [\operatorname{sign}\hat\tau_i = \gamma]\,\hat\tau_i /
   \max(1, \#\{i : \operatorname{sign}\hat\tau_i = \gamma\})`.
4. :math:`\theta = \theta_0 + \lambda \bar\tau`.

Models are read from and written to HF folders as safetensors; a PEFT adapter folder is merged into its
base first. Non-float tensors (integer buffers) are copied from the first model.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Mapping, Sequence

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig

from ..errors import ArtifactError, ConfigError
from ..log import get_logger
from ..paths import resolve

StateDict = dict[str, torch.Tensor]
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")
log = get_logger("merging")


def load_state_dict(path: str | Path) -> StateDict:
    """The full state dict of an HF model folder (safetensors, single or sharded; PEFT adapters merged)."""
    p = resolve(path)
    if (p / "adapter_config.json").is_file() and not (p / "model.safetensors").is_file():
        return _merged_adapter_state(p)
    single = p / "model.safetensors"
    if single.is_file():
        return dict(load_file(str(single)))
    index = p / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        out: StateDict = {}
        for shard in shards:
            out.update(load_file(str(p / shard)))
        return out
    raise ArtifactError(f"{p}: no model.safetensors (merging reads safetensors only)")


def _merged_adapter_state(p: Path) -> StateDict:
    from peft import AutoPeftModelForCausalLM  # local: optional extra [lora]

    model = AutoPeftModelForCausalLM.from_pretrained(str(p), torch_dtype=torch.float32)
    return {k: v.detach().clone() for k, v in model.merge_and_unload().state_dict().items()}


def _check_compatible(sds: Sequence[Mapping[str, torch.Tensor]], names: Sequence[str]) -> None:
    keys = set(sds[0])
    for sd, name in zip(sds[1:], names[1:]):
        if set(sd) != keys:
            diff = sorted(set(sd) ^ keys)[:3]
            raise ArtifactError(f"{name}: parameters differ from {names[0]} (e.g. {diff}); same architecture needed")
        for k in keys:
            if sd[k].shape != sds[0][k].shape:
                raise ArtifactError(f"{name}: parameter {k} has shape {tuple(sd[k].shape)}, "
                                    f"{names[0]} has {tuple(sds[0][k].shape)}")


def _weights(weights: Sequence[float] | None, n: int) -> list[float]:
    if weights is None:
        return [1.0 / n] * n
    if len(weights) != n:
        raise ConfigError(f"merge weights: {len(weights)} given for {n} models")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError(f"merge weights must be non-negative with a positive sum, got {list(weights)}")
    total = float(sum(weights))
    return [float(w) / total for w in weights]


def direct_average(state_dicts: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float] | None = None,
                   names: Sequence[str] | None = None) -> StateDict:
    """The (weighted, normalised) parameter average of models of one architecture."""
    if not state_dicts:
        raise ConfigError("direct_average: no models given")
    names = list(names or [f"model {i}" for i in range(len(state_dicts))])
    _check_compatible(state_dicts, names)
    w = _weights(weights, len(state_dicts))
    out: StateDict = {}
    for k, ref in state_dicts[0].items():
        if not ref.is_floating_point():
            out[k] = ref.clone()
            continue
        acc = torch.zeros_like(ref, dtype=torch.float64)
        for wi, sd in zip(w, state_dicts):
            acc += wi * sd[k].to(torch.float64)
        out[k] = acc.to(ref.dtype)
    return out


def trim_top_k(tau: torch.Tensor, density: float) -> torch.Tensor:
    """Keep the ``ceil(density * numel)`` largest-magnitude entries of ``tau`` (ties: lowest index first)."""
    if density >= 1.0:
        return tau.clone()
    n = tau.numel()
    k = min(n, math.ceil(round(density * n, 6)))  # round first: 0.3 * 10 must give 3, not 4
    flat = tau.reshape(-1)
    out = torch.zeros_like(flat)
    if k > 0:
        # stable sort on -|tau| so equal magnitudes keep index order (deterministic)
        idx = torch.sort(flat.abs(), descending=True, stable=True).indices[:k]
        out[idx] = flat[idx]
    return out.reshape(tau.shape)


def ties_merge_tensors(base: torch.Tensor, finetuned: Sequence[torch.Tensor], *, density: float = 0.2,
                       lam: float = 1.0) -> torch.Tensor:
    """TIES for one parameter tensor: trim, elect sign, disjoint mean, scale, add to the base."""
    b = base.to(torch.float64)
    taus = torch.stack([trim_top_k(t.to(torch.float64) - b, density) for t in finetuned])  # (M, *shape)
    elected = torch.sign(taus.sum(dim=0))  # (*shape); 0 where the mass cancels exactly
    agree = (torch.sign(taus) == elected) & (taus != 0)  # (M, *shape)
    count = agree.sum(dim=0).clamp(min=1)
    merged_tau = (taus * agree).sum(dim=0) / count
    return (b + lam * merged_tau).to(base.dtype)


def ties_merge(base: Mapping[str, torch.Tensor], finetuned: Sequence[Mapping[str, torch.Tensor]], *,
               density: float = 0.2, lam: float = 1.0, names: Sequence[str] | None = None) -> StateDict:
    """TIES merge of several fine-tuned state dicts against their common ``base``."""
    if not finetuned:
        raise ConfigError("ties_merge: no fine-tuned models given")
    if not 0.0 < density <= 1.0:
        raise ConfigError(f"ties density must be in (0, 1], got {density}")
    names = list(names or ["base"] + [f"model {i}" for i in range(len(finetuned))])
    _check_compatible([base, *finetuned], names)
    out: StateDict = {}
    for k, ref in base.items():
        if not ref.is_floating_point():
            out[k] = finetuned[0][k].clone()
            continue
        out[k] = ties_merge_tensors(ref, [sd[k] for sd in finetuned], density=density, lam=lam)
    return out


def save_model_folder(state_dict: Mapping[str, torch.Tensor], out_dir: str | Path, like: str | Path) -> Path:
    """Write ``state_dict`` as ``model.safetensors`` into ``out_dir`` with ``like``'s config and tokenizer files."""
    like, out = resolve(like), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for f in sorted(like.iterdir()):
        if f.is_file() and f.name not in _WEIGHT_FILES and not f.name.startswith(("adapter_", "manifest")) \
                and not f.name.endswith((".safetensors", ".bin", ".jsonl")):
            shutil.copy2(f, out / f.name)
    if (like / "adapter_config.json").is_file() and not (out / "config.json").is_file():
        from peft import PeftConfig  # local: optional extra [lora]

        base_id = PeftConfig.from_pretrained(str(like)).base_model_name_or_path
        AutoConfig.from_pretrained(base_id).save_pretrained(out)
    tensors = {k: v.detach().contiguous() for k, v in state_dict.items()}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def merge_models(models: Sequence[str | Path], out_dir: str | Path, *, method: str = "average",
                 base: str | Path | None = None, weights: Sequence[float] | None = None, density: float = 0.2,
                 lam: float = 1.0) -> Path:
    """Merge HF model folders (``method`` = "average" or "ties"; TIES needs ``base``) into ``out_dir``."""
    names = [str(m) for m in models]
    sds = [load_state_dict(m) for m in models]
    if method == "average":
        merged = direct_average(sds, weights, names=names)
    elif method == "ties":
        if base is None:
            raise ConfigError("ties merging needs the base model (task vectors are finetuned - base)")
        merged = ties_merge(load_state_dict(base), sds, density=density, lam=lam, names=[str(base), *names])
    else:
        raise ConfigError(f"merge method {method!r}: expected 'average' or 'ties'")
    log.info("merged %d models (%s) into %s", len(models), method, out_dir)
    return save_model_folder(merged, out_dir, like=models[0])


__all__ = ["load_state_dict", "direct_average", "trim_top_k", "ties_merge_tensors", "ties_merge",
           "save_model_folder", "merge_models"]
