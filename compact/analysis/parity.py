"""The objective's two paths on a profile's own student and rationales, and its tokenizer's thinking words.

The test suite holds the fast path to the reference path on tiny random models; this analysis measures the
same agreement on the model a profile actually trains (the world's student, or a real pretrained LM such as
SmolLM2 with its grouped-query attention and BPE tokenizer) for a batch of the store's real rationales, and
publishes it: scores, fused score, alpha, loss and every parameter gradient, fast minus reference.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ..inputs.encode import collate, encode_instances
from ..method.adaptability import THINKING_WORDS, thinking_token_ids
from ..method.objective import ObjectiveConfig, compact_objective

QUANTITIES = ("per_branch_loss", "mi", "consensus", "difficulty", "fused", "alpha")


def thinking_words_table(tokenizer, words: Sequence[str] = THINKING_WORDS) -> list[dict[str, Any]]:
    """Each thinking word: its tokens bare and after a space, and whether either is one token (only those count
    in the MI proxy's thinking-token rule)."""
    rows = []
    for word in words:
        bare = tokenizer.encode(word, add_special_tokens=False)
        spaced = tokenizer.encode(" " + word, add_special_tokens=False)
        rows.append({"word": word, "bare_tokens": len(bare), "spaced_tokens": len(spaced),
                     "counted": len(bare) == 1 or len(spaced) == 1})
    return rows


def _run(model, batch, cfg: ObjectiveConfig):
    model.zero_grad(set_to_none=True)
    out = compact_objective(model, batch, cfg)
    out.loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return out, grads


def objective_parity(model, tokenizer, instances: Sequence, *, max_length: int = 1024,
                     cfg: ObjectiveConfig | None = None) -> list[dict[str, Any]]:
    """Fast minus reference on ``instances`` (one batch): max |difference| and max |reference| per quantity.

    The model is put in eval mode (dropout off, LoRA's included) so both paths see one function; both run one
    padded forward (no length buckets) so every score is compared; gradients are of the trainable parameters.
    """
    cfg = cfg or ObjectiveConfig()
    teachers = list(instances[0].teachers)
    questions, _ = encode_instances(list(instances), tokenizer, teachers=teachers, max_length=max_length)
    batch = collate(questions, pad_id=tokenizer.pad_token_id, thinking_ids=thinking_token_ids(tokenizer))
    model.eval()
    ref, gref = _run(model, batch, dataclasses.replace(cfg, path="reference", forward_buckets=1))
    fast, gfast = _run(model, batch, dataclasses.replace(cfg, path="fast", forward_buckets=1))
    rows = []
    for key in QUANTITIES:
        a, b = getattr(fast, key).detach().double(), getattr(ref, key).detach().double()
        rows.append({"quantity": key, "max_abs_diff": float((a - b).abs().max()), "max_abs_ref": float(b.abs().max()),
                     "n": int(b.numel())})
    for key in ("loss", "loss_sft", "loss_consistency"):
        a, b = float(getattr(fast, key).detach()), float(getattr(ref, key).detach())
        rows.append({"quantity": key, "max_abs_diff": abs(a - b), "max_abs_ref": abs(b), "n": 1})
    diff = max(float((gfast[n] - gref[n]).abs().max()) for n in gref)
    scale = max(float(gref[n].abs().max()) for n in gref)
    rows.append({"quantity": "gradients", "max_abs_diff": diff, "max_abs_ref": scale,
                 "n": int(sum(g.numel() for g in gref.values()))})
    model.zero_grad(set_to_none=True)
    return rows


__all__ = ["QUANTITIES", "objective_parity", "thinking_words_table"]
