"""Each variant changes the numbers where it should, and not where it should not."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from compact.method.adaptability import mi_proxy, thinking_token_ids
from compact.method.batch import synthetic_batch
from compact.method.consensus import consensus_scores, widen_keys
from compact.method.fusion import fuse, zscore_per_group
from compact.method.objective import (
    AttentionProjections,
    ObjectiveConfig,
    locate_answer_spans,
    objective_from_outputs,
)


def _mi(hidden, w, batch, variant):
    return mi_proxy(hidden, w, batch.gold_ids, batch.gold_mask, batch.group, batch.input_ids,
                    batch.attention_mask, batch.assistant_start, batch.thinking_ids, variant)


def _pad(batch, extra, hidden):
    """The same batch with ``extra`` more pad columns; pad hidden states are random (as a model's would be)."""
    n = len(batch.input_ids)
    b = synthetic_batch(1, 1, 4, 8)  # only for the type
    b.__dict__.update(batch.__dict__)
    b.input_ids = torch.cat([batch.input_ids, torch.zeros(n, extra, dtype=torch.long)], 1)
    b.attention_mask = torch.cat([batch.attention_mask, torch.zeros(n, extra, dtype=torch.long)], 1)
    hid = torch.cat([hidden, torch.randn(n, extra, hidden.shape[-1]) * 3], 1)
    return b, hid


def test_masked_mean_mi_ignores_sibling_padding_reference_does_not():
    """The released layout pads a question's K branches to the longest one, and the reference proxy sums the
    short branches' padding: lengthening a SIBLING changes a branch's reference M, never its masked M."""
    torch.manual_seed(0)
    batch = synthetic_batch(1, 3, 12, 30, seed=0)
    batch.attention_mask = torch.tensor([[1] * 7 + [0] * 5, [1] * 9 + [0] * 3, [1] * 9 + [0] * 3])
    hidden, w = torch.randn(3, 12, 8) * 3, torch.randn(30, 8)
    longer = synthetic_batch(1, 1, 4, 8)
    longer.__dict__.update(batch.__dict__)
    longer.attention_mask = batch.attention_mask.clone()
    longer.attention_mask[2] = 1  # the third branch now fills the row: branch 0 gets 5 counted pad positions
    assert torch.allclose(_mi(hidden, w, batch, "masked_mean")[0], _mi(hidden, w, longer, "masked_mean")[0])
    assert not torch.allclose(_mi(hidden, w, batch, "reference")[0], _mi(hidden, w, longer, "reference")[0],
                              atol=1e-3)


def test_reference_mi_ignores_padding_beyond_the_question():
    """Padding added by OTHER questions of a batch (or a fixed collator width) does not change the reference
    proxy: each question counts positions up to its own longest branch, as in the one-question layout."""
    torch.manual_seed(0)
    batch = synthetic_batch(2, 3, 12, 30, seed=0)
    hidden, w = torch.randn(6, 12, 8), torch.randn(30, 8)
    padded, hid2 = _pad(batch, 5, hidden)
    for variant in ("reference", "masked_mean"):
        assert torch.allclose(_mi(hidden, w, batch, variant), _mi(hid2, w, padded, variant), atol=1e-6)


def test_masked_mean_mi_is_length_normalised_reference_grows_with_length():
    # a constant positive jump per token: reference sums (grows with length), masked_mean averages
    n, length, h = 2, 10, 4
    w = torch.eye(h)
    hidden = torch.arange(length).float()[None, :, None].expand(n, length, h).clone()  # g_t = t
    batch = synthetic_batch(1, 2, length, 30, seed=1)
    batch.gold_ids = torch.tensor([[0]])
    batch.gold_mask = torch.ones(1, 1, dtype=torch.bool)
    batch.thinking_ids = torch.tensor([], dtype=torch.long)
    batch.assistant_start = torch.tensor([2, 2])
    batch.attention_mask = torch.tensor([[1] * 10, [1] * 6 + [0] * 4])
    ref = _mi(hidden, w, batch, "reference")
    masked = _mi(hidden, w, batch, "masked_mean")
    assert torch.allclose(ref, torch.tensor([0.9, 0.9]))  # all 9 jumps of 1 x 0.1, pads included
    assert torch.allclose(masked, torch.tensor([0.1, 0.1]))  # mean over assistant tokens only


def test_thinking_tokens_weigh_ten_times():
    w = torch.eye(2)
    hidden = torch.tensor([[[0.0, 0], [1, 0], [2, 0]]])
    batch = synthetic_batch(1, 1, 3, 30, seed=2)
    batch.gold_ids, batch.gold_mask = torch.tensor([[0]]), torch.ones(1, 1, dtype=torch.bool)
    batch.attention_mask = torch.ones(1, 3, dtype=torch.long)
    batch.input_ids = torch.tensor([[5, 6, 7]])
    batch.thinking_ids = torch.tensor([7])
    assert _mi(hidden, w, batch, "reference").item() == pytest.approx(0.1 + 1.0)


def test_thinking_token_ids_keeps_single_token_encodings():
    class Tok:
        def encode(self, text, add_special_tokens=False):
            return {"So": [5], " So": [6], "Hmm": [7, 8]}.get(text, [1, 2])

    assert thinking_token_ids(Tok(), ["So", "Hmm"]) == [5, 6]


def test_head_block_equals_element_without_gqa_and_differs_with_it():
    k = torch.arange(4.0)[None]  # 2 kv heads of size 2: [0 1 | 2 3]
    assert widen_keys(k, 4, 2, "element").tolist() == [[0, 0, 1, 1, 2, 2, 3, 3]]
    assert widen_keys(k, 4, 2, "head_block").tolist() == [[0, 1, 0, 1, 2, 3, 2, 3]]
    torch.manual_seed(1)
    emb, group = torch.randn(6, 8), torch.tensor([0, 0, 0, 1, 1, 1])
    q, kp = nn.Linear(8, 8), nn.Linear(8, 8)
    same = [consensus_scores(emb, q, kp, 4, 4, group, w) for w in ("element", "head_block")]
    assert torch.equal(same[0], same[1])
    kp2 = nn.Linear(8, 4)
    gqa = [consensus_scores(emb, q, kp2, 4, 2, group, w) for w in ("element", "head_block")]
    assert not torch.allclose(gqa[0], gqa[1], atol=1e-4)


def test_consensus_batched_equals_per_question():
    torch.manual_seed(2)
    emb, group = torch.randn(7, 8), torch.tensor([0, 0, 0, 1, 1, 1, 1])
    q, k = nn.Linear(8, 8), nn.Linear(8, 4)
    batched = consensus_scores(emb, q, k, 4, 2, group)
    per_q = torch.cat([consensus_scores(emb[:3], q, k, 4, 2, torch.zeros(3)),
                       consensus_scores(emb[3:], q, k, 4, 2, torch.zeros(4))])
    assert torch.allclose(batched, per_q, atol=1e-6)
    # column sums of a row-stochastic matrix with the diagonal removed: total = K - sum(diag)
    assert 0 < batched[:3].sum() < 3


def test_zscore_k2_and_k1():
    z = zscore_per_group(torch.tensor([1.0, 3.0, 5.0]), torch.tensor([0, 0, 1]))
    assert z[:2].tolist() == pytest.approx([-1 / math.sqrt(2), 1 / math.sqrt(2)], abs=1e-4)
    assert z[2].item() == 1.0  # K = 1 -> z = 1


def test_k1_gives_alpha_one_and_fixed_score():
    s, alpha = fuse(torch.tensor([0.3]), torch.tensor([0.2]), torch.tensor([4.0]), torch.tensor([0]))
    assert alpha.item() == 1.0 and s.item() == pytest.approx(1.0 + 1.0 - 0.5)


def test_ablations_equal_zero_beta_and_beta_tau_move_alpha():
    gen = torch.Generator().manual_seed(3)
    mi, cons, diff = (torch.rand(8, generator=gen) for _ in range(3))
    group = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    base = fuse(mi, cons, diff, group)[1]
    for i, flag in enumerate(("use_mi", "use_consensus", "use_difficulty")):
        beta = [1.0, 1.0, 0.5]
        beta[i] = 0.0
        off = fuse(mi, cons, diff, group, **{flag: False})
        assert torch.allclose(off[1], fuse(mi, cons, diff, group, beta=beta)[1])
        assert not torch.allclose(off[1], base, atol=1e-3)
    assert not torch.allclose(fuse(mi, cons, diff, group, beta=(2.0, 1.0, 0.5))[1], base, atol=1e-3)
    hot = fuse(mi, cons, diff, group, temperature=1e4)[1]
    assert torch.allclose(hot, torch.full((8,), 0.25), atol=1e-3)
    cold = fuse(mi, cons, diff, group, temperature=1e-3)[1]
    assert sorted(cold[:4].tolist())[-1] == pytest.approx(1.0, abs=1e-4)
    for q in (0, 1):
        assert base[group == q].sum().item() == pytest.approx(1.0, abs=1e-6)  # softmax per question


def test_uniform_and_static_weighting():
    group, teacher = torch.tensor([0, 0, 0, 1, 1]), torch.tensor([0, 1, 2, 0, 2])
    v = torch.rand(5)
    assert torch.allclose(fuse(v, v, v, group, weighting="uniform")[1], torch.tensor([1 / 3] * 3 + [0.5] * 2))
    static = fuse(v, v, v, group, weighting="static", static_weights=[1.0, 2.0, 3.0], teacher=teacher)[1]
    assert torch.allclose(static, torch.tensor([1 / 6, 2 / 6, 3 / 6, 0.25, 0.75]))


def _core(logits, batch, cfg, hidden_size=8, seed=0):
    torch.manual_seed(seed)
    n, length, vocab = logits.shape
    proj = AttentionProjections(nn.Linear(hidden_size, 8), nn.Linear(hidden_size, 4), 4, 2)
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, length, hidden_size, generator=gen)
    return objective_from_outputs(logits, hidden, torch.randn(vocab, hidden_size, generator=gen), proj, batch, cfg)


