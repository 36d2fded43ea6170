"""World tokenizer: round trip, digits, chat template prefix property, thinking tokens (METHOD rule)."""
from __future__ import annotations

import pytest

from compact.method.adaptability import THINKING_WORDS, thinking_token_ids
from compact.world import tasks as T
from compact.world.tokenizer import END, PAD, missing_thinking_words, train_tokenizer


@pytest.fixture(scope="module")
def tok():
    texts = []
    for task in T.TASKS:
        for e in T.generate_task(task, 0, {"train": 200, "dev": 1, "test": 1}, _Cfg())["train"]:
            texts += [e.question, f"The answer is {e.answer}."]
    texts += T.kb_facts()
    return train_tokenizer(texts, vocab_size=900)


class _Cfg:
    min_steps, max_steps, max_value = 2, 4, 100


def test_round_trip_is_exact(tok):
    texts = ["Tom has 12 apples. He buys 7 more apples.", "Solve for x: 3x + 5 = 20.",
             "Which of these is a bird?\n(A) robin\n(B) cow", "  odd   spacing\tand\nnew lines  ",
             "Unseen words: zyxw qq 90210 ünïcödé ✓"]
    for t in texts:
        ids = tok.encode(t, add_special_tokens=False)
        assert tok.decode(ids) == t


def test_digits_are_single_tokens(tok):
    toks = tok.convert_ids_to_tokens(tok.encode("x 1234 = 56", add_special_tokens=False))
    digits = [t.lstrip("Ġ") for t in toks if any(c.isdigit() for c in t)]
    assert digits == ["1", "2", "3", "4", "5", "6"]


def test_special_tokens_and_padding(tok):
    assert tok.pad_token == PAD and tok.eos_token == END
    assert tok.padding_side == "right"
    assert tok.bos_token is None
    assert tok.encode("hi", add_special_tokens=True) == tok.encode("hi", add_special_tokens=False)  # no BOS added


def test_chat_template_generation_prompt_is_a_token_prefix(tok):
    user = {"role": "user", "content": "How many apples does Tom have now?"}
    for answer in ("First, 12 + 7 = 19.\nThe answer is 19.", " So 5.", "Hmm,\n\n3.", "(A) robin"):
        prompt = tok.apply_chat_template([user], add_generation_prompt=True, tokenize=False)
        full = tok.apply_chat_template([user, {"role": "assistant", "content": answer}], tokenize=False)
        assert prompt.endswith("<|assistant|>\n")
        assert full == prompt + answer + "<|end|>\n"
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        f_ids = tok(full, add_special_tokens=False)["input_ids"]
        assert f_ids[:len(p_ids)] == p_ids
        assert f_ids[-2:] == tok.encode("<|end|>\n", add_special_tokens=False)


def test_chat_template_rejects_unknown_roles(tok):
    with pytest.raises(Exception, match="role must be user or assistant"):
        tok.apply_chat_template([{"role": "system", "content": "x"}], tokenize=False)


def test_every_single_word_thinking_word_is_one_token(tok):
    assert missing_thinking_words(tok) == []
    ids = thinking_token_ids(tok)
    singles = [w for w in THINKING_WORDS if " " not in w]
    assert len(ids) == 2 * len(singles)  # bare and with a leading space, all distinct
    assert all(tok.convert_ids_to_tokens(i).lstrip("Ġ") in singles for i in ids)


class _FakeTokenizer:
    """A tokenizer-agnostic check: thinking_token_ids only calls ``encode(..., add_special_tokens=False)``."""

    def __init__(self, vocab):
        self.vocab = vocab

    def encode(self, text, add_special_tokens=True):
        assert add_special_tokens is False
        if text in self.vocab:
            return [self.vocab[text]]
        return [self.vocab.get(w, 99) for w in text.split()] + [98]


def test_thinking_token_ids_rule_is_generic():
    fake = _FakeTokenizer({"So": 5, " So": 6, "Wait": 7, "In summary": 8, " Hmm": 6})
    # exactly-one-token encodings only; "In summary" counts when a tokenizer has it as one token;
    # duplicates collapse; the result is sorted
    assert thinking_token_ids(fake) == [5, 6, 7, 8]
    assert thinking_token_ids(fake, ["So"]) == [5, 6]
    assert thinking_token_ids(_FakeTokenizer({})) == []


def test_training_is_deterministic():
    texts = ["Tom has 12 apples.", "A robin is a bird.", "So the answer is 5."] * 30
    a = train_tokenizer(texts, vocab_size=400)
    b = train_tokenizer(texts, vocab_size=400)
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
