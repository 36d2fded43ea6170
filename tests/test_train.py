"""The trainer end to end on a tiny random Qwen2: artifacts, methods, split invariance, LoRA, bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from compact.config import load
from compact.errors import TrainingError
from compact.paths import repo_root
from compact.provenance import is_complete
from compact.trainer.config import TrainConfig
from compact.trainer.run import train
from compact.trainer.tiny import tiny_student, toy_instances, write_instances_jsonl

PY = sys.executable


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> Path:
    return tiny_student(tmp_path_factory.mktemp("student") / "s")


def make_cfg(student: Path, *overrides: str) -> TrainConfig:
    base = [f"model.path={student}", "optim.questions_per_step=4", "optim.micro_batch_questions=2",
            "optim.lr=0.001", "optim.max_steps=3", "data.max_length=128"]
    return load(TrainConfig, None, base + list(overrides))


def params(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_compact_run_writes_a_complete_artifact(student, tmp_path):
    insts = toy_instances(16)
    cfg = make_cfg(student, "checkpoint.every=2", "optim.max_steps=4", "data.max_length=40")
    out = train(cfg, root=tmp_path, instances=insts)
    assert is_complete(out) and out.parent.name == "runs"
    for name in ("model.safetensors", "config.json", "tokenizer.json", "config.yaml", "log.jsonl", "alpha.jsonl",
                 "summary.json", "manifest.json"):
        assert (out / name).is_file(), name
    log = jsonl(out / "log.jsonl")
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    for key in ("epoch", "lr", "loss", "loss_sft", "loss_consistency", "grad_norm", "alpha", "mi", "consensus",
                "difficulty"):
        assert key in log[0], key
    assert set(log[0]["alpha"]) == {"t0", "t1", "t2"}
    assert {"mean", "std", "min", "max"} <= set(log[0]["alpha"]["t0"])
    alpha = jsonl(out / "alpha.jsonl")
    assert len(alpha) == 4 * 4 * 3 and {"id", "teacher", "alpha", "mi", "consensus", "difficulty", "step"} <= set(alpha[0])
    by_q: dict = {}
    for r in alpha:
        by_q.setdefault((r["step"], r["id"]), []).append(r["alpha"])
    assert all(abs(sum(v) - 1) < 1e-5 and len(v) == 3 for v in by_q.values())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["tokens_per_s"] > 0
    assert summary["truncation"]["branches_truncated"] > 0 and summary["truncation"]["tokens_truncated"] > 0
    assert yaml.safe_load((out / "config.yaml").read_text())["method"] == "compact"
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(out))
    before = load_file(str(student / "model.safetensors"))
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items() if k in before)
    # complete -> reused, not retrained
    stamp = (out / "summary.json").stat().st_mtime_ns
    assert train(cfg, root=tmp_path, instances=insts) == out and (out / "summary.json").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("mi_variant", ["reference", "masked_mean"])
def test_parameters_do_not_depend_on_the_micro_batch_split(student, tmp_path, mi_variant):
    # Adam's m/sqrt(v) turns rounding noise on near-zero gradients (unused embedding rows) into full lr-sized
    # steps; a large eps keeps the update proportional to the gradient, so the comparison tests the gradients.
    # The reference MI counts each question's rows up to its own longest branch, so it is split-invariant too.
    insts = toy_instances(8)
    runs = [train(make_cfg(student, f"optim.micro_batch_questions={m}", "optim.max_steps=2", "optim.eps=0.1",
                           f"objective.mi_variant={mi_variant}"),
                  root=tmp_path / str(m), instances=insts) for m in (4, 1, 3)]
    ref, ref_log = params(runs[0]), jsonl(runs[0] / "log.jsonl")
    for run in runs[1:]:
        for k, v in params(run).items():
            torch.testing.assert_close(v, ref[k], atol=1e-7, rtol=1e-5)
        for a, b in zip(jsonl(run / "log.jsonl"), ref_log):
            assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
            assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-5)


def test_same_config_same_numbers(student, tmp_path):
    insts = toy_instances(8)
    a = train(make_cfg(student, "optim.max_steps=2"), root=tmp_path / "a", instances=insts)
    b = train(make_cfg(student, "optim.max_steps=2"), root=tmp_path / "b", instances=insts)
    assert all(torch.equal(v, params(b)[k]) for k, v in params(a).items())


@pytest.mark.parametrize("method,extra,check", [
    ("uniform", [], lambda r: abs(r["alpha"] - 1 / 3) < 1e-6),
    ("single", ["teacher=t1"], lambda r: r["teacher"] == "t1" and abs(r["alpha"] - 1) < 1e-6),
    ("static", ["objective.static_weights=[3,1,0]"],
     lambda r: abs(r["alpha"] - {"t0": 0.75, "t1": 0.25, "t2": 0.0}[r["teacher"]]) < 1e-6),
    ("mcckd", [], lambda r: abs(r["alpha"] - 1 / 3) < 1e-6),
    # every score switched off: S = 0, so alpha is uniform through the COMPACT weighting itself
    ("compact", ["objective.use_mi=false", "objective.use_consensus=false", "objective.use_difficulty=false"],
     lambda r: abs(r["alpha"] - 1 / 3) < 1e-6),
])
def test_methods_set_the_teacher_weights(student, tmp_path, method, extra, check):
    cfg = make_cfg(student, f"method={method}", "optim.max_steps=1", *extra)
    out = train(cfg, root=tmp_path, instances=toy_instances(4))
    rows = jsonl(out / "alpha.jsonl")
    assert rows and all(check(r) for r in rows)
    log = jsonl(out / "log.jsonl")[0]
    if method in ("uniform", "single", "static"):
        assert log["loss_consistency"] == 0.0
    if method == "mcckd":
        assert json.loads((out / "summary.json").read_text())["objective"]["consistency"] == "answer_span"


def test_lora_trains_adapters_and_saves_merged_weights(student, tmp_path):
    cfg = make_cfg(student, "model.lora={r: 4, alpha: 8, dropout: 0.1}", "checkpoint.every=1")
    out = train(cfg, root=tmp_path, instances=toy_instances(8))
    assert (out / "adapter" / "adapter_config.json").is_file()
    ckpt = sorted((out / "checkpoints").iterdir())[-1]
    saved = load_file(str(ckpt / "model.safetensors"))
    assert saved and all("lora_" in k for k in saved)
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(str(out)).state_dict()
    assert not any("lora" in k for k in merged)
    base = load_file(str(student / "model.safetensors"))
    assert any(not torch.equal(base[k], merged[k]) for k in base if "q_proj.weight" in k)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lora"] and summary["trainable_parameters"] < sum(v.numel() for v in base.values())


def test_nan_loss_stops_with_step_and_ids_and_keeps_the_checkpoint(student, tmp_path):
    cfg = make_cfg(student, "checkpoint.every=1", "optim.max_steps=4", "debug.nan_at_step=3")
    with pytest.raises(TrainingError, match=r"step 3 .*instances \['toy-") as err:
        train(cfg, root=tmp_path, instances=toy_instances(16))
    assert "ckpt-00000002" in str(err.value)
    runs = tmp_path / "runs"
    assert not any(is_complete(p) for p in runs.iterdir() if not p.name.startswith("."))
    ckpt = next(runs.glob(".*.work")) / "checkpoints" / "ckpt-00000002"
    assert is_complete(ckpt) and all(torch.isfinite(v).all() for v in load_file(str(ckpt / "model.safetensors")).values())


def test_model_without_attention_projections(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from compact.trainer.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2, n_positions=256)).save_pretrained(
        tmp_path / "gpt2")
    tok.save_pretrained(tmp_path / "gpt2")
    with pytest.raises(TrainingError, match="q_proj and k_proj.*use_consensus=false"):
        train(make_cfg(tmp_path / "gpt2", "optim.max_steps=1"), root=tmp_path, instances=toy_instances(4))
    out = train(make_cfg(tmp_path / "gpt2", "optim.max_steps=1", "objective.use_consensus=false"), root=tmp_path,
                instances=toy_instances(4))
    assert is_complete(out)


def test_schedules():
    from compact.trainer.loop import make_schedule

    for sched, expect in [("constant", [0.5, 1, 1, 1]), ("linear", [0.5, 1, 2 / 3, 1 / 3]),
                          ("cosine", [0.5, 1, 0.75, 0.25])]:
        cfg = load(TrainConfig, None, [f"optim.schedule={sched}", "optim.warmup_steps=2", "optim.lr=1.0"])
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        s = make_schedule(opt, cfg, total_steps=5)
        got = []
        for _ in range(4):
            opt.step()
            s.step()
            got.append(s.get_last_lr()[0])
        assert got == pytest.approx(expect), sched


@pytest.mark.slow
def test_cli_trains_from_a_config_file_and_rejects_bad_keys(student, tmp_path):
    data = write_instances_jsonl(toy_instances(8), tmp_path / "inst.jsonl")
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({"name": "cli", "data": {"instances": str(data), "max_length": 128},
                                   "model": {"path": str(student)}, "method": "uniform",
                                   "optim": {"questions_per_step": 4, "micro_batch_questions": 4, "max_steps": 1}}))
    env = {"COMPACT_ARTIFACTS": str(tmp_path / "art"), "PATH": "/usr/bin:/bin", "COMPACT_QUIET": "1"}
    ok = subprocess.run([PY, "-m", "compact.trainer", "--config", str(cfg)], capture_output=True, text=True, env=env,
                        cwd=tmp_path, timeout=120)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert is_complete(Path(ok.stdout.strip().splitlines()[-1]))
    bad = subprocess.run([PY, "-m", "compact.trainer", "--config", str(cfg), "--set", "optim.lrr=1"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert bad.returncode == 2 and "unknown config key 'optim.lrr'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    missing = subprocess.run([PY, "-m", "compact.trainer", "--config", str(cfg), "--set", "data.instances=/nope.jsonl"],
                             capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert missing.returncode == 2 and "instances file not found: /nope.jsonl" in missing.stderr


PAPER = sorted((repo_root() / "configs" / "paper").glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("path", PAPER, ids=[p.stem for p in PAPER])
def test_paper_configs_run_two_steps_on_a_tiny_student(student, tmp_path, path):
    cfg0 = load(TrainConfig, path)
    assert cfg0.model.lora is not None and cfg0.model.lora.r == 16 and cfg0.model.lora.alpha == 32
    assert cfg0.optim.lr == 1e-5 and cfg0.optim.epochs == 5 and cfg0.data.max_length == 2560
    assert cfg0.accelerator.mixed_precision == "bf16" and cfg0.optim.grad_clip == 1.0
    assert cfg0.data.generate == "configs/generate/paper_gsm8k.yaml" and len(cfg0.data.teachers) == 4
    insts = toy_instances(8, teachers=tuple(cfg0.data.teachers))
    data = write_instances_jsonl(insts, tmp_path / "inst.jsonl")
    cfg = load(TrainConfig, path, [f"model.path={student}", "data.generate=null", f"data.instances={data}",
                                   "optim.max_steps=2", "log.every=1"])
    out = train(cfg, root=tmp_path)
    assert is_complete(out) and len(jsonl(out / "log.jsonl")) == 2
    assert (out / "adapter").is_dir() and any((out / "tb").rglob("events.out.tfevents*"))


def test_bf16_autocast_trains_on_cpu(student, tmp_path):
    """The bf16 path (accelerate's autocast; the objective upcasts bf16 logits per chunk) runs end to end on the
    CPU: finite losses near the float32 run's, alpha sums to 1 per question, and the numbers are not float32's."""
    insts = toy_instances(8)
    f32 = train(make_cfg(student, "optim.max_steps=2"), root=tmp_path / "f32", instances=insts)
    bf = train(make_cfg(student, "optim.max_steps=2", "accelerator.cpu_mixed_precision=bf16"),
               root=tmp_path / "bf16", instances=insts)
    assert bf.name != f32.name  # a bf16 run is another run
    l32, l16 = jsonl(f32 / "log.jsonl"), jsonl(bf / "log.jsonl")
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in l16)
    assert [r["loss"] for r in l16] == pytest.approx([r["loss"] for r in l32], rel=5e-2)
    assert [r["loss"] for r in l16] != [r["loss"] for r in l32]
    by_q: dict = {}
    for r in jsonl(bf / "alpha.jsonl"):
        by_q.setdefault((r["step"], r["id"]), []).append(r["alpha"])
    assert all(abs(sum(v) - 1) < 1e-3 for v in by_q.values())