def test_lambda_zero_and_consistency_none_leave_only_sft():
    batch = synthetic_batch(2, 3, 12, 20, seed=4)
    logits = torch.randn(6, 12, 20)
    for cfg in (ObjectiveConfig(lambda_consistency=0.0), ObjectiveConfig(consistency="none")):
        out = _core(logits, batch, cfg)
        assert out.loss.item() == pytest.approx(out.loss_sft.item(), rel=1e-6)
    full = _core(logits, batch, ObjectiveConfig(lambda_consistency=1.0))
    assert full.loss.item() == pytest.approx((full.loss_sft + full.loss_consistency).item(), rel=1e-6)
    assert full.loss_consistency.item() > 0


def test_locate_answer_spans_last_occurrence_and_fallback():
    ids = torch.tensor([[9, 5, 6, 1, 5, 6, 2, 0],    # gold [5, 6] twice: the last one wins
                        [5, 6, 3, 3, 3, 3, 0, 0],    # only in the prompt (before assistant_start): empty
                        [9, 9, 9, 5, 6, 0, 5, 6]])   # after the last non-pad token does not count
    am = torch.tensor([[1] * 7 + [0], [1] * 6 + [0] * 2, [1] * 5 + [0] * 3])
    spans = locate_answer_spans(ids, am, torch.tensor([[5, 6, -1]]), torch.tensor([[1, 1, 0]]),
                                torch.zeros(3, dtype=torch.long), torch.tensor([1, 2, 1]))
    assert spans[0].nonzero().squeeze(1).tolist() == [4, 5]
    assert not spans[1].any()
    assert spans[2].nonzero().squeeze(1).tolist() == [3, 4]


