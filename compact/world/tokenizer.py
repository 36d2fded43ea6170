"""The world tokenizer (byte-level BPE, digits split, chat template) and METHOD's thinking tokens.

The world tokenizer is trained offline with ``tokenizers`` on the world's own text. Its pipeline is
exactly Qwen2's (NFC, the Qwen2 split regex, byte-level BPE), because ``AutoTokenizer`` loads any
folder whose ``config.json`` says ``qwen2`` as ``Qwen2Tokenizer``, which rebuilds that pipeline around
the saved vocabulary: with the same pipeline both loaders encode identically. The regex's ``\\p{N}``
isolates every digit (numbers are spelled digit by digit, as ``Digits(individual_digits=True)`` would),
and byte-level BPE decodes exactly (for NFC text, which all world text is). It is wrapped as a
``PreTrainedTokenizerFast`` with a chat template, so the tiny student goes through the same
chat-formatting code as a real model:

    <|user|>\\n{question}<|end|>\\n<|assistant|>\\n{rationale}<|end|>\\n

:func:`thinking_token_ids` implements the specification's rule (book/specification.md) for ANY Hugging Face tokenizer: each thinking
word is encoded bare and with a leading space (no special tokens); only encodings of exactly one token
count. The world's BPE is trained so that every single-word thinking word is one token both ways.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from tokenizers import (
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    trainers,
)
from transformers import PreTrainedTokenizerFast

# The specification's thinking words and their one-token rule live with the MI proxy that uses them.
from ..method.adaptability import THINKING_WORDS

PAD, USER, ASSISTANT, END = "<|pad|>", "<|user|>", "<|assistant|>", "<|end|>"
# Qwen2Tokenizer declares <|endoftext|> its unknown token and adds it when missing (growing the vocab
# past the model's embedding): the world vocabulary holds it (never produced by the BPE: bytes cover all).
UNK = "<|endoftext|>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, USER, ASSISTANT, END, UNK)
# transformers.models.qwen2.tokenization_qwen2.PRETOKENIZE_REGEX (Qwen2 / Qwen2.5)
QWEN2_SPLIT_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
                     r"""\s*[\r\n]+|\s+(?!\S)|\s+""")

# `apply_chat_template([user], add_generation_prompt=True)` is a token prefix of the same call with the
# assistant turn appended: the trainers find the assistant start that way.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] not in ['user', 'assistant'] %}"
    "{{ raise_exception('world chat template: role must be user or assistant, got ' + message['role']) }}"
    "{% endif %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def _single_words(words: Iterable[str]) -> list[str]:
    return [w for w in words if " " not in w]


def train_tokenizer(texts: Iterable[str], *, vocab_size: int, min_frequency: int = 2,
                    model_max_length: int = 512, thinking_repeats: int = 2000):
    """Train the world's byte-level BPE on ``texts`` and wrap it as a ``PreTrainedTokenizerFast``.

    Every single-word thinking word is appended ``thinking_repeats`` times, bare and after a space, so
    its merges are among the most frequent and it ends up one token both ways (checked by the caller).
    """
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.normalizer = normalizers.NFC()
    # Qwen2's split: \p{N} isolates each digit; then byte-level (no second regex).
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )

    def stream() -> Iterator[str]:
        yield from texts
        words = _single_words(THINKING_WORDS)
        line = "".join(" " + w for w in words)  # every word after a space, the first one too
        for _ in range(thinking_repeats):
            yield line
            yield from words  # bare, at the start of a text

    tok.train_from_iterator(stream(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=END, unk_token=UNK, additional_special_tokens=[USER, ASSISTANT],
        padding_side="right", model_max_length=model_max_length, clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def missing_thinking_words(tokenizer) -> list[str]:
    """Single-word thinking words that are NOT one token both bare and with a leading space."""
    out = []
    for word in _single_words(THINKING_WORDS):
        if any(len(tokenizer.encode(f, add_special_tokens=False)) != 1 for f in (word, " " + word)):
            out.append(word)
    return out


__all__ = [
    "ASSISTANT",
    "CHAT_TEMPLATE",
    "END",
    "PAD",
    "SPECIAL_TOKENS",
    "UNK",
    "USER",
    "missing_thinking_words",
    "train_tokenizer",
]
