"""The objective: fast path == reference path, micro-batch invariance, analytic backward, bad input."""
from __future__ import annotations

import itertools

import pytest
import torch

from compact.config import from_dict
from compact.errors import CompactError, ConfigError
from compact.method.batch import Batch, synthetic_batch
from compact.method.objective import (
    ObjectiveConfig,
    _FusedCESymKL,
    compact_objective,
    objective_from_outputs,
)

TOL = 1e-5


def tiny_qwen2(vocab=64, hidden=32, heads=4, kv_heads=2, seed=0):
    from compact.inputs.model import small_qwen2

    return small_qwen2(vocab, seed=seed, hidden=hidden, heads=heads, kv_heads=kv_heads, intermediate=64,
                       max_positions=64).eval()


def run(model, batch, cfg):
    model.zero_grad()
    out = compact_objective(model, batch, cfg)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out, grads


def _fusion_tolerance(out, group, cfg, tol=TOL):
    """Per-branch bound on |S_fast - S_ref| given raw scores that agree to ``tol`` (relative).

    The z-score divides by each question's std, so a last-bit difference in a raw score (another BLAS
    kernel or reduction order, e.g. an AMD vs an Intel CPU) moves S by about ``delta / std``: near-tied
    scores amplify it a hundredfold. The bound follows the algebra of z(v) = (v - mean) / (std + eps):
    a perturbation delta of every entry moves z by at most (2 + |z|) * delta / (std + eps).
    """
    terms = [(cfg.use_mi, cfg.beta[0], out.mi), (cfg.use_consensus, cfg.beta[1], out.consensus),
             (cfg.use_difficulty, cfg.beta[2], out.difficulty)]
    bound = torch.full((len(group),), tol, dtype=torch.float64)
    for used, beta, v in terms:
        if not used or beta == 0:
            continue
        v = v.double()
        delta = tol * max(1.0, v.abs().max().item())
        for q in group.unique():
            rows = group == q
            if int(rows.sum()) < 2:
                continue
            std = v[rows].std()
            z = (v[rows] - v[rows].mean()) / (std + 1e-4)
            bound[rows] += abs(beta) * (2 + z.abs().max()) * delta / (std + 1e-4)
    return bound


def assert_same(a, b, ga, gb, tol=TOL, group=None, cfg=None):
    """Fast (``a``) vs reference (``b``) outputs and gradients.

    Raw scores must agree to a relative ``tol``; the fused score and alpha to a tolerance scaled by how
    much the z-scores amplify raw last-bit differences (``_fusion_tolerance``; plain ``tol`` without
    ``cfg``). Everything downstream of alpha is compared at ``tol`` only when ``a`` was computed with
    ``b``'s alpha (see ``compare_paths``), so no amplified difference can hide a wrong loss or gradient.
    """
    for key in ("per_branch_loss", "mi", "consensus", "difficulty"):
        x, y = getattr(a, key).double(), getattr(b, key).double()
        scale = max(1.0, y.abs().max().item())
        assert (x - y).abs().max().item() <= tol * scale, f"{key}: {x} vs {y}"
    s_tol = _fusion_tolerance(b, group, cfg, tol) if cfg is not None else torch.full_like(b.fused, tol).double()
    assert ((a.fused.double() - b.fused.double()).abs() <= s_tol).all(), f"fused: {a.fused} vs {b.fused} (tol {s_tol})"
    # softmax(S / tau) is 1/2-Lipschitz per entry in the max norm of S / tau
    a_tol = tol + 0.5 * s_tol.max().item() / (cfg.temperature if cfg is not None else 1.0)
    assert torch.allclose(a.alpha, b.alpha, atol=a_tol, rtol=0), f"alpha: {a.alpha} vs {b.alpha} (tol {a_tol:.1e})"
    if not torch.equal(a.alpha, b.alpha):
        return  # downstream of a different alpha: compared by compare_paths with the alpha pinned
    assert torch.allclose(a.per_question_loss, b.per_question_loss, atol=tol, rtol=tol), "per_question_loss"
    for key in ("loss", "loss_sft", "loss_consistency"):
        x, y = getattr(a, key).item(), getattr(b, key).item()
        assert abs(x - y) <= tol * max(1.0, abs(y)), f"{key}: {x} vs {y}"
    assert (a.n_pairs, a.n_pairs_skipped, a.n_pairs_no_span) == (b.n_pairs, b.n_pairs_skipped, b.n_pairs_no_span)
    assert ga.keys() == gb.keys()
    for name in ga:
        assert torch.allclose(ga[name], gb[name], atol=tol, rtol=1e-4), f"grad {name}"


