"""A batch of B questions x K branches, the layout every objective path reads (tensors only)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import CompactError


@dataclass
class Batch:
    """B questions x K branches as N = B*K right-padded rows; the rows of one question are contiguous."""

    input_ids: Tensor  # (N, L) long
    attention_mask: Tensor  # (N, L)
    assistant_start: Tensor  # (N,) index of the first assistant token
    group: Tensor  # (N,) question index 0..B-1
    teacher: Tensor  # (N,) teacher index 0..K-1 (static weights, logging)
    gold_ids: Tensor  # (B, G) gold answer token ids, right-padded with -1
    gold_mask: Tensor  # (B, G)
    thinking_ids: Tensor  # (T,) ids counting as thinking tokens
    answer_span: Tensor | None = None  # (N, L) bool mask of final-answer tokens (answer_span consistency)

    @property
    def n_questions(self) -> int:
        return int(self.gold_ids.shape[0])

    def to(self, device) -> "Batch":
        return Batch(**{f.name: (v.to(device) if isinstance(v, Tensor) else v)
                        for f in dataclasses.fields(self) for v in [getattr(self, f.name)]})

    def validate(self) -> None:
        """Raise :class:`CompactError` naming the field when shapes or indices are inconsistent."""
        if self.input_ids.dim() != 2:
            raise CompactError(f"Batch field 'input_ids': expected (N, L), got shape {tuple(self.input_ids.shape)}")
        n, length = self.input_ids.shape
        if tuple(self.attention_mask.shape) != (n, length):
            raise CompactError(f"Batch field 'attention_mask': shape {tuple(self.attention_mask.shape)} != {(n, length)}")
        for name in ("assistant_start", "group", "teacher"):
            if tuple(getattr(self, name).shape) != (n,):
                raise CompactError(f"Batch field '{name}': shape {tuple(getattr(self, name).shape)} != {(n,)}")
        if self.gold_ids.dim() != 2 or self.gold_mask.shape != self.gold_ids.shape:
            raise CompactError(f"Batch field 'gold_mask': shape {tuple(self.gold_mask.shape)} != gold_ids "
                               f"{tuple(self.gold_ids.shape)} (expected (B, G))")
        if n == 0:
            raise CompactError("Batch field 'input_ids': empty batch")
        g = self.group.long()
        if int(g.min()) < 0 or int(g.max()) >= self.n_questions:
            raise CompactError(f"Batch field 'group': values must lie in 0..{self.n_questions - 1}")
        if bool((g[1:] != g[:-1]).sum() != len(torch.unique(g)) - 1):
            raise CompactError("Batch field 'group': the rows of one question must be contiguous")
        if self.answer_span is not None and tuple(self.answer_span.shape) != (n, length):
            raise CompactError(f"Batch field 'answer_span': shape {tuple(self.answer_span.shape)} != {(n, length)}")

    def split(self, n_micro: int) -> list["Batch"]:
        """Split by whole questions into ``n_micro`` consecutive micro-batches (question ids renumbered)."""
        order = torch.unique_consecutive(self.group)
        parts = [p for p in torch.tensor_split(order, min(n_micro, len(order))) if len(p)]
        out = []
        for qs in parts:
            rows = torch.isin(self.group, qs)
            remap = torch.full((self.n_questions,), -1, dtype=torch.long, device=self.group.device)
            remap[qs.long()] = torch.arange(len(qs), device=self.group.device)
            out.append(Batch(
                input_ids=self.input_ids[rows], attention_mask=self.attention_mask[rows],
                assistant_start=self.assistant_start[rows], group=remap[self.group[rows].long()],
                teacher=self.teacher[rows], gold_ids=self.gold_ids[qs.long()], gold_mask=self.gold_mask[qs.long()],
                thinking_ids=self.thinking_ids,
                answer_span=None if self.answer_span is None else self.answer_span[rows]))
        return out


def synthetic_batch(n_questions: int, k: int, length: int, vocab: int, *, seed: int = 0, gold_len: int = 3,
                    n_thinking: int = 4, plant_answer: bool = True, pad_id: int = 0) -> Batch:
    """A random, right-padded batch of the real layout (tests, benchmarks, notebooks); ids avoid ``pad_id``.

    Each question has a shared prompt; each branch a random-length assistant part that (with
    ``plant_answer``) ends its reasoning with the gold token sequence followed by a couple of tokens.
    """
    gen = torch.Generator().manual_seed(seed)
    n = n_questions * k
    lo = pad_id + 1
    ids = torch.randint(lo, vocab, (n, length), generator=gen)
    am = torch.zeros(n, length, dtype=torch.long)
    start = torch.zeros(n, dtype=torch.long)
    gold = torch.randint(lo, vocab, (n_questions, gold_len), generator=gen)
    for q in range(n_questions):
        prompt = int(torch.randint(2, max(3, length // 4), (1,), generator=gen))
        rows = range(q * k, (q + 1) * k)
        ids[list(rows), :prompt] = ids[q * k, :prompt].clone()  # branches share the question's prompt
        for r in rows:
            min_len = min(length, prompt + gold_len + 3)
            total = int(torch.randint(min_len, length + 1, (1,), generator=gen))
            am[r, :total] = 1
            ids[r, total:] = pad_id
            start[r] = prompt
            if plant_answer and total - 2 - gold_len >= prompt:
                at = int(torch.randint(prompt, total - 2 - gold_len + 1, (1,), generator=gen))
                ids[r, at:at + gold_len] = gold[q]
    thinking = torch.randperm(vocab - lo, generator=gen)[:n_thinking] + lo
    return Batch(input_ids=ids, attention_mask=am, assistant_start=start,
                 group=torch.arange(n_questions).repeat_interleave(k), teacher=torch.arange(k).repeat(n_questions),
                 gold_ids=gold, gold_mask=torch.ones_like(gold, dtype=torch.bool), thinking_ids=thinking)
