"""vLLM teacher (optional extra ``compact[vllm]``, GPU machines): a thin adapter over ``vllm.LLM``.

Uses only this part of vLLM's contract (tests inject a fake engine implementing it):

* ``engine.get_tokenizer().apply_chat_template(messages, tokenize=False, add_generation_prompt=True)``
* ``vllm.SamplingParams(n=, temperature=, top_p=, max_tokens=, seed=, stop=)``
* ``engine.generate(prompts: list[str], sampling_params: list[SamplingParams])`` -> one result per prompt
  with ``.outputs[j].text`` and ``.outputs[j].token_ids``

Each question gets its own ``SamplingParams`` seeded from (seed, question id), so output does not depend
on batching or order: a resumed run regenerates exactly what it lost.
"""
from __future__ import annotations

import time
from typing import Any

from ..data.records import Example
from ..errors import CompactError, ConfigError
from ..log import get_logger
from .base import Generation, SamplingParams, derive_seed, truncate_at_stop
from .prompts import render_prompt, template_hash

log = get_logger("teachers.vllm")


def _import_vllm():
    try:
        import vllm  # local: optional extra [vllm] (GPU machines)
    except ImportError:
        raise CompactError("the vLLM backend needs the optional extra: pip install 'compact[vllm]' "
                           "(GPU machines)") from None
    return vllm


class VLLMTeacher:
    """A vLLM engine as a teacher, with tensor parallelism for large models."""

    backend = "vllm"

    def __init__(self, model: str, *, name: str | None = None, revision: str | None = None,
                 tensor_parallel_size: int = 1, dtype: str = "auto", max_model_len: int | None = None,
                 chat_template_fallback: str = "error", engine: Any = None, sampling_params_cls: Any = None):
        if chat_template_fallback not in ("error", "plain"):
            raise ConfigError(f"chat_template_fallback must be 'error' or 'plain', got {chat_template_fallback!r}")
        if tensor_parallel_size < 1:
            raise ConfigError("tensor_parallel_size must be >= 1")
        self.model_id, self.revision = model, revision
        self.name = name or model.rstrip("/").split("/")[-1]
        self.tensor_parallel_size, self.fallback = tensor_parallel_size, chat_template_fallback
        if engine is None or sampling_params_cls is None:
            vllm = _import_vllm()
            sampling_params_cls = sampling_params_cls or vllm.SamplingParams
            if engine is None:
                kwargs = dict(model=model, revision=revision, tensor_parallel_size=tensor_parallel_size,
                              dtype=dtype, trust_remote_code=False)
                if max_model_len:
                    kwargs["max_model_len"] = max_model_len
                engine = vllm.LLM(**kwargs)
        self.engine, self._sp_cls = engine, sampling_params_cls

    def provenance(self) -> dict[str, Any]:
        return {"teacher": self.name, "backend": self.backend, "model": self.model_id,
                "revision": self.revision or "", "prompt_template": template_hash(),
                "tensor_parallel_size": self.tensor_parallel_size, "chat_template_fallback": self.fallback}

    def prompt_text(self, ex: Example) -> str:
        """The exact prompt string for ``ex`` (chat template, or the plain fallback)."""
        return render_prompt(self.engine.get_tokenizer(), ex, fallback=self.fallback, teacher=self.name, model_id=self.model_id)

    def generate(self, prompts: list[Example], params: SamplingParams) -> list[list[Generation]]:
        params.validate()
        texts = [self.prompt_text(ex) for ex in prompts]
        sps = [self._sp_cls(n=params.n, temperature=params.temperature, top_p=params.top_p,
                            max_tokens=params.max_new_tokens, stop=list(params.stop) or None,
                            seed=derive_seed("vllm", self.name, params.seed, ex.id) % (2**31))
               for ex in prompts]
        t0 = time.perf_counter()
        results = self.engine.generate(texts, sps)
        if len(results) != len(prompts):
            raise CompactError(f"vLLM returned {len(results)} results for {len(prompts)} prompts")
        out, n_tokens = [], 0
        for res in results:
            gens = []
            for o in res.outputs[:params.n]:
                n = len(getattr(o, "token_ids", ()) or ())
                n_tokens += n
                gens.append(Generation(truncate_at_stop(o.text, params.stop), {"n_new_tokens": n}))
            if len(gens) != params.n:
                raise CompactError(f"vLLM returned {len(gens)} samples, expected n={params.n}")
            out.append(gens)
        dt = time.perf_counter() - t0
        log.info("%s: %d questions x %d samples, %d new tokens in %.1fs (%.0f tok/s)", self.name, len(prompts),
                 params.n, n_tokens, dt, n_tokens / max(dt, 1e-9))
        return out