def compare_paths(model, batch, ref_cfg, fast_cfg, monkeypatch):
    """Reference vs fast in two stages: scores and fusion as computed, then the objective and its
    gradients with the fast path fed the reference's (S, alpha), so each stage is held to its own
    tolerance (on another CPU the fused scores may differ by amplified last bits, never the rest)."""
    import dataclasses

    import compact.method.objective as objective

    # one padded forward: the paths are compared on every score (length buckets: their own test below)
    ref_cfg, fast_cfg = (dataclasses.replace(c, forward_buckets=1) for c in (ref_cfg, fast_cfg))
    ref, gref = run(model, batch, ref_cfg)
    fast, gfast = run(model, batch, fast_cfg)
    assert_same(fast, ref, gfast, gref, group=batch.group, cfg=ref_cfg)
    with monkeypatch.context() as m:
        m.setattr(objective, "_fuse", lambda *a, **k: (ref.fused.clone(), ref.alpha.clone()))
        pinned, gpinned = run(model, batch, fast_cfg)
    assert_same(pinned, ref, gpinned, gref, group=batch.group, cfg=ref_cfg)
    return ref, fast


VARIANTS = list(itertools.product(["reference", "masked_mean"], ["element", "head_block"],
                                  ["sequence", "answer_span", "none"]))


@pytest.mark.parametrize("mi_variant,widening,consistency", VARIANTS)
def test_fast_equals_reference(mi_variant, widening, consistency, monkeypatch):
    model = tiny_qwen2()
    batch = synthetic_batch(3, 4, 20, 64, seed=1)
    base = dict(mi_variant=mi_variant, gqa_widening=widening, consistency=consistency, lambda_consistency=0.5)
    ref, _ = compare_paths(model, batch, ObjectiveConfig(path="reference", **base),
                           ObjectiveConfig(path="fast", chunk_tokens=7, **base), monkeypatch)  # many chunks
    if consistency != "none":
        assert ref.n_pairs > 0 and ref.loss_consistency.item() > 0


@pytest.mark.parametrize("extra", [dict(temperature=0.05), dict(weighting="uniform"),
                                   dict(weighting="static", static_weights=[4.0, 1.0, 0.0, 2.0]),
                                   dict(use_mi=False, use_difficulty=False)])
def test_fast_equals_reference_weightings_and_skips(extra, monkeypatch):
    model = tiny_qwen2()
    batch = synthetic_batch(3, 4, 20, 64, seed=2)
    ref, _ = compare_paths(model, batch, ObjectiveConfig(path="reference", **extra),
                           ObjectiveConfig(path="fast", chunk_tokens=16, **extra), monkeypatch)
    if "temperature" in extra or "static_weights" in extra:
        assert ref.n_pairs_skipped > 0  # sharp alpha / a zero weight: some pairs fall below the threshold


class _ScaledGrad(torch.autograd.Function):
    """Identity forward, backward scaled by 1 + 1e-3: a deliberately wrong analytic gradient."""

    @staticmethod
    def forward(ctx, z):
        return z.view_as(z)

    @staticmethod
    def backward(ctx, g):
        return g * (1 + 1e-3)


