"""The base student: a tiny Qwen2 causal LM, pretrained on the world's base corpus.

Pretraining is plain next-token prediction, ``L = -(1/N) sum_t log p(x_t | x_<t)`` over the non-pad
tokens of packed blocks. The base corpus teaches the world's language (stories without questions),
single-operation arithmetic facts, the knowledge base and chat-formatted OOD questions answered
directly (``The answer is X.``), but NO in-distribution question and NO step-by-step rationale: the
base student knows the facts and the answer format, and distillation has reasoning to teach and OOD
knowledge the student can forget.
"""
from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import TrainingError
from ..eval.decode import eos_token_ids, format_prompt, greedy_generate
from ..inputs.model import small_qwen2
from ..log import get_logger, progress
from . import tasks as T

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel

log = get_logger("world.student")

ANSWER_LINE = "The answer is {}."


def build_model(scfg, tokenizer, seed: int) -> PreTrainedModel:
    """A freshly initialised Qwen2 (q/k/v biases, grouped-query attention, tied embeddings)."""
    model = small_qwen2(len(tokenizer), seed=seed, hidden=scfg.hidden_size, layers=scfg.num_layers,
                        heads=scfg.num_heads, kv_heads=scfg.num_kv_heads, intermediate=scfg.intermediate_size,
                        max_positions=scfg.max_position_embeddings, rope_theta=scfg.rope_theta, use_cache=True,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = None
    model.generation_config.do_sample = False
    return model


def n_params(model) -> int:
    """Distinct parameters (tied embedding counted once)."""
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------------------------------
# Base corpus
# ----------------------------------------------------------------------------------------------------
_OPS_WORDS = {"+": "plus", "-": "minus", "*": "times", "/": "divided by"}


def arith_fact(rng: random.Random, max_value: int) -> str:
    """One single-operation fact, symbolic (``12 + 7 = 19``) or in words (``12 plus 7 is 19``)."""
    while True:
        op = rng.choice("+-*/")
        if op in "+-":
            a, b = rng.randint(1, max_value), rng.randint(1, max_value)
            if op == "-":
                a, b = max(a, b), min(a, b)
            if op == "+" and a + b > max_value * 2:
                continue
        elif op == "*":
            a, b = rng.randint(1, 12), rng.randint(1, max(1, min(12, max_value // 2)))
        else:
            b, q = rng.randint(1, 12), rng.randint(1, max(1, min(20, max_value // 2)))
            a = b * q
        c = T.apply_op(op, a, b)
        if rng.random() < 0.5:
            return f"{a} {op} {b} = {c}"
        return f"{a} {_OPS_WORDS[op]} {b} is {c}"


def all_facts(max_value: int) -> list[tuple[int, str, int, int]]:
    """Every single-operation fact a world step can use: ``(a, op, b, c)`` with all values in [1, max_value].

    ``+``: a + b <= max_value; ``-``: a > b; ``*``: a, b >= 2; ``/``: exact, b >= 2 (the tasks' rules).
    """
    out = []
    for a in range(1, max_value + 1):
        for b in range(1, max_value + 1):
            if a + b <= max_value:
                out.append((a, "+", b, a + b))
            if a > b:
                out.append((a, "-", b, a - b))
            if a >= 2 and b >= 2 and a * b <= max_value:
                out.append((a, "*", b, a * b))
            if b >= 2 and a % b == 0:
                out.append((a, "/", b, a // b))
    return out


def fact_text(a: int, op: str, b: int, c: int) -> str:
    """A fact exactly as the rationales write an equation."""
    return f"{a} {op} {b} = {c}."


def recall_pairs(rng: random.Random, n: int) -> list[tuple[str, str]]:
    """``n`` chat recall questions over the knowledge base and their one-word answers.

    Forward (an animal's kind, habitat or food: the probes OOD questions are scored with) and reverse
    ("Which of these lives in the city?" -> one such animal, as the multiple-choice stems ask).
    """
    animals = list(T.ANIMALS)
    out: list[tuple[str, str]] = []
    while len(out) < n:
        if rng.random() < 0.6:
            a = rng.choice(animals)
            field = rng.choice(T.FIELDS)
            out.append((T.RECALL_QUERIES[field].format(a=T.article(a)), T.ANIMALS[a][T.FIELDS.index(field)]))
            continue
        form = rng.randrange(3)
        if form == 0:
            kind = rng.choice(T.KINDS)
            q, pool = f"Which of these is {T.article(kind)}?", [a for a in animals if T.ANIMALS[a][0] == kind]
        elif form == 1:
            place = rng.choice(T.HABITATS)
            q, pool = f"Which of these lives in the {place}?", [a for a in animals if T.ANIMALS[a][1] == place]
        else:
            prop3, _ = rng.choice(T.PROPS)
            q, pool = f"Which of these {prop3}?", [a for a in animals if T._kind_has(T.ANIMALS[a][0], prop3)]
        out.append((q, rng.choice(pool)))
    return out


def story_text(rng: random.Random, tcfg) -> str | None:
    """World language: a word-problem story with no question (sometimes with a side fact)."""
    story = T.make_story(rng, rng.randint(tcfg.min_steps, tcfg.max_steps), tcfg.max_value)
    if story is None:
        return None
    sents = T.render_story(story, pronouns=rng.random() < 0.5)
    if rng.random() < 0.3:
        other = rng.choice([i for i in T.ITEMS if i not in " ".join(sents)])
        sents.append(rng.choice(T.DISTRACTORS).format(x=story.sentences[0][0], n=rng.randint(2, 50), other=other))
    return " ".join(sents)


def chat_text(tokenizer, question: str, answer: str, work: str = "") -> str:
    """A chat turn answered in one line (``work``: an equation line written before it)."""
    content = (work + "\n" if work else "") + ANSWER_LINE.format(answer)
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": question}, {"role": "assistant", "content": content}], tokenize=False)


def fresh_rows(tasks: Sequence[str], n: int, stream: str, seed: int, tcfg, exclude: set[str],
               accept=None) -> list[tuple]:
    """``n`` generated rows spread evenly over ``tasks``, each task from its own ``stream`` of draws.

    A row whose question is in ``exclude`` (the held-out questions) or that ``accept(row)`` rejects is
    skipped; a task that keeps failing gives fewer rows rather than looping forever.
    """
    out: list[tuple] = []
    for i, task in enumerate(tasks):
        rng = random.Random(T.task_seed(seed, task, stream))
        want = n // len(tasks) + (1 if i < n % len(tasks) else 0)
        got = 0
        for _ in range(50 * want + 100):
            if got >= want:
                break
            row = T._GENERATORS[task](rng, tcfg)
            if row is None or row[0] in exclude or (accept is not None and not accept(row)):
                continue
            out.append(row)
            got += 1
    return out


def extra_ood_questions(n: int, seed: int, exclude: set[str]) -> list[tuple[str, str]]:
    """``n`` fresh OOD questions (half mcq, half yes/no) over the same facts, none in ``exclude``.

    The train split alone is too few examples for a tiny model to learn to pick a choice letter; these
    new compositions teach the skill without ever showing a dev or test question.
    """
    return [(r[0], r[1]) for r in fresh_rows(T.OOD_TASKS, n, "corpus-ood", seed, None, exclude)]


def direct_id_questions(n: int, tcfg, seed: int, exclude: set[str]) -> list[tuple[str, str]]:
    """``n`` fresh in-distribution questions (a stream of their own, never a dev/test question) with their
    answers: the base student learns to answer in one line, not to reason step by step."""
    return [(r[0], r[1]) for r in fresh_rows(T.ID_TASKS, n, "corpus-direct", seed, tcfg, exclude)]


def single_step_questions(n: int, tcfg, seed: int, exclude: set[str]) -> list[tuple[str, str, str]]:
    """``n`` ONE-operation questions of the in-distribution forms (a story step, a story step with
    distractors and the question first, a single-operation expression): (question, answer, equation).

    The atomic skill every rationale step uses: find the two numbers in the question, write the operation
    on them as ``a op b = c.`` and answer. Chaining two to four such steps, carrying results from one to
    the next, is what the base student has not learned (the ID tasks need 2-4).
    """
    one = dataclasses.replace(tcfg, min_steps=1, max_steps=1)
    rows = fresh_rows(T.ID_TASKS, n, "corpus-single-step", seed, one, exclude,
                      accept=lambda row: len(row[2].get("steps", [])) == 1)
    return [(q, a, fact_text(meta["steps"][0]["args"][0], meta["steps"][0]["op"], meta["steps"][0]["args"][1],
                             meta["steps"][0]["value"])) for q, a, meta in rows]


def base_corpus(ccfg, tcfg, ood_train: Sequence, tokenizer, seed: int, exclude: set[str] = frozenset()) -> list[str]:
    """The pretraining documents (plain texts end with the eos token; chat texts already do).

    ``exclude``: question texts never to put in the corpus (the OOD dev and test questions).
    """
    rng = random.Random(T.task_seed(seed, "corpus", "corpus"))
    eos = tokenizer.eos_token
    docs: list[str] = []
    while len(docs) < ccfg.stories:
        text = story_text(rng, tcfg)
        if text is not None:
            docs.append(text + eos)
    for _ in range(ccfg.arith_docs):
        docs.append(". ".join(arith_fact(rng, tcfg.max_value) for _ in range(ccfg.facts_per_doc)) + "." + eos)
    facts = T.kb_facts()
    for _ in range(ccfg.kb_repeats):
        order = facts[:]
        rng.shuffle(order)
        for i in range(0, len(order), ccfg.facts_per_doc):
            docs.append(" ".join(order[i:i + ccfg.facts_per_doc]) + eos)
    for _ in range(ccfg.ood_repeats):
        docs += [chat_text(tokenizer, e.question, e.answer) for e in ood_train]
    docs += [chat_text(tokenizer, q, a) for q, a in extra_ood_questions(ccfg.ood_extra, seed, set(exclude))]
    facts_all = all_facts(tcfg.max_value)
    for _ in range(ccfg.fact_sweeps):
        order = facts_all[:]
        rng.shuffle(order)
        for i in range(0, len(order), ccfg.facts_per_doc):
            docs.append(" ".join(fact_text(*f) for f in order[i:i + ccfg.facts_per_doc]) + eos)
    docs += [chat_text(tokenizer, q, a) for q, a in recall_pairs(rng, ccfg.recall_docs)]
    docs += [chat_text(tokenizer, q, a) for q, a in direct_id_questions(ccfg.direct_id_docs, tcfg, seed, set(exclude))]
    docs += [chat_text(tokenizer, q, a, work) for q, a, work in single_step_questions(ccfg.single_step_docs, tcfg, seed,
                                                                                     set(exclude))]
    rng.shuffle(docs)
    return docs


def pack_blocks(docs: Iterable[str], tokenizer, block_size: int, rng: random.Random) -> list[list[int]]:
    """Greedy packing of whole documents into blocks (a block starts at a document start).

    A document longer than a block is cut. Blocks are right-padded later; the order is shuffled.
    """
    blocks: list[list[int]] = []
    cur: list[int] = []
    for doc in docs:
        ids = tokenizer(doc, add_special_tokens=False)["input_ids"][:block_size]
        if len(cur) + len(ids) > block_size:
            blocks.append(cur)
            cur = []
        cur = cur + ids
    if cur:
        blocks.append(cur)
    rng.shuffle(blocks)
    return blocks


def _lr_at(step: int, total: int, peak: float, warmup: int, min_frac: float) -> float:
    """Linear warm-up, then cosine decay to ``min_frac * peak``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress_ = (step - warmup) / max(1, total - warmup)
    return peak * (min_frac + (1 - min_frac) * 0.5 * (1 + math.cos(math.pi * progress_)))


def pretrain(model, blocks: list[list[int]], scfg, tokenizer, seed: int, log_path: Path | None = None) -> dict:
    """Next-token pretraining on the packed blocks; returns the loss log summary."""
    with torch.enable_grad():  # callers (notebooks) may have turned grad off globally
        return _pretrain(model, blocks, scfg, tokenizer, seed, log_path)


def _pretrain(model, blocks, scfg, tokenizer, seed, log_path):


    torch.manual_seed(seed)
    pad = tokenizer.pad_token_id
    opt = torch.optim.AdamW(model.parameters(), lr=scfg.lr, betas=(0.9, 0.95), weight_decay=scfg.weight_decay)
    warmup = max(1, int(scfg.warmup_frac * scfg.steps))
    model.train()
    t0 = time.perf_counter()
    n_tokens = 0
    history = []
    ema = None
    order_rng = random.Random(seed)
    order: list[int] = []
    logf = open(log_path, "w") if log_path else None  # noqa: SIM115 - closed in the finally below
    bar = progress(range(scfg.steps), desc="pretrain base student", unit="step")
    try:
        for step in bar:
            if len(order) < scfg.batch_size:  # a new pass over the blocks, reshuffled
                nxt = list(range(len(blocks)))
                order_rng.shuffle(nxt)
                order += nxt
            idx, order = order[:scfg.batch_size], order[scfg.batch_size:]
            width = max(len(blocks[i]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)  # (B, T)
            for r, i in enumerate(idx):
                ids[r, :len(blocks[i])] = torch.tensor(blocks[i])
            mask = (ids != pad).long()
            labels = ids.masked_fill(mask == 0, -100)
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, scfg.steps, scfg.lr, warmup, scfg.min_lr_frac)
            out = model(input_ids=ids, attention_mask=mask, labels=labels)
            loss = out.loss
            if not torch.isfinite(loss):
                raise TrainingError(f"base student pretraining: loss is {loss.item()} at step {step}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            n_tokens += int(mask.sum())
            value = float(loss.detach())
            ema = value if ema is None else 0.95 * ema + 0.05 * value
            if step % scfg.log_every == 0 or step == scfg.steps - 1:
                rec = {"step": step, "loss": round(value, 5), "loss_ema": round(ema, 5),
                       "lr": opt.param_groups[0]["lr"], "tokens": n_tokens,
                       "seconds": round(time.perf_counter() - t0, 2)}
                history.append(rec)
                if logf:
                    logf.write(json.dumps(rec) + "\n")
                    logf.flush()
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{ema:.3f}")
                log.debug("step %d loss %.4f", step, value)
    finally:
        if logf:
            logf.close()
    model.eval()
    seconds = time.perf_counter() - t0
    log.info("pretrained %d steps, %d tokens in %.1fs (%.0f tok/s), final loss %.3f", scfg.steps, n_tokens,
             seconds, n_tokens / max(seconds, 1e-9), ema or float("nan"))
    return {"steps": scfg.steps, "tokens": n_tokens, "seconds": round(seconds, 2),
            "final_loss_ema": ema, "blocks": len(blocks)}


# ----------------------------------------------------------------------------------------------------
# Greedy decoding (the package's one decoder)
# ----------------------------------------------------------------------------------------------------
def generate(model, tokenizer, questions: Sequence[str], *, max_new_tokens: int = 32,
             batch_size: int = 64) -> list[str]:
    """Greedy answers to chat-formatted ``questions`` (:func:`compact.eval.decode.greedy_generate`, batches of
    ``batch_size`` left-padded prompts, stop at the eos token)."""
    prompts = [tokenizer(format_prompt(tokenizer, q), add_special_tokens=False)["input_ids"] for q in questions]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out: list[str] = []
    for i in range(0, len(prompts), batch_size):
        new, _ = greedy_generate(model, prompts[i:i + batch_size], pad_id=pad, eos_ids=eos_token_ids(tokenizer, model),
                                 max_new_tokens=max_new_tokens)
        out += tokenizer.batch_decode(new, skip_special_tokens=True)
    return out


def final_line_matches(text: str, gold: str) -> bool:
    """Strict check used in the build summary: the last non-empty line is ``The answer is {gold}.``."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return bool(lines) and lines[-1] == ANSWER_LINE.format(gold)


__all__ = [
    "ANSWER_LINE",
    "all_facts",
    "arith_fact",
    "direct_id_questions",
    "fact_text",
    "recall_pairs",
    "single_step_questions",
    "base_corpus",
    "build_model",
    "final_line_matches",
    "generate",
    "n_params",
    "pack_blocks",
    "pretrain",
    "story_text",
]
