"""Full weights under sharding: the one place the method meets data-parallel sharding.

Two scores read weights outside the wrapped forward pass: consensus applies the last decoder layer's query and
key projections to the final hidden state, and the MI proxy multiplies hidden states by the LM head. Under
FSDP2 (``torch.distributed.fsdp.fully_shard``) a module's parameters are DTensor shards between its forward
calls, and under DeepSpeed ZeRO-3 they are empty partitions; used as they are, the scores would fail or be
wrong. :func:`full` returns a plain tensor holding the whole parameter, gathered with the framework's own API
(``DTensor.full_tensor()``, ``deepspeed.zero.GatheredParameters``); :func:`call_full` runs a module with its
parameters gathered. Plain and DDP-wrapped parameters are returned untouched (no copy).

Gathering is a collective: every rank must call it in the same order, which the objective does (every rank
computes its own questions' scores with the same modules). The gathered copies carry no gradient: the scores
are detached before they become teacher weights.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

try:  # DTensor is in torch.distributed (absent from some minimal torch builds)
    from torch.distributed.tensor import DTensor
except ImportError:  # pragma: no cover
    DTensor = None


def is_sharded(t: Tensor) -> bool:
    """Whether ``t`` is an FSDP2/tensor-parallel DTensor or a ZeRO-3-partitioned parameter."""
    return (DTensor is not None and isinstance(t, DTensor)) or hasattr(t, "ds_id")


@torch.no_grad()
def full(t: Tensor) -> Tensor:
    """``t``'s whole value as a plain tensor (``t`` itself when it is not sharded)."""
    if DTensor is not None and isinstance(t, DTensor):
        return t.full_tensor()
    if hasattr(t, "ds_id"):  # a ZeRO-3 parameter: gather it for the copy (deepspeed is then installed)
        import deepspeed  # optional: only a ZeRO-3 run has such parameters
        with deepspeed.zero.GatheredParameters([t], modifier_rank=None):
            return t.detach().clone()
    return t


def call_full(module: nn.Module, *args):
    """``module(*args)`` with every parameter of ``module`` gathered (a plain call when none is sharded)."""
    params = dict(module.named_parameters())
    if not any(is_sharded(p) for p in params.values()):
        return module(*args)
    gathered = {name: full(p) for name, p in params.items()}
    return torch.func.functional_call(module, gathered, args)
