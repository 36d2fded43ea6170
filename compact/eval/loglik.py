r"""Log-likelihood scoring of answer options, as lm-evaluation-harness scores multiple choice.

For a context :math:`c` and candidate continuations :math:`o_1..o_n` the model's choice is
:math:`\arg\max_i \sum_t \log p(o_{i,t} \mid c, o_{i,<t})` (lm-eval's ``acc``: summed, not length-normalised).
A log-likelihood scorer reads what the model *believes*, whatever style it now writes in: a distilled student
that answers every question with a step-by-step rationale still ranks the options by its knowledge, so
knowledge loss is measured apart from a changed answer format.

The world's OOD questions carry *knowledge probes* (:func:`compact.world.tasks.recall_probe`): the chat
recall question of each fact the answer rests on, and the candidate values. The context is the
chat-formatted question followed by the answer prefix ``The answer is``; a continuation is `` <value>.``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..data.answers import ANSWER_PREFIX


def context_text(tokenizer, query: str) -> str:
    """Chat-formatted ``query`` (user turn + generation prompt) and the answer prefix."""
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": query}], add_generation_prompt=True,
                                           tokenize=False)
    return prompt + ANSWER_PREFIX


@torch.inference_mode()
def continuation_logprobs(model, tokenizer, pairs: Sequence[tuple[str, str]], *, batch_size: int = 256) -> list[float]:
    """Summed log-probability of each continuation given its context, one float per ``(context, cont)``.

    The two texts are tokenized apart and concatenated (the continuation starts at a word boundary), so
    the continuation's tokens are exactly those scored. Rows are right-padded; positions need no shift.
    """
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    enc = [(tokenizer(c, add_special_tokens=False)["input_ids"], tokenizer(o, add_special_tokens=False)["input_ids"])
           for c, o in pairs]
    order = sorted(range(len(enc)), key=lambda i: len(enc[i][0]) + len(enc[i][1]))
    out = [0.0] * len(enc)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        seqs = [enc[i][0] + enc[i][1] for i in rows]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, :len(s)] = torch.tensor(s)
            mask[r, :len(s)] = 1
        logp = torch.log_softmax(model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float(), -1)
        for r, i in enumerate(rows):
            n_ctx, n_cont = len(enc[i][0]), len(enc[i][1])
            targets = torch.tensor(enc[i][1], device=device)  # (n_cont,)
            pred = logp[r, n_ctx - 1:n_ctx - 1 + n_cont]  # (n_cont, V): position t predicts token t + 1
            out[i] = float(pred.gather(-1, targets[:, None]).sum())
    return out


def probe_beliefs(model, tokenizer, probes: Sequence[dict[str, Any]], *, batch_size: int = 256) -> list[list[int]]:
    """For each probe, the index of the option the model finds most likely, per query.

    Identical (query, option) pairs across probes are scored once.
    """
    keys: dict[tuple[str, str], int] = {}
    for probe in probes:
        for q in probe["queries"]:
            for opt in q["options"]:
                keys.setdefault((q["query"], opt), len(keys))
    pairs = [(context_text(tokenizer, q), f" {opt}.") for q, opt in keys]
    scores = continuation_logprobs(model, tokenizer, pairs, batch_size=batch_size)
    beliefs = []
    for probe in probes:
        per_query = []
        for q in probe["queries"]:
            s = [scores[keys[(q["query"], opt)]] for opt in q["options"]]
            per_query.append(max(range(len(s)), key=lambda j: (s[j], -j)))
        beliefs.append(per_query)
    return beliefs


__all__ = ["context_text", "continuation_logprobs", "probe_beliefs"]