@pytest.mark.parametrize("path", ["reference", "fast"])
def test_answer_span_aligns_by_answer_index_not_position(path):
    """Two branches predicting their answers identically at different absolute positions: D = 0 for
    answer_span, while sequence consistency (position by position) sees a difference."""
    gen = torch.Generator().manual_seed(5)
    vocab, length = 20, 12
    batch = synthetic_batch(1, 2, length, vocab, seed=6, plant_answer=False)
    batch.attention_mask = torch.ones(2, length, dtype=torch.long)
    batch.assistant_start = torch.tensor([2, 2])
    batch.gold_ids, batch.gold_mask = torch.tensor([[7, 8]]), torch.ones(1, 2, dtype=torch.bool)
    batch.input_ids[:, 2:] = 3
    batch.input_ids[0, 5:7] = torch.tensor([7, 8])  # answer at 5..6 in branch 0
    batch.input_ids[1, 8:10] = torch.tensor([7, 8])  # and at 8..9 in branch 1
    logits = torch.randn(2, length, vocab, generator=gen)
    logits[1, 7:9] = logits[0, 4:6]  # same predictive distributions for the answer tokens
    cfg = dict(path=path, use_mi=False, use_consensus=False, use_difficulty=False)
    span = _core(logits, batch, ObjectiveConfig(consistency="answer_span", **cfg))
    seq = _core(logits, batch, ObjectiveConfig(consistency="sequence", **cfg))
    assert span.n_pairs == 1 and span.loss_consistency.item() == pytest.approx(0.0, abs=1e-7)
    assert seq.loss_consistency.item() > 0.1
    logits[1, 8] += torch.randn(vocab, generator=gen)  # now they differ on the 2nd answer token
    moved = _core(logits, batch, ObjectiveConfig(consistency="answer_span", **cfg))
    assert moved.loss_consistency.item() > 1e-3


