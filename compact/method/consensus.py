r"""Graph-based consensus: how much the other branches of a question attend to branch k.

Each branch is summarised by the student's final hidden state at its last non-pad position,
:math:`e_k = h[k, \mathrm{last}_k]`. The student's LAST decoder layer's attention projections map it to
:math:`q_k = W_Q e_k + b_Q` and :math:`\kappa_k = W_K e_k + b_K` (no RoPE, no head split). Per question,
over its K branches,

.. math::

    A = \operatorname{softmax}_{\text{row}}\!\left(\frac{Q \hat K^\top}{\sqrt{d_q}}\right),\qquad
    A_{kk} \leftarrow 0 \text{ (after the softmax, rows not renormalised)},\qquad
    C_k = \sum_i A_{ik}

(column sum = weighted in-degree). With grouped-query attention :math:`\kappa` is narrower than
:math:`q` and is widened to :math:`d_q` first:

- ``widening="element"`` (reference): ``k.repeat_interleave(n_heads // n_kv_heads, dim=-1)`` repeats each
  ELEMENT, as the released code does; the widened vector does not line up with the query heads.
- ``widening="head_block"`` (variant): repeats whole key HEADS (head ``h`` of q meets kv head
  ``h // (n_heads // n_kv_heads)``), which is how the attention layer itself pairs them (HF ``repeat_kv``).
  Identical to ``element`` when ``n_heads == n_kv_heads``.

Batched over questions: one (N, N) score matrix with cross-question entries masked to -inf before the
softmax, so each row's softmax runs over its own question exactly as a per-question K x K one would.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
from torch import Tensor, nn

from ..errors import CompactError
from .shards import call_full

Widening = Literal["element", "head_block"]


@dataclasses.dataclass
class AttentionProjections:
    """The last decoder layer's query/key projections and head counts (what consensus needs)."""

    q_proj: nn.Module
    k_proj: nn.Module
    n_heads: int
    n_kv_heads: int


def _unwrap(model: nn.Module) -> nn.Module:
    """Strip DDP/accelerate (``.module``) and peft (``get_base_model()``) wrappers."""
    for _ in range(8):
        if hasattr(model, "get_base_model") and callable(model.get_base_model):
            inner = model.get_base_model()
        elif isinstance(getattr(model, "module", None), nn.Module):
            inner = model.module
        else:
            return model
        if inner is model:
            return model
        model = inner
    return model


def find_attention_projections(model: nn.Module) -> AttentionProjections:
    """Locate the last decoder layer's ``q_proj``/``k_proj`` on Llama/Qwen2/Mistral-style HF models.

    Works through peft and DDP wrappers (a LoRA-wrapped projection is called as the model calls it).
    Raises :class:`CompactError` when the model has no such projections (e.g. GPT-2's fused ``c_attn``);
    set ``use_consensus=False`` in the objective config to train such a model without the consensus score.
    """
    base = _unwrap(model)
    candidates = [m for _, m in base.named_modules()
                  if isinstance(getattr(m, "q_proj", None), nn.Module)
                  and isinstance(getattr(m, "k_proj", None), nn.Module)]
    name = type(base).__name__
    if not candidates:
        raise CompactError(f"model {name} has no attention module with q_proj and k_proj (consensus needs the "
                           f"last decoder layer's query/key projections); set use_consensus=false to drop it")
    attn = candidates[-1]  # named_modules is in registration order: the last layer comes last
    config = getattr(base, "config", None)
    text_config = getattr(config, "get_text_config", None)
    config = text_config() if callable(text_config) else config
    n_heads = getattr(config, "num_attention_heads", None)
    n_kv = getattr(config, "num_key_value_heads", None) or n_heads
    if not isinstance(n_heads, int) or n_heads <= 0:
        raise CompactError(f"model {name}: config has no num_attention_heads (consensus needs the head counts)")
    if n_heads % n_kv:
        raise CompactError(f"model {name}: num_attention_heads={n_heads} is not a multiple of "
                           f"num_key_value_heads={n_kv}")
    return AttentionProjections(attn.q_proj, attn.k_proj, n_heads, n_kv)


def widen_keys(k: Tensor, n_heads: int, n_kv_heads: int, widening: Widening = "element") -> Tensor:
    """Widen (..., n_kv*d) keys to (..., n_heads*d) queries' size."""
    rep = n_heads // n_kv_heads
    if rep == 1:
        return k
    if widening == "element":
        return k.repeat_interleave(rep, dim=-1)
    if widening == "head_block":
        head_dim = k.shape[-1] // n_kv_heads
        heads = k.reshape(*k.shape[:-1], n_kv_heads, head_dim)  # (..., n_kv, d)
        return heads.repeat_interleave(rep, dim=-2).reshape(*k.shape[:-1], n_heads * head_dim)
    raise ValueError(f"unknown GQA widening {widening!r} (expected 'element' or 'head_block')")


@torch.no_grad()
def consensus_scores(emb: Tensor, q_proj: nn.Module, k_proj: nn.Module, n_heads: int, n_kv_heads: int,
                     group: Tensor, widening: Widening = "element") -> Tensor:
    """Consensus :math:`C_k` per row, (N,), detached; ``emb`` (N, H), ``group`` (N,) question index."""
    weight = getattr(q_proj, "weight", None)
    dtype = weight.dtype if isinstance(weight, Tensor) else emb.dtype
    # call_full: under FSDP2/ZeRO-3 the projections' weights are shards here (outside the wrapped forward)
    q = call_full(q_proj, emb.to(dtype)).float()  # (N, dq)
    k = widen_keys(call_full(k_proj, emb.to(dtype)).float(), n_heads, n_kv_heads, widening)  # (N, dq)
    if k.shape[-1] != q.shape[-1]:
        raise CompactError(f"consensus: widened key size {k.shape[-1]} != query size {q.shape[-1]} "
                           f"(n_heads={n_heads}, n_kv_heads={n_kv_heads})")
    scores = q @ k.T / math.sqrt(q.shape[-1])  # (N, N)
    same = group[:, None] == group[None, :]
    attn = torch.softmax(scores.masked_fill(~same, float("-inf")), dim=-1)  # (N, N) block-diagonal
    attn = attn * (1 - torch.eye(len(emb), device=emb.device, dtype=attn.dtype))  # no self-edges
    return attn.sum(dim=0)  # column sum: weighted in-degree