@pytest.mark.parametrize("extra", [{}, dict(temperature=0.05), dict(use_mi=False, use_difficulty=False)])
@pytest.mark.parametrize("bug", ["beta", "temperature", "mi", "widening", "lambda", "gradient"])
def test_parity_check_catches_a_wrong_path(extra, bug, monkeypatch):
    """The scaled tolerances of assert_same still fail when the fast path is really wrong: small bugs
    in each stage (a fusion weight off by 10%, the MI or GQA variant swapped, lambda off by 10%, a
    gradient off by 0.1%) are caught, also in the worst-conditioned settings above."""
    import compact.method.objective as objective

    cfg = ObjectiveConfig(**extra)
    if bug in ("temperature", "lambda") and cfg.temperature < 0.1:
        pytest.skip("alpha is one-hot at this temperature (every pair skipped): the change moves no output")
    wrong = dict(extra)
    if bug == "beta":
        wrong["beta"] = (1.0, 0.9, 0.5) if not cfg.use_mi else (0.9, 1.0, 0.5)
    elif bug == "temperature":
        wrong["temperature"] = cfg.temperature * 1.1
    elif bug == "mi":
        wrong["mi_variant"] = "masked_mean"
    elif bug == "widening":
        wrong["gqa_widening"] = "head_block"
    elif bug == "lambda":
        wrong["lambda_consistency"] = cfg.lambda_consistency * 1.1
    else:
        fused, flat = objective._fused, objective._flat  # the dense kernel and the flat (head-split) one
        monkeypatch.setattr(objective, "_fused", lambda z, *a: fused(_ScaledGrad.apply(z), *a))
        monkeypatch.setattr(objective, "_flat", lambda z, *a: flat(_ScaledGrad.apply(z), *a))
    with pytest.raises(AssertionError):
        compare_paths(tiny_qwen2(), synthetic_batch(3, 4, 20, 64, seed=2), ObjectiveConfig(path="reference", **extra),
                      ObjectiveConfig(path="fast", chunk_tokens=16, **wrong), monkeypatch)


@pytest.mark.parametrize("path", ["reference", "fast"])
@pytest.mark.parametrize("consistency", ["sequence", "answer_span"])
def test_microbatch_split_invariance(path, consistency):
    """Accumulating loss_sum / Q over any split gives the full batch's loss, alpha and gradients."""
    model = tiny_qwen2()
    batch = synthetic_batch(4, 3, 18, 64, seed=3)
    cfg = ObjectiveConfig(path=path, consistency=consistency)
    full, gfull = run(model, batch, cfg)
    for n_micro in (2, 4):
        model.zero_grad()
        alphas, losses = [], 0.0
        for micro in batch.split(n_micro):
            out = compact_objective(model, micro, cfg)
            (out.loss_sum / batch.n_questions).backward()
            alphas.append(out.alpha)
            losses += out.loss_sum.item()
        assert torch.allclose(torch.cat(alphas), full.alpha, atol=TOL)
        assert losses / batch.n_questions == pytest.approx(full.loss.item(), rel=TOL)
        for name, p in model.named_parameters():
            assert torch.allclose(p.grad, gfull[name], atol=TOL, rtol=1e-4), name


def test_loss_is_mean_of_question_totals_and_b1_is_the_question_total():
    model = tiny_qwen2()
    batch = synthetic_batch(3, 4, 16, 64, seed=4)
    with torch.no_grad():
        full = compact_objective(model, batch, ObjectiveConfig())
        singles = [compact_objective(model, m, ObjectiveConfig()) for m in batch.split(3)]
    assert full.n_questions == 3 and full.per_question_loss.shape == (3,)
    assert full.loss.item() == pytest.approx(full.per_question_loss.mean().item(), rel=1e-6)
    for q, single in enumerate(singles):
        assert single.loss.item() == pytest.approx(full.per_question_loss[q].item(), rel=TOL)
        assert single.loss.item() == pytest.approx((single.loss_sft + 0.1 * single.loss_consistency).item(), rel=1e-6)


def test_batch_split_keeps_whole_questions():
    batch = synthetic_batch(5, 3, 12, 40, seed=5)
    parts = batch.split(2)
    assert [p.n_questions for p in parts] == [3, 2]
    assert torch.equal(torch.cat([p.input_ids for p in parts]), batch.input_ids)
    assert torch.equal(parts[1].group, torch.tensor([0, 0, 0, 1, 1, 1]))
    assert torch.equal(parts[1].gold_ids, batch.gold_ids[3:])


