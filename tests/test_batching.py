"""Instances -> token batches: chat formatting, assistant start, padding, truncation, mismatch checks."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from compact.errors import ArtifactError, DataError
from compact.inputs.encode import (
    TruncationStats,
    collate,
    encode_instances,
    encode_question,
)
from compact.trainer.tiny import tiny_tokenizer, toy_instances

TEACHERS = ["t0", "t1", "t2"]


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def test_branch_is_chat_formatted_and_assistant_start_is_prompt_length(tok):
    inst = toy_instances(1)[0]
    q = encode_question(inst, tok, teacher_index={t: i for i, t in enumerate(TEACHERS)}, max_length=256)
    prompt = tok.apply_chat_template([{"role": "user", "content": inst.question}], add_generation_prompt=True,
                                     return_dict=False)
    assert len(q.branches) == 3 and q.teachers == [0, 1, 2]
    for k, seq in enumerate(q.branches):
        full = tok.apply_chat_template([{"role": "user", "content": inst.question},
                                        {"role": "assistant", "content": inst.rationales[k]}], return_dict=False)
        assert seq == full
        assert q.assistant_start[k] == len(prompt) and seq[: len(prompt)] == prompt
        assert tok.convert_ids_to_tokens(seq[len(prompt) - 1]) == "<|assistant|>"
    assert q.gold_ids == tok(inst.answer, add_special_tokens=False)["input_ids"]


def test_collate_right_pads_and_groups(tok):
    qs, _ = encode_instances(toy_instances(3), tok, teachers=TEACHERS, max_length=256)
    b = collate(qs, pad_id=tok.pad_token_id, thinking_ids=[5, 3, 5])
    b.validate()
    n = sum(len(q.branches) for q in qs)
    assert b.input_ids.shape[0] == n == 9
    assert b.group.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and b.teacher.tolist() == [0, 1, 2] * 3
    lengths = [len(s) for q in qs for s in q.branches]
    assert b.attention_mask.sum(1).tolist() == lengths
    for i, L in enumerate(lengths):
        assert (b.input_ids[i, L:] == tok.pad_token_id).all() and b.attention_mask[i, :L].all()
    assert b.thinking_ids.tolist() == [3, 5]
    assert b.gold_mask.sum(1).tolist() == [len(q.gold_ids) for q in qs]
    assert (b.gold_ids[~b.gold_mask] == -1).all()


def test_truncation_cuts_rationale_end_and_drops_long_prompts(tok):
    insts = toy_instances(4)
    plen = len(tok.apply_chat_template([{"role": "user", "content": insts[0].question}],
                                       add_generation_prompt=True, return_dict=False))
    full = [len(s) for q in encode_instances(insts, tok, teachers=TEACHERS, max_length=512)[0] for s in q.branches]
    cap = plen + 5
    qs, st = encode_instances(insts, tok, teachers=TEACHERS, max_length=cap)
    assert st.branches == 12 and st.questions_dropped == 0
    assert st.branches_truncated == sum(1 for L in full if L > cap)
    assert st.tokens_truncated == sum(L - cap for L in full if L > cap) > 0
    assert all(len(s) <= cap for q in qs for s in q.branches)
    long = dataclasses.replace(insts[0], id="long", question=" ".join(["apples"] * 40))
    qs, st = encode_instances([long, insts[1]], tok, teachers=TEACHERS, max_length=30)
    assert [q.id for q in qs] == [insts[1].id] and st.questions_dropped == 1 and st.dropped_ids == ["long"]


def test_single_teacher_selection(tok):
    qs, st = encode_instances(toy_instances(2), tok, teachers=TEACHERS, max_length=256, branch_teacher="t1")
    assert all(len(q.branches) == 1 and q.teachers == [1] for q in qs) and st.branches == 2
    with pytest.raises(DataError, match="teacher 'zz'"):
        encode_instances(toy_instances(1), tok, teachers=TEACHERS, max_length=256, branch_teacher="zz")


def test_store_written_for_another_tokenizer_is_rejected(tok):
    inst = dataclasses.replace(toy_instances(1)[0],
                               rationales=["zorp quux blarg flimflam wibble " * 3] * 3)
    with pytest.raises(ArtifactError, match="do not belong together"):
        encode_instances([inst], tok, teachers=TEACHERS, max_length=256)


def test_template_that_is_not_prefix_stable_is_rejected():
    tok = tiny_tokenizer()
    tok.chat_template = ("{% for m in messages %}{{ m['content'] }} <|end|> {% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|> {% endif %}")
    with pytest.raises(ArtifactError, match="not a token prefix"):
        encode_question(toy_instances(1)[0], tok, teacher_index={t: i for i, t in enumerate(TEACHERS)},
                        max_length=256, stats=TruncationStats(256))


def test_unknown_teacher_and_empty_answer_are_data_errors(tok):
    inst = toy_instances(1)[0]
    with pytest.raises(DataError, match="teacher 't2' is not among"):
        encode_instances([inst], tok, teachers=["t0", "t1"], max_length=256)
    with pytest.raises(DataError, match="field 'answer'"):
        encode_instances([dataclasses.replace(inst, answer=" ")], tok, teachers=TEACHERS, max_length=256)


def test_batch_runs_through_the_objective(tok):
    from transformers import AutoModelForCausalLM

    from compact.inputs.model import small_qwen2_config
    from compact.method.objective import ObjectiveConfig, compact_objective

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(small_qwen2_config(len(tok), pad_token_id=tok.pad_token_id))
    qs, _ = encode_instances(toy_instances(2), tok, teachers=TEACHERS, max_length=256)
    out = compact_objective(model, collate(qs, pad_id=tok.pad_token_id, thinking_ids=[tok.convert_tokens_to_ids("so")]),
                            ObjectiveConfig())
    assert out.alpha.shape == (6,) and torch.isfinite(out.loss)
    assert torch.allclose(out.alpha.view(2, 3).sum(1), torch.ones(2, dtype=out.alpha.dtype))
