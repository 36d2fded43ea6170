r"""Loss-based difficulty: each branch's mean token cross-entropy over its assistant tokens.

For branch :math:`k` with input ids :math:`x_{k,0..L-1}`, assistant start :math:`s_k` and last non-pad
position :math:`e_k`, the labels are the shifted inputs on :math:`t \in [\max(s_k, 1), e_k]`:

.. math::

    L_k = \frac{1}{|T_k|} \sum_{t \in T_k} -\log \operatorname{softmax}(z_{k,t-1})[x_{k,t}],
    \qquad T_k = \{t : s_k \le t \le e_k,\ t \ge 1\}

(logits at :math:`t-1` predict the token at :math:`t`). The same :math:`L_k` is the difficulty score
(detached, see :mod:`compact.method.fusion`) and branch :math:`k`'s training loss (with gradient).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

IGNORE_INDEX = -100


def last_nonpad(attention_mask: Tensor) -> Tensor:
    """Index of the last position with mask 1 per row, (N,) long (-1 for an all-pad row)."""
    n, length = attention_mask.shape
    pos = torch.arange(length, device=attention_mask.device).expand(n, length)
    return torch.where(attention_mask.bool(), pos, torch.full_like(pos, -1)).amax(dim=1)


def label_mask(input_ids: Tensor, attention_mask: Tensor, assistant_start: Tensor) -> Tensor:
    """(N, L) bool: input positions whose token is a training label (assistant start .. last non-pad)."""
    n, length = input_ids.shape
    pos = torch.arange(length, device=input_ids.device).expand(n, length)  # (N, L)
    last = last_nonpad(attention_mask)[:, None]
    start = assistant_start.to(input_ids.device).long().clamp(min=1)[:, None]  # position 0 has no predictor
    return (pos >= start) & (pos <= last)


def shifted_labels(input_ids: Tensor, attention_mask: Tensor, assistant_start: Tensor) -> Tensor:
    """(N, L) long targets aligned with the logits: ``labels[:, t]`` is the token predicted at ``t``.

    The last column is always ignored (nothing follows it); ignored entries hold ``IGNORE_INDEX``.
    """
    mask = label_mask(input_ids, attention_mask, assistant_start)  # (N, L) on label positions
    labels = torch.where(mask, input_ids.long(), torch.full_like(input_ids.long(), IGNORE_INDEX))
    out = torch.full_like(labels, IGNORE_INDEX)
    out[:, :-1] = labels[:, 1:]
    return out


def branch_loss(logits: Tensor, input_ids: Tensor, attention_mask: Tensor, assistant_start: Tensor) -> Tensor:
    """Mean assistant-token cross-entropy per row, (N,), differentiable (the released code's per-branch loss).

    A row with no label token gets 0 (it then contributes nothing to the objective).
    """
    targets = shifted_labels(input_ids, attention_mask, assistant_start)  # (N, L)
    n, length, vocab = logits.shape
    ce = F.cross_entropy(logits.float().reshape(n * length, vocab), targets.reshape(-1),
                         ignore_index=IGNORE_INDEX, reduction="none").view(n, length)  # (N, L)
    count = (targets != IGNORE_INDEX).sum(dim=1)
    return ce.sum(dim=1) / count.clamp(min=1)
