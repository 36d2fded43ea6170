"""A tiny byte-level tokenizer (with or without a chat template) and a tiny random Llama.

Offline stand-ins for a real teacher checkpoint: the HF backend's tests and the generation benchmark
use them (no hub downloads are possible). Random weights write gibberish, which is all the mechanics
(padding, batching, sampling, stop strings, throughput) need.
"""
from __future__ import annotations

from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from .prompts import INSTRUCTIONS, SYSTEM_PROMPT, USER_TEMPLATE

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<pad>", "<eos>", "<|im_start|>", "<|im_end|>"]


def tiny_tokenizer(chat_template: bool = True, vocab_size: int = 0) -> Any:
    """A byte-level BPE tokenizer as ``PreTrainedTokenizerFast`` (specials + 256 bytes).

    ``vocab_size=0``: no merges (every byte a token). A larger ``vocab_size`` trains merges on the prompt
    template and a few arithmetic sentences, so prompts tokenize about as compactly as with a real
    tokenizer (the generation benchmark uses this: byte-level prompts would make prefill dominate).
    """
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        corpus = [SYSTEM_PROMPT, USER_TEMPLATE, *INSTRUCTIONS.values(), CHAT_TEMPLATE] * 20
        corpus += [f"Tom has {i} apples and buys {i % 7 + 2} more. How many now? The answer is {i}."
                   for i in range(200)]
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=alphabet,
                                      show_progress=False)
        tok.train_from_iterator(corpus, trainer)
    else:
        vocab = {t: i for i, t in enumerate(SPECIALS)}
        for ch in sorted(alphabet):
            vocab[ch] = len(vocab)
        tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIALS)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>",
                                   additional_special_tokens=["<|im_start|>", "<|im_end|>"])
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_llama(tokenizer: Any, hidden: int = 64, layers: int = 2, heads: int = 4, seed: int = 0,
               init_range: float = 0.5) -> Any:
    """A randomly initialised Llama sized for CPU tests (about 0.1M parameters at the defaults)."""
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 4,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                      max_position_embeddings=2048, initializer_range=init_range, pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.eos_token_id, bos_token_id=None, tie_word_embeddings=True)
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg).eval()