def test_fused_backward_matches_gradcheck():
    gen = torch.Generator().manual_seed(6)
    z = torch.randn(3, 5, 7, dtype=torch.float64, generator=gen, requires_grad=True)
    targets = torch.randint(0, 7, (3, 5), generator=gen)
    targets[0, 1] = -100
    pi, pj = torch.tensor([0, 0, 1]), torch.tensor([1, 2, 2])
    pmask = torch.rand(3, 5, dtype=torch.float64, generator=gen)

    # float64 end to end (the kernel upcasts only bf16/fp16): check values and the analytic backward
    # against autograd of a direct re-implementation, then torch's numerical gradcheck
    assert torch.autograd.gradcheck(lambda z: _FusedCESymKL.apply(z, targets, pi, pj, pmask, 4), (z,))
    ce, pair = _FusedCESymKL.apply(z, targets, pi, pj, pmask, 4)
    gce, gpair = torch.randn(3, generator=gen, dtype=torch.float64), torch.randn(3, generator=gen, dtype=torch.float64)
    (ce * gce).sum().add((pair * gpair).sum()).backward()
    got = z.grad.clone()
    z.grad = None
    lp = torch.log_softmax(z, -1)
    want_ce = -(lp.gather(-1, targets.clamp(min=0)[..., None]).squeeze(-1) * (targets != -100)).sum(1)
    sym = ((lp[pi].exp() - lp[pj].exp()) * (lp[pi] - lp[pj])).sum(-1)
    want_pair = (sym * pmask).sum(1)
    assert torch.allclose(ce, want_ce, atol=1e-12) and torch.allclose(pair, want_pair, atol=1e-12)
    (want_ce * gce).sum().add((want_pair * gpair).sum()).backward()
    assert torch.allclose(got, z.grad, atol=1e-12)



def test_flat_backward_matches_gradcheck():
    """The flat kernel (the LM head applied only at the positions the objective reads): values and analytic
    backward against autograd of a direct re-implementation and torch's numerical gradcheck (float64)."""
    from compact.method.objective import _FlatCESymKL

    gen = torch.Generator().manual_seed(7)
    z = torch.randn(9, 6, dtype=torch.float64, generator=gen, requires_grad=True)  # 9 (row, position) entries
    targets = torch.randint(0, 6, (9,), generator=gen)
    targets[[2, 5]] = -100
    row = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    ei, ej, pid = torch.tensor([0, 1, 0, 5]), torch.tensor([3, 4, 5, 3]), torch.tensor([0, 0, 1, 2])
    for chunk in (1, 2, 16):
        assert torch.autograd.gradcheck(lambda z: _FlatCESymKL.apply(z, targets, row, ei, ej, pid, 3, 3, chunk), (z,))
    ce, pair = _FlatCESymKL.apply(z, targets, row, ei, ej, pid, 3, 3, 2)
    gce, gpair = torch.randn(3, generator=gen, dtype=torch.float64), torch.randn(3, generator=gen, dtype=torch.float64)
    gpair[1] = 0.0  # a pair below the threshold: its entries are skipped in backward
    (ce * gce).sum().add((pair * gpair).sum()).backward()
    got = z.grad.clone()
    z.grad = None
    lp = torch.log_softmax(z, -1)
    nll = -(lp.gather(-1, targets.clamp(min=0)[:, None]).squeeze(-1) * (targets != -100))
    want_ce = torch.zeros(3, dtype=torch.float64).index_add(0, row, nll)
    sym = ((lp[ei].exp() - lp[ej].exp()) * (lp[ei] - lp[ej])).sum(-1)
    want_pair = torch.zeros(3, dtype=torch.float64).index_add(0, pid, sym)
    assert torch.allclose(ce, want_ce, atol=1e-12) and torch.allclose(pair, want_pair, atol=1e-12)
    (want_ce * gce).sum().add((want_pair * gpair).sum()).backward()
    assert torch.allclose(got, z.grad, atol=1e-12)


