"""Teachers write chain-of-thought rationales: one interface, three backends, one store.

* :mod:`.base`       ``Teacher`` protocol, ``SamplingParams``, ``Generation``
* :mod:`.prompts`    the prompt template (its hash is provenance)
* :mod:`.simulated`  four rule-based teachers for the embedded world (the paper's pool, simulated)
* :mod:`.hf`         any Hugging Face causal LM (batched, left-padded, chat template)
* :mod:`.vllm_backend` vLLM for GPU scale (optional extra)
* :mod:`.store`      the on-disk rationale store (resumable, idempotent generation)
* :mod:`.view`       multi-teacher training instances from the store
* :mod:`.generate`   ``compact generate`` and :func:`generate_store`
"""
from .base import Generation, SamplingParams, Teacher

__all__ = ["Generation", "SamplingParams", "Teacher"]
