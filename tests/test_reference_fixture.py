"""The central correctness claim: our reference mode reproduces the authors' released step exactly.

The fixture folder comes from ``COMPACT_REFERENCE_FIXTURE`` (default: ../shared, else the vendored copy),
so any fixture of the same format can be checked with this test.
"""
from __future__ import annotations

import json

import pytest
import torch

from compact.method.batch import Batch
from compact.method.objective import ObjectiveConfig, compact_objective
from compact.paths import reference_fixture_dir

VEC_ATOL = 1e-5  # absolute, on vectors
SCALAR_RTOL = 1e-5  # relative, on scalars and the gradient norm


def _load():
    from transformers import AutoModelForCausalLM

    folder = reference_fixture_dir()
    inputs = json.loads((folder / "inputs.json").read_text())
    expected = json.loads((folder / "expected.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = torch.tensor(inputs["input_ids"], dtype=torch.long)
    k = len(ids)
    gold = torch.tensor([inputs["gold_ids"]], dtype=torch.long)
    batch = Batch(
        input_ids=ids, attention_mask=torch.tensor(inputs["attention_mask"], dtype=torch.long),
        assistant_start=torch.tensor(inputs["assistant_start"], dtype=torch.long),
        group=torch.zeros(k, dtype=torch.long), teacher=torch.arange(k),
        gold_ids=gold, gold_mask=torch.ones_like(gold, dtype=torch.bool),
        thinking_ids=torch.tensor(inputs["thinking_ids"], dtype=torch.long))
    cfg = ObjectiveConfig(beta=tuple(expected["beta"]), temperature=expected["temperature"],
                          lambda_consistency=expected["lambda_consistency"])
    return model, batch, cfg, expected


def _grad_global_l2(model) -> float:
    total = torch.zeros((), dtype=torch.float64)
    for p in model.parameters():
        if p.grad is not None:
            total += (p.grad.double() ** 2).sum()
    return float(total.sqrt())


@pytest.mark.parametrize("path", ["reference", "fast"])
def test_reference_step_matches_released_implementation(path):
    model, batch, cfg, exp = _load()
    cfg.path = path
    model.zero_grad()
    out = compact_objective(model, batch, cfg)
    out.loss.backward()
    vectors = {"per_branch_loss": out.per_branch_loss, "mi_raw": out.mi, "consensus_raw": out.consensus,
               "alpha": out.alpha}
    for key, got in vectors.items():
        want = torch.tensor(exp[key], dtype=torch.float64)
        err = (got.double() - want).abs().max().item()
        assert err <= VEC_ATOL, f"{key}: max abs error {err:.2e} (got {got.tolist()}, want {exp[key]})"
    scalars = {"loss_sft": out.loss_sft.item(), "loss_consistency": out.loss_consistency.item(),
               "total_loss": out.loss.item(), "grad_global_l2": _grad_global_l2(model)}
    for key, got in scalars.items():
        rel = abs(got - exp[key]) / abs(exp[key])
        assert rel <= SCALAR_RTOL, f"{key}: relative error {rel:.2e} (got {got!r}, want {exp[key]!r})"
    k = len(batch.input_ids)
    assert out.n_pairs + out.n_pairs_skipped == k * (k - 1) // 2  # every pair of the one question


def test_fixture_discriminates_the_variants():
    """The fixture pins reference mode: each variant moves the number it should away from it."""
    model, batch, cfg, exp = _load()
    with torch.no_grad():
        for change, key, attr in [({"mi_variant": "masked_mean"}, "mi_raw", "mi"),
                                  ({"gqa_widening": "head_block"}, "consensus_raw", "consensus")]:
            out = compact_objective(model, batch, ObjectiveConfig(**{**cfg.__dict__, **change}))
            err = (getattr(out, attr).double() - torch.tensor(exp[key], dtype=torch.float64)).abs().max().item()
            assert err > 1e-3, f"{change} should change {key}"


@pytest.mark.parametrize("k,kv_heads", [(3, 1), (5, 4)])
def test_any_fixture_of_the_format(tmp_path, monkeypatch, k, kv_heads):
    """A fixture of the same format with another K and another number of key-value heads runs through the
    same test (written here by our reference mode: this checks the test's generality, the K=4 fixture
    checks the numbers)."""
    from compact.inputs.model import small_qwen2

    model = small_qwen2(96, seed=k, kv_heads=kv_heads, max_positions=64).eval()
    model.save_pretrained(tmp_path)
    gen = torch.Generator().manual_seed(k)
    length, starts = 18, [3 + i % 3 for i in range(k)]
    ids = torch.randint(1, 96, (k, length), generator=gen)
    mask = torch.ones(k, length, dtype=torch.long)
    for row in range(k):  # right padding of different lengths
        cut = length - 2 * row
        ids[row, cut:], mask[row, cut:] = 0, 0
    inputs = {"input_ids": ids.tolist(), "attention_mask": mask.tolist(), "gold_ids": [7, 8],
              "assistant_start": starts, "thinking_ids": [5, 9, 11]}
    (tmp_path / "inputs.json").write_text(json.dumps(inputs))
    cfg_obj = ObjectiveConfig(path="reference")
    gold = torch.tensor([inputs["gold_ids"]])
    batch = Batch(input_ids=ids, attention_mask=mask, assistant_start=torch.tensor(starts),
                  group=torch.zeros(k, dtype=torch.long), teacher=torch.arange(k), gold_ids=gold,
                  gold_mask=torch.ones_like(gold, dtype=torch.bool), thinking_ids=torch.tensor([5, 9, 11]))
    model.zero_grad()
    out = compact_objective(model, batch, cfg_obj)
    out.loss.backward()
    expected = {"per_branch_loss": out.per_branch_loss.tolist(), "mi_raw": out.mi.tolist(),
                "consensus_raw": out.consensus.tolist(), "alpha": out.alpha.tolist(),
                "loss_sft": out.loss_sft.item(), "loss_consistency": out.loss_consistency.item(),
                "lambda_consistency": cfg_obj.lambda_consistency, "beta": list(cfg_obj.beta),
                "temperature": cfg_obj.temperature, "total_loss": out.loss.item(),
                "grad_global_l2": _grad_global_l2(model)}
    (tmp_path / "expected.json").write_text(json.dumps(expected))
    monkeypatch.setenv("COMPACT_REFERENCE_FIXTURE", str(tmp_path))
    for path in ("reference", "fast"):
        test_reference_step_matches_released_implementation(path)
