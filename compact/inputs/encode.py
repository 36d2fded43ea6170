"""Instances -> token batches: each question's K branches, chat-formatted, right-padded, ready for the objective.

Branch ``k`` of a question is the student's chat sequence ``[user: question, assistant: rationale_k]``
encoded with ``tokenizer.apply_chat_template``. ``assistant_start`` is the length of the prompt encoded
with ``add_generation_prompt=True``; it must be a token prefix of the full sequence (checked).

Gold answer tokens ``G`` (for the MI score) are the answer string encoded on its own, without special
tokens (book/specification.md: "token ids of the gold answer string"). With BPE tokenizers the answer may be encoded
differently inside a sentence (``" 42"`` vs ``"42"``); we keep the bare encoding, as the reference does,
because ``G`` only selects rows of ``W_U`` to average and the bare form is the tokenizer-independent choice.

Truncation policy: a branch longer than ``max_length`` keeps its prompt and loses the END of its rationale
(the eos included); a question whose prompt alone leaves no room for one assistant token is dropped.
Both are counted in :class:`TruncationStats` and reported in the run summary.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import torch

from ..errors import ArtifactError, DataError
from ..method.batch import Batch

# More unknown tokens than this in the rationales means the store was written for another tokenizer.
UNK_FRACTION_LIMIT = 0.05


@dataclasses.dataclass
class EncodedQuestion:
    """One question's branches as token ids (unpadded)."""
    id: str
    answer: str
    branches: list[list[int]]        # K sequences: prompt + assistant tokens
    assistant_start: list[int]       # per branch: index of the first assistant token
    teachers: list[int]              # per branch: the teacher's index in the run's teacher list
    gold_ids: list[int]

    @property
    def n_tokens(self) -> int:
        return sum(len(b) for b in self.branches)


@dataclasses.dataclass
class TruncationStats:
    """What the max-length policy cut (reported in ``summary.json``)."""
    max_length: int
    questions: int = 0
    branches: int = 0
    branches_truncated: int = 0
    tokens_truncated: int = 0
    questions_dropped: int = 0
    questions_no_branch: int = 0  # oracle: questions without a rationale labelled correct
    dropped_ids: list[str] = dataclasses.field(default_factory=list)  # the first 20

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _chat_ids(tokenizer, messages: list[dict[str, str]], **kwargs) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False, **kwargs)
    if isinstance(out, dict) or hasattr(out, "input_ids"):  # older/newer return types
        out = out["input_ids"]
    return [int(t) for t in out]