@pytest.mark.parametrize("path", ["reference", "fast"])
def test_answer_span_pairs_without_span_are_skipped_and_counted(path):
    batch = synthetic_batch(1, 3, 14, 20, seed=7)
    batch.input_ids[1, batch.assistant_start[1]:] = 0  # branch 1 never states the answer
    batch.attention_mask[1, batch.assistant_start[1]:] = 0
    batch.attention_mask[1, batch.assistant_start[1]:batch.assistant_start[1] + 3] = 1
    batch.input_ids[1, batch.assistant_start[1]:batch.assistant_start[1] + 3] = 1
    out = _core(torch.randn(3, 14, 20), batch, ObjectiveConfig(path=path, consistency="answer_span"))
    assert out.n_pairs_no_span == 2 and out.n_pairs == 1


def test_explicit_answer_span_overrides_the_search():
    batch = synthetic_batch(1, 2, 10, 20, seed=8)
    logits = torch.randn(2, 10, 20)
    batch.answer_span = torch.zeros(2, 10, dtype=torch.bool)
    out = _core(logits, batch, ObjectiveConfig(consistency="answer_span"))
    assert out.n_pairs == 0 and out.n_pairs_no_span == 1


def test_flash_attention_pad_semantics_move_reference_mi_only():
    """flash-attention 2 (the released backend) returns zeros at pad positions; sdpa does not. Real tokens'
    states are the same under both, so the loss and masked MI agree, and reference MI (summed over the
    padded row) does not: M_k depends on the attention backend in reference mode."""
    from compact.inputs.model import small_qwen2
    from compact.method.adaptability import zero_pad_attention
    from compact.method.batch import synthetic_batch
    from compact.method.objective import ObjectiveConfig, compact_objective

    model = small_qwen2(64, seed=0, hidden=32, intermediate=64, max_positions=64).eval()
    batch = synthetic_batch(2, 3, 20, 64, seed=11)
    assert not bool(batch.attention_mask.all())  # right padding present
    out = {}
    for backend in ("sdpa", "flash"):
        for variant in ("reference", "masked_mean"):
            # the mask patch sees one batch: one padded forward, no prompt sharing
            cfg = ObjectiveConfig(mi_variant=variant, forward_buckets=1, share_prompts=False)
            with torch.no_grad():
                if backend == "flash":
                    with zero_pad_attention(model, batch.attention_mask):
                        out[backend, variant] = compact_objective(model, batch, cfg)
                else:
                    out[backend, variant] = compact_objective(model, batch, cfg)
    assert torch.allclose(out["sdpa", "masked_mean"].mi, out["flash", "masked_mean"].mi, atol=1e-6)
    assert torch.allclose(out["sdpa", "reference"].per_branch_loss, out["flash", "reference"].per_branch_loss, atol=1e-6)
    assert not torch.allclose(out["sdpa", "reference"].mi, out["flash", "reference"].mi, atol=1e-4)
