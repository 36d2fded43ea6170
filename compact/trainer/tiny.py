"""Tiny random students for tests, benchmarks and CPU smoke runs (no downloads).

:func:`tiny_tokenizer` builds a word-level tokenizer with the world's chat template and special tokens
(``<|user|>``, ``<|assistant|>``, ``<|end|>`` eos, ``<|pad|>``); :func:`tiny_student` saves a randomly
initialised Qwen2 (grouped-query attention, tied embeddings) plus that tokenizer as a Hugging Face folder
that :func:`compact.trainer.run.train` loads like any other student.
"""
from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from ..inputs.model import small_qwen2_config
from ..teachers.view import Instance

# The world's chat format: user turn, assistant turn, each closed by <|end|> (also the eos token).
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}<|user|> {{ m['content'] }} <|end|> "
    "{% elif m['role'] == 'assistant' %}<|assistant|> {{ m['content'] }} <|end|> {% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)
SPECIAL = ["<|pad|>", "<|unk|>", "<|user|>", "<|assistant|>", "<|end|>"]
# Words the tests' instances use; digits are single tokens so numbers spell out digit by digit.
WORDS = (
    "the a an is are was of to and in on for with how many much does do has have had what which who "
    "tom ann bob sue apples pears coins books cats dogs birds eggs each more less left total in all "
    "buys sells gives gets eats finds loses makes first second then next finally therefore thus so "
    "hence wait but however let suppose okay note answer step we add subtract multiply divide by "
    "gives get equals plus minus times yes no true false option choose because"
).split()
PUNCT = list(".,?!:;+-*/=()'\"$%")


def tiny_tokenizer(extra_words: list[str] | tuple[str, ...] = ()):
    """A word-level ``PreTrainedTokenizerFast`` (digits and punctuation split) with the chat template."""
    vocab: dict[str, int] = {}
    for tok in [*SPECIAL, *[str(d) for d in range(10)], *PUNCT, *WORDS, *extra_words]:
        vocab.setdefault(tok, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|unk|>"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.Punctuation(),
    ])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<|pad|>", unk_token="<|unk|>",
                                  eos_token="<|end|>", additional_special_tokens=["<|user|>", "<|assistant|>"])
    tok.chat_template = CHAT_TEMPLATE
    return tok




def tiny_student(path: str | Path, *, seed: int = 0, tokenizer=None, **config_kwargs) -> Path:
    """Save a random tiny Qwen2 + tokenizer (safetensors) to ``path`` and return it."""
    tok = tokenizer if tokenizer is not None else tiny_tokenizer()
    cfg = small_qwen2_config(len(tok), pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                            **config_kwargs)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    path = Path(path)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def toy_instances(n: int = 24, *, seed: int = 0, teachers: tuple[str, ...] = ("t0", "t1", "t2")) -> list:
    """``n`` hand-made addition questions with one rationale per teacher (the last teacher is often wrong)."""


    rng = random.Random(seed)
    styles = [
        lambda a, b, s: f"first , {a} + {b} = {s} . so the answer is {s} .",
        lambda a, b, s: f"we add {a} and {b} . {a} plus {b} equals {s} . answer : {s}",
        lambda a, b, s: f"wait , {a} + {b} = {s + rng.choice([0, 1, 2])} . the answer is {s + 1} .",
    ]
    out = []
    for i in range(n):
        a, b = rng.randint(1, 40), rng.randint(1, 40)
        rats = [styles[k % len(styles)](a, b, a + b) for k in range(len(teachers))]
        out.append(Instance(id=f"toy-{i}", question=f"tom has {a} apples and gets {b} more . how many apples does "
                            "tom have ?", answer=str(a + b), answer_type="number", source="toy",
                            rationales=rats, teachers=list(teachers), labels=[{} for _ in teachers]))
    return out


def write_instances_jsonl(instances, path: str | Path) -> Path:
    """Write instances as JSONL (the ``data.instances`` input format of :mod:`compact.trainer.run`)."""
    path = Path(path)
    with path.open("w") as fh:
        for inst in instances:
            fh.write(json.dumps(dataclasses.asdict(inst)) + "\n")
    return path