def encode_question(instance, tokenizer, *, teacher_index: dict[str, int], branches: Sequence[int] | None = None,
                    max_length: int, stats: TruncationStats | None = None,
                    prompt: Sequence[dict[str, str]] | None = None) -> EncodedQuestion | None:
    """Encode one instance's branches (``branches`` selects rationale positions); None if it is dropped.

    ``prompt``: the chat messages before the assistant turn (default: one user turn, the question), e.g. a
    dataset row's system + user messages (:mod:`compact.hf.dataset`)."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise ArtifactError("the student's tokenizer has no chat template (tokenizer.chat_template is empty)")
    ks = list(range(len(instance.rationales))) if branches is None else list(branches)
    if not ks:
        raise DataError("no rationale selected", record=instance.id, field="rationales")
    user = [dict(m) for m in prompt] if prompt is not None else [{"role": "user", "content": instance.question}]
    prompt = _chat_ids(tokenizer, user, add_generation_prompt=True)
    if stats is not None:
        stats.questions += 1
        stats.branches += len(ks)
    if len(prompt) >= max_length:
        if stats is not None:
            stats.questions_dropped += 1
            if len(stats.dropped_ids) < 20:
                stats.dropped_ids.append(instance.id)
        return None
    seqs, starts, teachers = [], [], []
    for k in ks:
        if k >= len(instance.rationales):
            raise DataError(f"no rationale at position {k} (it has {len(instance.rationales)})",
                            record=instance.id, field="rationales")
        name = instance.teachers[k]
        if name not in teacher_index:
            raise DataError(f"teacher {name!r} is not among the run's teachers {sorted(teacher_index)}",
                            record=instance.id, field="teachers")
        full = _chat_ids(tokenizer, user + [{"role": "assistant", "content": instance.rationales[k]}])
        if full[: len(prompt)] != prompt:
            raise ArtifactError(
                f"instance {instance.id}: the chat template's generation prompt is not a token prefix of the "
                "full conversation, so the assistant start cannot be located; use a prefix-stable template")
        if len(full) <= len(prompt):
            raise DataError("empty rationale after chat formatting", record=instance.id,
                            field=f"rationales[{k}]")
        if len(full) > max_length:
            if stats is not None:
                stats.branches_truncated += 1
                stats.tokens_truncated += len(full) - max_length
            full = full[:max_length]
        seqs.append(full)
        starts.append(len(prompt))
        teachers.append(teacher_index[name])
    gold = [int(t) for t in tokenizer(instance.answer, add_special_tokens=False)["input_ids"]]
    if not gold:
        raise DataError("the gold answer encodes to no tokens", record=instance.id, field="answer")
    return EncodedQuestion(id=instance.id, answer=instance.answer, branches=seqs, assistant_start=starts,
                           teachers=teachers, gold_ids=gold)


def encode_instances(instances: Sequence, tokenizer, *, teachers: Sequence[str], max_length: int,
                     branch_teacher: str | None = None, keep_branch=None,
                     prompts: Sequence[Sequence[dict[str, str]]] | None = None
                     ) -> tuple[list[EncodedQuestion], TruncationStats]:
    """Encode every instance (all branches, or only ``branch_teacher``'s); check tokenizer/store fit.

    ``keep_branch(label) -> bool`` (the oracle control) keeps only the branches whose ground-truth label
    it accepts; a question with none left is dropped and counted in ``stats.questions_no_branch``.
    ``prompts`` (one per instance): chat messages that replace the default user turn (see :func:`encode_question`).
    """
    teacher_index = {name: i for i, name in enumerate(teachers)}
    stats = TruncationStats(max_length=max_length)
    out: list[EncodedQuestion] = []
    if prompts is not None and len(prompts) != len(instances):
        raise ValueError(f"{len(prompts)} prompts for {len(instances)} instances")
    for j, inst in enumerate(instances):
        if len(inst.rationales) != len(inst.teachers):
            raise DataError(f"{len(inst.rationales)} rationales but {len(inst.teachers)} teacher names",
                            record=inst.id, field="teachers")
        ks = None
        if branch_teacher is not None:
            if branch_teacher not in inst.teachers:
                raise DataError(f"no rationale from teacher {branch_teacher!r}", record=inst.id, field="teachers")
            ks = [inst.teachers.index(branch_teacher)]
        if keep_branch is not None:
            labels = inst.labels or [{} for _ in inst.teachers]
            ks = [k for k in (ks if ks is not None else range(len(inst.teachers))) if keep_branch(labels[k])]
            if not ks:
                stats.questions_no_branch += 1
                continue
        q = encode_question(inst, tokenizer, teacher_index=teacher_index, branches=ks, max_length=max_length,
                            stats=stats, prompt=None if prompts is None else prompts[j])
        if q is not None:
            out.append(q)
    check_tokenizer_fit(out, tokenizer)
    return out, stats


def check_tokenizer_fit(questions: Sequence[EncodedQuestion], tokenizer) -> None:
    """ArtifactError when the rationales are mostly unknown tokens to this tokenizer (store/tokenizer mismatch)."""
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None or not questions:
        return
    n = bad = 0
    for q in questions:
        for seq, start in zip(q.branches, q.assistant_start):
            body = seq[start:]
            n += len(body)
            bad += sum(1 for t in body if t == unk)
    if n and bad / n > UNK_FRACTION_LIMIT:
        raise ArtifactError(
            f"{100 * bad / n:.1f}% of rationale tokens are unknown to the student's tokenizer "
            f"(limit {100 * UNK_FRACTION_LIMIT:.0f}%): the rationale store and the tokenizer do not belong together")


def collate(questions: Sequence[EncodedQuestion], *, pad_id: int, thinking_ids: Sequence[int]):
    """Right-pad B questions' branches into one :class:`compact.method.batch.Batch` (N = sum of K_b rows).

    ``answer_span`` is left empty: for answer-span consistency the objective locates each branch's final
    answer itself (:func:`compact.method.objective.locate_answer_spans`, the last occurrence of the gold tokens).
    """
    if not questions:
        raise ValueError("collate needs at least one question")
    rows = [(b, seq, s, t) for b, q in enumerate(questions)
            for seq, s, t in zip(q.branches, q.assistant_start, q.teachers)]
    n, width = len(rows), max(len(r[1]) for r in rows)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)         # (N, L)
    attention_mask = torch.zeros((n, width), dtype=torch.long)           # (N, L)
    for i, (_, seq, _, _) in enumerate(rows):
        input_ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        attention_mask[i, : len(seq)] = 1
    g = max(len(q.gold_ids) for q in questions)
    gold_ids = torch.full((len(questions), g), -1, dtype=torch.long)      # (B, G), -1 = padding
    gold_mask = torch.zeros((len(questions), g), dtype=torch.bool)       # (B, G)
    for b, q in enumerate(questions):
        gold_ids[b, : len(q.gold_ids)] = torch.tensor(q.gold_ids, dtype=torch.long)
        gold_mask[b, : len(q.gold_ids)] = True
    fields = dict(
        input_ids=input_ids, attention_mask=attention_mask,
        assistant_start=torch.tensor([r[2] for r in rows], dtype=torch.long),  # (N,)
        group=torch.tensor([r[0] for r in rows], dtype=torch.long),            # (N,)
        teacher=torch.tensor([r[3] for r in rows], dtype=torch.long),          # (N,)
        gold_ids=gold_ids, gold_mask=gold_mask,
        thinking_ids=torch.tensor(sorted(set(int(t) for t in thinking_ids)), dtype=torch.long),  # (T,)
    )
    return Batch(**fields)