@pytest.mark.parametrize("weighting,consistency", [("compact", "sequence"), ("uniform", "none"),
                                                   ("compact", "answer_span"), ("uniform", "sequence")])
@pytest.mark.parametrize("buckets", [1, 3])
def test_shared_prompts_and_flat_head_equal_the_whole_forward(weighting, consistency, buckets):
    """The fast path's prompt-shared, head-split forward gives the numbers of the whole padded forward (the
    dense path, forced by hiding the head split): losses, every score, alpha and every gradient entry. The
    rows share their prompt (a question's branches), rows differ in length (padding, buckets), and the
    reference MI reads each question's padding states (computed without gradient past a bucket's width)."""
    import compact.method.objective as objective

    torch.manual_seed(0)
    model = tiny_qwen2()
    batch = synthetic_batch(3, 4, 24, 64, seed=3)
    for b in range(3):  # a shared prompt per question, then branches of different lengths
        rows = (batch.group == b).nonzero().squeeze(1)
        batch.input_ids[rows, :6] = batch.input_ids[rows[0], :6]
        batch.assistant_start[rows] = 6
    for r, n in enumerate([24, 10, 15, 7, 20, 24, 9, 12, 8, 11, 16, 19]):
        batch.attention_mask[r, n:] = 0
        batch.input_ids[r, n:] = 0
    cfg = ObjectiveConfig(weighting=weighting, consistency=consistency, forward_buckets=buckets)
    assert objective.shared_prompt_hidden(model.get_decoder(), batch.input_ids, batch.attention_mask,
                                          batch.assistant_start, batch.group, buckets) is not None
    fast, gfast = run(model, batch, cfg)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(objective, "split_head", lambda model: None)
        dense, gdense = run(model, batch, cfg)
    for key in ("per_branch_loss", "alpha", "consensus", "difficulty"):
        assert torch.allclose(getattr(fast, key), getattr(dense, key), rtol=1e-5, atol=1e-6), key
    if dense.mi is not None:
        assert torch.allclose(fast.mi, dense.mi, rtol=1e-5, atol=1e-5)
    assert (fast.mi is None) == (dense.mi is None)
    assert abs(fast.loss.item() - dense.loss.item()) < 1e-5
    assert abs(fast.loss_consistency.item() - dense.loss_consistency.item()) < 1e-5
    assert fast.n_pairs == dense.n_pairs
    assert gfast.keys() == gdense.keys()
    for name in gdense:
        assert torch.allclose(gfast[name], gdense[name], rtol=1e-4, atol=1e-6), name


def test_rows_without_a_shared_prompt_run_the_whole_forward():
    """Rows of one question whose prompts differ cannot share it: the fast path falls back (same numbers)."""
    import compact.method.objective as objective

    model = tiny_qwen2()
    batch = synthetic_batch(2, 3, 16, 64, seed=4)
    batch.input_ids[1, 0] = batch.input_ids[0, 0] % 63 + 1  # question 0's second branch: another prompt
    assert objective.shared_prompt_hidden(model.get_decoder(), batch.input_ids, batch.attention_mask,
                                          batch.assistant_start, batch.group, 4) is None
    out = compact_objective(model, batch, ObjectiveConfig())
    assert torch.isfinite(out.loss)

def test_model_without_attention_projections():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=32, n_layer=1, n_head=2, n_positions=32)).eval()
    batch = synthetic_batch(1, 3, 12, 64, seed=7)
    with pytest.raises(CompactError, match="q_proj and k_proj.*use_consensus=false"):
        compact_objective(model, batch, ObjectiveConfig())
    out = compact_objective(model, batch, ObjectiveConfig(use_consensus=False))  # documented fallback
    assert torch.equal(out.consensus, torch.zeros(3)) and torch.isfinite(out.loss)


