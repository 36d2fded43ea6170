"""Greedy evaluation through vLLM (optional extra ``compact[vllm]``, GPU machines), the HF decoder's twin.

``EvalConfig.backend``: ``hf`` (the default: :func:`compact.eval.decode.greedy_generate`), ``vllm``, or ``auto``
(vLLM when it is installed and a GPU is visible, else HF). Both decode greedily from the same token ids (the
chat-formatted prompt tokenized by the model's tokenizer, passed to vLLM as ``prompt_token_ids``) and return the
same thing: new tokens without the eos token, and a stop reason (``eos``, ``answer_line``, ``length``). vLLM has no
per-row stopping criterion, so the answer-line stop is applied afterwards: greedy tokens do not depend on what
follows them, so the generation is cut exactly where the HF decoder would have stopped.

Uses only this part of vLLM's contract (tests inject a fake engine implementing it):

* ``vllm.SamplingParams(n=1, temperature=0.0, max_tokens=, seed=, stop_token_ids=)``
* ``engine.generate([{"prompt_token_ids": ids}, ...], sampling_params)`` -> one result per prompt with
  ``.outputs[0].token_ids`` and ``.outputs[0].finish_reason``
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from ..errors import CompactError
from ..log import get_logger
from .decode import AnswerLineStop

log = get_logger("eval.vllm")


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401  (local: optional extra [vllm]; only its presence is checked)
    except ImportError:
        return False
    return True


def resolve_backend(backend: str) -> str:
    """``hf`` or ``vllm`` for an ``EvalConfig.backend`` (``auto``: vLLM when installed and a GPU is visible)."""
    if backend == "auto":
        return "vllm" if vllm_available() and torch.cuda.is_available() else "hf"
    if backend == "vllm" and not vllm_available():
        raise CompactError("eval backend 'vllm' needs the optional extra: pip install 'compact[vllm]' (GPU machines); "
                           "backend 'auto' falls back to the Hugging Face decoder")
    return backend


def make_engine(model_path: str, *, dtype: str, seed: int, tensor_parallel_size: int = 1) -> tuple[Any, Any]:
    """(vllm.LLM, vllm.SamplingParams) for a local HF model folder (no remote code)."""
    import vllm  # local: optional extra [vllm]

    engine = vllm.LLM(model=model_path, dtype=dtype, seed=seed, tensor_parallel_size=tensor_parallel_size,
                      trust_remote_code=False)
    return engine, vllm.SamplingParams


def vllm_greedy(engine: Any, sampling_params_cls: Any, prompts: Sequence[Sequence[int]], *, eos_ids: set[int],
                max_new_tokens: int, seed: int = 0, stopper: AnswerLineStop | None = None
                ) -> tuple[list[list[int]], list[str]]:
    """Greedy continuations of token-id prompts: (new tokens without eos, stop reasons), as greedy_generate."""
    sp = sampling_params_cls(n=1, temperature=0.0, max_tokens=max_new_tokens, seed=seed,
                             stop_token_ids=sorted(eos_ids))
    results = engine.generate([{"prompt_token_ids": list(p)} for p in prompts], sp)
    if len(results) != len(prompts):
        raise CompactError(f"vLLM returned {len(results)} results for {len(prompts)} prompts")
    generated, reasons = [], []
    for res in results:
        out = res.outputs[0]
        toks = [int(t) for t in out.token_ids]
        reason = "length"
        if toks and toks[-1] in eos_ids:
            toks, reason = toks[:-1], "eos"
        elif getattr(out, "finish_reason", None) == "stop":
            reason = "eos"
        if stopper is not None:  # where the HF decoder's per-row answer-line stop would have ended the row
            for t, tok in enumerate(toks):
                if tok in stopper.newline_ids and stopper.done(toks[:t + 1]):
                    toks, reason = toks[:t + 1], "answer_line"
                    break
        generated.append(toks)
        reasons.append(reason)
    return generated, reasons
