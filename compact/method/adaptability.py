r"""MI-based adaptability: a gold-answer "information jump" proxy along each branch.

With :math:`h_{k,t}` the student's final hidden state, :math:`W_U` the LM head and :math:`G` the gold
answer's token ids,

.. math::

    g_{k,t} = \frac{1}{|G|}\sum_{j} \langle h_{k,t}, W_U[G_j] \rangle,\qquad
    \Delta_{k,t} = g_{k,t} - g_{k,t-1}\ (\Delta_{k,0} = 0),\qquad
    w_{k,t} = \begin{cases} 1.0 & x_{k,t} \in \text{thinking ids} \\ 0.1 & \text{otherwise}\end{cases}

- ``variant="reference"`` (released code): :math:`M_k = \sum_t \mathrm{ReLU}(\Delta_{k,t})\, w_{k,t}` over
  ALL positions of the padded row (prompt and padding included, no length normalisation). It therefore
  depends on how far the row is padded and favours long rationales. The released code pads one question's
  K branches to their longest branch; with several questions in one batch we sum each question's rows up
  to that same width :math:`L_q = \max_{k \in q} (e_k + 1)`, so the numbers equal the one-question layout
  whatever else shares the batch (micro-batch and multi-process invariance).
- ``variant="masked_mean"``: the same jumps, summed only over assistant tokens
  (:math:`s_k \le t \le e_k`; the jump INTO the first assistant token counts) and divided by their number,
  so appended padding and the prompt change nothing and length is not rewarded.

It is a proxy (not an MI estimator); :mod:`compact.method.hsic` gives a kernel estimate to validate it against.
"""
from __future__ import annotations

import contextlib
from typing import Iterable, Literal

import torch
from torch import Tensor

from .difficulty import last_nonpad

MIVariant = Literal["reference", "masked_mean"]

#: The released implementation's thinking words (each tokenized bare and with a leading space).
THINKING_WORDS: tuple[str, ...] = (
    "Therefore", "Thus", "Hence", "So", "Consequently", "Wait", "But", "However", "Although", "First",
    "Second", "Finally", "Specifically", "In summary", "Basically", "Let", "Assuming", "Suppose", "Hmm",
    "Okay", "Note",
)
THINKING_WEIGHT = 1.0
OTHER_WEIGHT = 0.1


def thinking_token_ids(tokenizer, words: Iterable[str] = THINKING_WORDS) -> list[int]:
    """Token ids of the thinking words: bare and space-prefixed encodings that are exactly one token."""
    ids: set[int] = set()
    for word in words:
        for text in (word, " " + word):
            enc = tokenizer.encode(text, add_special_tokens=False)
            if len(enc) == 1:
                ids.add(int(enc[0]))
    return sorted(ids)


def gold_direction(lm_head_weight: Tensor, gold_ids: Tensor, gold_mask: Tensor) -> Tensor:
    """Mean unembedding row of each question's gold tokens, (B, H): ``mean_j W_U[G_j]``."""
    w = lm_head_weight.detach().float()
    rows = w[gold_ids.clamp(min=0).long()]  # (B, G, H)
    m = gold_mask.to(rows.dtype)[..., None]  # (B, G, 1)
    return (rows * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)


@torch.no_grad()
def mi_proxy(hidden: Tensor, lm_head_weight: Tensor, gold_ids: Tensor, gold_mask: Tensor, group: Tensor,
             input_ids: Tensor, attention_mask: Tensor, assistant_start: Tensor, thinking_ids: Tensor,
             variant: MIVariant = "reference") -> Tensor:
    """Adaptability :math:`M_k` per row, (N,), detached; ``hidden`` (N, L, H), ``gold_ids`` (B, G)."""
    w = lm_head_weight.detach().float()
    h = hidden.detach().float()  # (N, L, H)
    n, length, _ = h.shape
    gold = gold_ids.to(h.device).long()  # (B, G)
    gmask = gold_mask.to(h.device).bool()  # (B, G)
    g = torch.empty(n, length, device=h.device)  # (N, L)
    for b in torch.unique(group).tolist():
        rows = (group == b).nonzero().squeeze(1)
        gb = gold[b][gmask[b]]  # this question's gold ids
        if gb.numel() == 0:
            g[rows] = 0.0
            continue
        g[rows] = (h[rows] @ w[gb].T).mean(dim=-1)  # (K_b, L): mean_j <h_t, W_U[G_j]>
    delta = torch.zeros_like(g)
    delta[:, 1:] = g[:, 1:] - g[:, :-1]  # (N, L), delta_0 = 0
    think = torch.isin(input_ids.to(h.device), thinking_ids.to(h.device).long())
    weight = torch.where(think, torch.full_like(g, THINKING_WEIGHT), torch.full_like(g, OTHER_WEIGHT))
    jumps = torch.relu(delta) * weight  # (N, L)
    if variant == "reference":
        # the padded row of the released one-question layout ends at the question's longest branch
        end = last_nonpad(attention_mask.to(h.device))  # (N,)
        grp = group.to(h.device).long()
        width = torch.zeros(int(grp.max()) + 1, dtype=end.dtype, device=h.device).scatter_reduce(
            0, grp, end, reduce="amax")[grp]  # (N,) last index of the question's padded rows
        pos = torch.arange(length, device=h.device).expand(n, length)
        return (jumps * (pos <= width[:, None])).sum(dim=1)
    if variant == "masked_mean":
        pos = torch.arange(length, device=h.device).expand(n, length)
        start = assistant_start.to(h.device).long().clamp(min=1)[:, None]
        keep = (pos >= start) & (pos <= last_nonpad(attention_mask.to(h.device))[:, None])  # (N, L)
        return (jumps * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
    raise ValueError(f"unknown MI variant {variant!r} (expected 'reference' or 'masked_mean')")


@contextlib.contextmanager
def zero_pad_attention(model, attention_mask: Tensor):
    """Within the block, every attention layer returns zeros at PAD query positions of ``attention_mask``.

    This is what flash-attention 2 (the released trainer's backend) does: it drops pad tokens and scatters
    its output back into zeros, while sdpa and eager let a pad query attend to the real tokens before it.
    The hidden states of real tokens are the same either way (right padding: no real token attends to a
    pad), so only scores that read pad positions change, i.e. reference-mode MI, which sums over the
    padded row. Runs on any device; used to show the difference without a GPU. The hooks mask by
    ``attention_mask``'s shape, so the objective must run one padded forward inside the block
    (``forward_buckets=1, share_prompts=False``).
    """
    keep = attention_mask.bool()[..., None]  # (N, L, 1)

    def hook(_module, _inputs, output):
        if isinstance(output, tuple):
            return (output[0] * keep.to(output[0].dtype),) + tuple(output[1:])
        return output * keep.to(output.dtype)

    handles = [m.register_forward_hook(hook) for name, m in model.named_modules()
               if name.endswith("self_attn")]
    try:
        yield
    finally:
        for h in handles:
            h.remove()