def test_peft_wrapped_model_finds_projections():
    peft = pytest.importorskip("peft")
    from compact.method.consensus import find_attention_projections

    model = tiny_qwen2()
    wrapped = peft.get_peft_model(model, peft.LoraConfig(r=2, target_modules=["q_proj", "k_proj"]))
    proj = find_attention_projections(wrapped)
    assert proj.q_proj is wrapped.base_model.model.model.layers[-1].self_attn.q_proj
    assert (proj.n_heads, proj.n_kv_heads) == (4, 2)
    out = compact_objective(wrapped, synthetic_batch(1, 3, 12, 64, seed=8), ObjectiveConfig())
    out.loss.backward()
    assert torch.isfinite(out.loss)


def test_bad_batch_and_config():
    batch = synthetic_batch(2, 2, 10, 32, seed=9)
    logits = torch.randn(4, 10, 32)
    bad = Batch(**{**batch.__dict__, "group": torch.tensor([0, 1, 0, 1])})
    with pytest.raises(CompactError, match="'group'.*contiguous"):
        objective_from_outputs(logits, torch.randn(4, 10, 8), torch.randn(32, 8), None, bad,
                               ObjectiveConfig(use_consensus=False))
    with pytest.raises(CompactError, match="attention projections"):
        objective_from_outputs(logits, torch.randn(4, 10, 8), torch.randn(32, 8), None, batch, ObjectiveConfig())
    with pytest.raises(ConfigError, match="temperature"):
        from_dict(ObjectiveConfig, {"temperature": 0.0})
    with pytest.raises(ConfigError, match="static_weights"):
        from_dict(ObjectiveConfig, {"weighting": "static"})
    with pytest.raises(ConfigError, match="consistency"):
        from_dict(ObjectiveConfig, {"consistency": "tokens"})
    assert from_dict(ObjectiveConfig, {"beta": [1, 0, 0.5]}).beta == (1.0, 0.0, 0.5)


def test_deterministic():
    model = tiny_qwen2()
    batch = synthetic_batch(2, 3, 14, 64, seed=10)
    a, ga = run(model, batch, ObjectiveConfig())
    b, gb = run(model, batch, ObjectiveConfig())
    assert a.loss.item() == b.loss.item() and all(torch.equal(ga[n], gb[n]) for n in ga)


@pytest.mark.parametrize("cfg", [ObjectiveConfig(), ObjectiveConfig(weighting="uniform"),
                                 ObjectiveConfig(mi_variant="masked_mean")], ids=["reference-mi", "uniform", "masked"])
def test_bucketed_forward_equals_one_padded_forward(cfg, monkeypatch):
    """Length buckets change no loss, score, weight or gradient: rows bucket freely when the weights do not
    read padding, whole questions when the reference MI proxy does (it sums over the question's padding).

    Buckets are forwards of other shapes, so the raw scores may differ in their last bits on another CPU; as in
    :func:`compare_paths`, scores and alpha are held to the tolerance the z-scores allow, then loss and every
    gradient to ``TOL`` with the bucketed run fed the padded run's (S, alpha)."""
    import dataclasses

    import compact.method.objective as objective

    model = tiny_qwen2()
    batch = synthetic_batch(6, 4, 24, 64, seed=11)
    one_cfg, many_cfg = (dataclasses.replace(cfg, forward_buckets=b) for b in (1, 4))
    one, g_one = run(model, batch, one_cfg)
    many, g_many = run(model, batch, many_cfg)
    if cfg.weighting == "uniform":  # the MI proxy is not read by these weights: not reported, not wrong
        assert many.mi is None and many.fused is None
        many.mi, many.fused = one.mi, one.fused
    assert_same(many, one, g_many, g_one, group=batch.group, cfg=cfg)
    with monkeypatch.context() as m:
        m.setattr(objective, "_fuse", lambda *a, **k: (one.fused.clone(), one.alpha.clone()))
        pinned, g_pinned = run(model, batch, many_cfg)
    if cfg.weighting == "uniform":
        pinned.mi, pinned.fused = one.mi, one.fused
    assert torch.equal(pinned.alpha, one.alpha)
    assert_same(pinned, one, g_pinned, g_one, group=batch.group, cfg=cfg)


