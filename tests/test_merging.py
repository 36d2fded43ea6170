"""Direct Avg. and TIES on tiny tensors checked by hand, and on HF folders end to end."""
import pytest
import torch

from compact.baselines.merging import (
    direct_average,
    load_state_dict,
    merge_models,
    ties_merge,
    ties_merge_tensors,
    trim_top_k,
)
from compact.errors import ArtifactError, ConfigError


def test_direct_average_uniform_and_weighted():
    a = {"w": torch.tensor([1.0, 2.0, 3.0]), "step": torch.tensor([7])}
    b = {"w": torch.tensor([3.0, 6.0, -3.0]), "step": torch.tensor([9])}
    assert torch.equal(direct_average([a, b])["w"], torch.tensor([2.0, 4.0, 0.0]))
    out = direct_average([a, b], weights=[3, 1])
    assert torch.allclose(out["w"], torch.tensor([1.5, 3.0, 1.5]))
    assert torch.equal(out["step"], torch.tensor([7]))  # integer buffers copied from the first model
    with pytest.raises(ConfigError):
        direct_average([a, b], weights=[1.0])
    with pytest.raises(ArtifactError):
        direct_average([a, {"w": torch.zeros(2), "step": torch.tensor([1])}])


def test_trim_keeps_top_fraction_by_magnitude():
    tau = torch.tensor([0.1, -0.5, 0.3, -0.05, 0.2])
    assert torch.equal(trim_top_k(tau, 0.4), torch.tensor([0.0, -0.5, 0.3, 0.0, 0.0]))
    assert torch.equal(trim_top_k(tau, 0.5), torch.tensor([0.0, -0.5, 0.3, 0.0, 0.2]))  # ceil(2.5) = 3
    assert torch.equal(trim_top_k(tau, 1.0), tau)
    ten = torch.arange(10, dtype=torch.float64)
    assert int((trim_top_k(ten, 0.3) != 0).sum()) == 3  # 0.3 * 10 is 3, not 4


def test_ties_by_hand():
    base = torch.zeros(4)
    m1 = torch.tensor([1.0, -2.0, 0.5, 3.0])
    m2 = torch.tensor([-3.0, -1.0, 0.4, 0.1])
    m3 = torch.tensor([1.0, 1.0, -0.2, 0.2])
    # density 1: no trimming.
    # entry 0: taus 1, -3, 1 -> sum -1 -> sign -, agreeing {-3} -> -3
    # entry 1: -2, -1, 1 -> sum -2 -> -, agreeing {-2, -1} -> -1.5
    # entry 2: .5, .4, -.2 -> +, agreeing {.5, .4} -> .45
    # entry 3: 3, .1, .2 -> +, all -> 3.3 / 3 = 1.1
    out = ties_merge_tensors(base, [m1, m2, m3], density=1.0, lam=1.0)
    assert torch.allclose(out, torch.tensor([-3.0, -1.5, 0.45, 1.1]))
    # density 0.5 (keep 2 of 4 per task vector):
    # m1 -> [0, -2, 0, 3]; m2 -> [-3, -1, 0, 0]; m3 -> [1, 1, 0, 0] (ties keep the lower index)
    # entry 0: 0,-3,1 -> sum -2 -> -, {-3} -> -3 ; entry 1: -2,-1,1 -> -, {-2,-1} -> -1.5
    # entry 2: all zero -> 0 ; entry 3: 3,0,0 -> +, {3} -> 3 ; then lam = 0.5 and base 1
    out = ties_merge_tensors(base + 1, [m1 + 1, m2 + 1, m3 + 1], density=0.5, lam=0.5)
    assert torch.allclose(out, 1 + 0.5 * torch.tensor([-3.0, -1.5, 0.0, 3.0]))


def test_ties_state_dicts_and_errors():
    base = {"a": torch.zeros(2, 2), "n": torch.tensor([1])}
    ft = [{"a": torch.tensor([[1.0, 0.0], [0.0, -1.0]]), "n": torch.tensor([2])},
          {"a": torch.tensor([[1.0, 2.0], [0.0, 1.0]]), "n": torch.tensor([3])}]
    out = ties_merge(base, ft, density=1.0, lam=1.0)
    # entry (1,1): -1 + 1 = 0 -> sign 0 -> nobody agrees -> 0
    assert torch.allclose(out["a"], torch.tensor([[1.0, 2.0], [0.0, 0.0]]))
    assert torch.equal(out["n"], torch.tensor([2]))
    with pytest.raises(ConfigError):
        ties_merge(base, ft, density=0.0)
    with pytest.raises(ConfigError):
        ties_merge(base, [], density=0.5)


def test_merge_hf_folders(tmp_path):
    from test_evaluation import make_tiny_student
    from transformers import AutoModelForCausalLM

    paths = [make_tiny_student(tmp_path / f"m{i}", seed=i) for i in range(3)]
    out = merge_models(paths[1:], tmp_path / "avg", method="average")
    sds = [load_state_dict(p) for p in paths]
    merged = load_state_dict(out)
    for k in sds[0]:
        assert torch.allclose(merged[k], (sds[1][k] + sds[2][k]) / 2, atol=1e-6)
    model = AutoModelForCausalLM.from_pretrained(out)  # a loadable HF folder with the tokenizer beside it
    assert (out / "tokenizer.json").is_file()
    ref = {k: v for k, v in model.state_dict().items() if k in merged}
    assert all(torch.allclose(ref[k], merged[k]) for k in ref)
    out = merge_models(paths[1:], tmp_path / "ties", method="ties", base=paths[0], density=0.5, lam=1.0)
    merged = load_state_dict(out)
    k = "model.layers.0.mlp.up_proj.weight"
    assert torch.allclose(merged[k], ties_merge_tensors(sds[0][k], [sds[1][k], sds[2][k]], density=0.5), atol=1e-6)
    with pytest.raises(ConfigError):
        merge_models(paths[1:], tmp_path / "x", method="ties")
    with pytest.raises(ArtifactError):
        load_state_dict(tmp_path)
