"""The one greedy decoder: chat-formatted prompts, left-padded batches, a KV cache, stop at eos or the answer line."""
from __future__ import annotations

import inspect
from typing import Sequence

import torch
from transformers import GenerationConfig

from ..data.answers import ANSWER_PREFIX
from ..errors import ConfigError
from ..paths import resolve


def format_prompt(tokenizer, question: str, system_prompt: str = "") -> str:
    """The chat-formatted prompt (user turn + generation prompt) the student answers."""
    messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + \
        [{"role": "user", "content": question}]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    raise ConfigError("the tokenizer has no chat template; evaluation formats every question as a chat turn")


class AnswerLineStop:
    """Per-row check: a complete ``The answer is ...`` line has been generated (newline after it)."""
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        vocab_size = len(tokenizer)
        # token ids whose text contains a newline: only then can a line have just ended
        self.newline_ids = {i for i in range(vocab_size) if "\n" in tokenizer.decode([i])}
        self.prefix = ANSWER_PREFIX.lower()

    def done(self, generated: list[int]) -> bool:
        text = self.tokenizer.decode(generated, skip_special_tokens=True)
        complete_lines = text.split("\n")[:-1]
        return any(self.prefix in line.lower() for line in complete_lines)


def eos_token_ids(tokenizer, model=None, path=None) -> set[int]:
    """The tokenizer's eos id and the generation config's (the loaded ``model``'s, else ``path``'s
    generation_config.json when there is one)."""
    gen_cfg = getattr(model, "generation_config", None)
    if gen_cfg is None and path is not None and (resolve(path) / "generation_config.json").is_file():
        gen_cfg = GenerationConfig.from_pretrained(str(resolve(path)))
    ids = set()
    for src in (tokenizer.eos_token_id, getattr(gen_cfg, "eos_token_id", None)):
        if isinstance(src, int):
            ids.add(src)
        elif isinstance(src, (list, tuple)):
            ids.update(int(i) for i in src)
    return ids


def cache_argument(model) -> str:
    """The forward argument that takes the KV cache: ``cache`` in transformers releases that renamed it (they
    warn on ``past_key_values``), ``past_key_values`` before. A wrapper (PEFT) is asked for its base model."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(type(inner).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def cache_of(out):
    """The KV cache a forward returned, under either name."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


@torch.inference_mode()
def greedy_generate(model, prompts: Sequence[Sequence[int]], *, pad_id: int, eos_ids: set[int],
                    max_new_tokens: int, stopper: AnswerLineStop | None = None,
                    prune: float = 0.0) -> tuple[list[list[int]], list[str]]:
    """Greedy decoding of a left-padded batch with a KV cache; returns new tokens (eos excluded) and stop reasons.

    ``prune`` > 0: once the rows still decoding fall to that fraction of the rows in the batch, finished rows
    leave the batch and its KV cache (a student's rationales differ several-fold in length, so the longest rows
    otherwise drag every finished row through attention and the cache's growth). Rows then run in a smaller
    batch, which can change floating-point results at the last bit; 0 (the default) keeps the batch whole.
    """
    device = next(model.parameters()).device
    B, L = len(prompts), max(len(p) for p in prompts)
    ids = torch.full((B, L), pad_id, dtype=torch.long)
    mask = torch.zeros((B, L), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, L - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[i, L - len(p):] = 1
    ids, mask = ids.to(device), mask.to(device)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, L): left padding must not shift positions
    cache_arg = cache_argument(model)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
    cache = cache_of(out)
    logits = out.logits[:, -1, :]  # (b, V): b rows still in the batch
    next_pos = pos[:, -1:] + 1  # (b, 1)
    eos = torch.tensor(sorted(eos_ids), dtype=torch.long, device=device)
    generated: list[list[int]] = [[] for _ in range(B)]
    reasons = ["length"] * B
    rows = list(range(B))  # batch row -> prompt index
    for step in range(max_new_tokens):
        tok = logits.argmax(dim=-1)  # (b,)
        is_eos = torch.isin(tok, eos)
        tok_list, eos_list = tok.tolist(), is_eos.tolist()
        for r, i in enumerate(rows):
            if reasons[i] != "length":
                continue
            if eos_list[r]:
                reasons[i] = "eos"
                continue
            generated[i].append(tok_list[r])
            if stopper is not None and tok_list[r] in stopper.newline_ids and stopper.done(generated[i]):
                reasons[i] = "answer_line"
        alive_list = [reasons[i] == "length" for i in rows]
        n_alive = sum(alive_list)
        if n_alive == 0 or step == max_new_tokens - 1:
            break
        alive = torch.tensor(alive_list, dtype=torch.bool, device=device)
        tok = torch.where(alive, tok, torch.full_like(tok, pad_id))
        mask = torch.cat([mask, alive.long()[:, None]], dim=1)  # (b, L + step + 1)
        if prune > 0 and n_alive <= prune * len(rows) and hasattr(cache, "batch_select_indices"):
            keep = alive.nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            tok, mask, next_pos = tok[keep], mask[keep], next_pos[keep]
            rows = [i for i, a in zip(rows, alive_list) if a]
        out = model(input_ids=tok[:, None], attention_mask=mask, position_ids=next_pos, use_cache=True,
                    **{cache_arg: cache})
        cache = cache_of(out)
        logits = out.logits[:, -1, :]
        next_pos = next_pos + 1
    return generated, reasons