def test_row_buckets_would_change_the_reference_mi():
    """The teeth of the rule above: bucketing single rows drops the padding hidden states the reference MI
    proxy sums over, so its weights must bucket whole questions."""
    from compact.method.objective import bucketed_forward

    model = tiny_qwen2()
    batch = synthetic_batch(6, 4, 24, 64, seed=11)
    with torch.no_grad():
        _, h_one, one_bucketed = bucketed_forward(model, batch.input_ids, batch.attention_mask, 1)
        _, h_rows, _ = bucketed_forward(model, batch.input_ids, batch.attention_mask, 4)
        _, h_questions, _ = bucketed_forward(model, batch.input_ids, batch.attention_mask, 4, group=batch.group)
    assert not one_bucketed
    valid = batch.attention_mask.bool()
    assert torch.allclose(h_rows[valid], h_one[valid], atol=TOL)  # real tokens agree either way
    assert not torch.allclose(h_rows, h_one, atol=TOL)             # padding differs under row buckets
    for q in range(batch.n_questions):                             # question buckets keep each question's width
        rows = (batch.group == q).nonzero().flatten()
        width = int(batch.attention_mask[rows].sum(1).max())
        assert torch.allclose(h_questions[rows, :width], h_one[rows, :width], atol=TOL)


def test_objective_parity_table_on_real_text():
    """The published parity table: every quantity of both paths on encoded rationales, fast == reference."""
    from compact.analysis.parity import QUANTITIES, objective_parity, thinking_words_table
    from compact.inputs.model import small_qwen2
    from compact.teachers.view import Instance
    from compact.world.tokenizer import train_tokenizer

    texts = ["Okay, so 3 + 4 = 7. Wait, 7 - 2 = 5. The answer is 5.", "3 + 4 = 7.\n7 - 2 = 5.\nThe answer is 5.",
             "Let me check: 4 + 3 = 7. So 7 - 2 = 5. Therefore the answer is 5.", "Hmm. 3 + 4 = 8. The answer is 6."]
    tok = train_tokenizer(texts * 10 + ["Tom has 3 apples. He gets 4 more and eats 2. How many now?"] * 10,
                          vocab_size=200, min_frequency=1, model_max_length=128)
    inst = [Instance(id=f"q{i}", question="Tom has 3 apples. He gets 4 more and eats 2. How many now?", answer="5",
                     answer_type="number", source="t", rationales=texts[i:] + texts[:i], teachers=list("abcd"),
                     labels=[{}] * 4)
            for i in range(2)]
    model = small_qwen2(len(tok), seed=0, hidden=32, heads=4, kv_heads=2, intermediate=64, max_positions=128)
    # uniform alpha: the z-scored fusion (which amplifies last-bit score differences on other CPUs, see
    # compare_paths) is out of the way, so every raw score, the losses and every gradient are held to TOL
    rows = {r["quantity"]: r for r in objective_parity(model, tok, inst, max_length=96,
                                                       cfg=ObjectiveConfig(weighting="uniform"))}
    assert set(rows) == {*QUANTITIES, "loss", "loss_sft", "loss_consistency", "gradients"}
    for name, r in rows.items():  # fused is only logged under uniform weighting (compare_paths bounds it)
        assert name == "fused" or r["max_abs_diff"] <= TOL * max(1.0, r["max_abs_ref"]), r
    assert rows["alpha"]["max_abs_diff"] == 0 and rows["mi"]["max_abs_ref"] > 0 and rows["consensus"]["max_abs_ref"] > 0  # the scores were computed
    assert rows["gradients"]["n"] == sum(p.numel() for p in model.parameters())
    assert rows["loss"]["max_abs_ref"] > 0 and rows["alpha"]["n"] == 8
    words = thinking_words_table(tok)
    assert {w["word"] for w in words} >= {"Wait", "Hmm", "So"} and all(isinstance(w["counted"], bool) for w in words)
