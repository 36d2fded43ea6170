"""COMPACT in Transformers and TRL: the same numbers as `compact train`, and bad input in one line.

The parity runs train the smoke world's student for 5 optimizer steps both ways: this package's trainer
(compact.trainer.run.train on configs/train/smoke.yaml, reading the rationale store) and CompactSFTTrainer /
CompactTrainer (reading the exported DatasetDict), with the same questions, seed, AdamW settings, cosine schedule
with warmup and clipping. 5 questions per step in micro-batches of 2 (2 + 2 + 1: a short last micro-batch), so a
wrong micro-batch weighting shows; the steps cross an epoch boundary, so the per-epoch order shows. Tolerances:
1e-5 relative on losses and gradient norms, 1e-5 relative + 1e-6 absolute on parameters, and on alpha the bound
by which the per-question z-scores can amplify a last-bit difference in the scores (test_objective's
_fusion_tolerance). Two mutations (a wrong lambda, the Trainer's per-micro-batch mean weighting) must fail it.
"""
from __future__ import annotations

import json
import math
import types
from pathlib import Path

import pytest
import torch

pytest.importorskip("trl")

from safetensors.torch import load_file
from test_objective import _fusion_tolerance

from compact.errors import ConfigError, DataError
from compact.method.objective import ObjectiveConfig

SMOKE_TRAIN = "configs/train/smoke.yaml"
SMOKE_GENERATE = "configs/generate/smoke.yaml"
N_QUESTIONS, Q, M, STEPS, LAMBDA = 20, 5, 2, 5, 0.5
TOL = 1e-5

# compact train, as configs/train/smoke.yaml with these overrides
LOOP_OVERRIDES = [f"data.max_instances={N_QUESTIONS}", f"optim.questions_per_step={Q}",
                  f"optim.micro_batch_questions={M}", f"optim.max_steps={STEPS}", "optim.epochs=2",
                  "optim.warmup_steps=1", "checkpoint.every=0", f"objective.lambda_consistency={LAMBDA}"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def world():
    from compact.world.build import world_from

    return world_from("configs/world/smoke.yaml")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from compact.hf.dataset import export_store
    from compact.teachers.generate import generate_store, load_config

    return export_store(generate_store(load_config(SMOKE_GENERATE)), tmp_path_factory.mktemp("data") / "world")


@pytest.fixture(scope="module")
def loop_run(tmp_path_factory, world):
    from compact.trainer.run import load_config, train

    cfg = load_config(SMOKE_TRAIN, LOOP_OVERRIDES)
    assert (cfg.optim.lr, cfg.optim.schedule, cfg.optim.grad_clip, cfg.seed) == (3e-3, "cosine", 1.0, 0)
    return train(cfg, root=tmp_path_factory.mktemp("loop"))


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def hf_args(cls, out: Path, **extra):
    """The Trainer arguments that say what LOOP_OVERRIDES + configs/train/compact.yaml say."""
    kw = dict(output_dir=str(out), per_device_train_batch_size=M, gradient_accumulation_steps=math.ceil(Q / M),
              questions_per_step=Q, max_steps=STEPS, learning_rate=3e-3, lr_scheduler_type="cosine", warmup_steps=1,
              max_grad_norm=1.0, weight_decay=0.0, adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8,
              optim="adamw_torch", seed=0, logging_steps=1, save_strategy="no", report_to="none", use_cpu=True,
              disable_tqdm=True, max_length=416, method="compact", alpha_log=True,
              objective={"path": "fast", "lambda_consistency": LAMBDA})
    kw.update(extra)
    if cls.__name__ == "CompactSFTTrainer":
        from compact.hf.sft import CompactSFTConfig

        return CompactSFTConfig(bf16=False, gradient_checkpointing=False, **kw)
    from compact.hf.trainer import CompactTrainingArguments

    return CompactTrainingArguments(**kw)


def hf_train(cls, world, exported, out: Path, **extra):
    import datasets
    from transformers import AutoModelForCausalLM

    from compact.inputs.model import load_tokenizer

    rows = datasets.load_from_disk(str(exported))["train"].select(range(N_QUESTIONS))
    model = AutoModelForCausalLM.from_pretrained(str(world.student_path))
    trainer = cls(model=model, args=hf_args(cls, out, **extra), train_dataset=rows,
                  processing_class=load_tokenizer(world.student_path))
    trainer.train()
    return trainer


def compare(loop_dir: Path, trainer) -> dict[str, float]:
    """Assert the Trainer run equals the loop's within tolerance; return the largest differences."""
    figures: dict[str, float] = {}

    def rel(a, b):
        return abs(a - b) / max(abs(b), 1e-12)

    log = jsonl(loop_dir / "log.jsonl")
    hist = [r for r in trainer.state.log_history if "loss" in r and "compact/loss_sft" in r]
    assert [r["step"] for r in log] == [r["step"] for r in hist] == list(range(1, STEPS + 1))
    for key, hkey in (("loss", "loss"), ("grad_norm", "grad_norm"), ("lr", "learning_rate"),
                      ("loss_sft", "compact/loss_sft"), ("loss_consistency", "compact/loss_consistency")):
        figures[key] = max(rel(h[hkey], r[key]) if r[key] else abs(h[hkey]) for r, h in zip(log, hist))
        assert figures[key] <= TOL, f"{key}: {[(r[key], h[hkey]) for r, h in zip(log, hist)]}"
    # alpha per branch, in the loop's order (same steps, questions, teachers), within the z-score bound
    ours, theirs = jsonl(loop_dir / "alpha.jsonl"), jsonl(Path(trainer.args.output_dir) / "alpha.jsonl")
    assert [(r["step"], r["id"], r["teacher"]) for r in ours] == [(r["step"], r["id"], r["teacher"]) for r in theirs]
    cfg = ObjectiveConfig(lambda_consistency=LAMBDA)
    worst = 0.0
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(ours):
        groups.setdefault((r["step"], r["id"]), []).append(i)
    for rows in groups.values():
        out = types.SimpleNamespace(**{k: torch.tensor([ours[i][k] for i in rows], dtype=torch.float64)
                                       for k in ("mi", "consensus", "difficulty")})
        s_tol = _fusion_tolerance(out, torch.zeros(len(rows), dtype=torch.long), cfg, TOL)
        a_tol = TOL + 0.5 * s_tol.max().item() / cfg.temperature
        for i in rows:
            for key in ("mi", "consensus", "difficulty", "loss"):
                assert rel(theirs[i][key], ours[i][key]) <= TOL or abs(theirs[i][key] - ours[i][key]) <= TOL, key
            d = abs(theirs[i]["alpha"] - ours[i]["alpha"])
            assert d <= a_tol, f"alpha of {ours[i]['id']}/{ours[i]['teacher']} at step {ours[i]['step']}: {d} > {a_tol}"
            worst = max(worst, d)
    figures["alpha_abs"] = worst
    # per-teacher mean alpha as logged (report_to) against the loop's log.jsonl
    figures["alpha_logged"] = max(abs(h[f"compact/alpha/{t}"] - r["alpha"][t]["mean"])
                                  for r, h in zip(log, hist) for t in r["alpha"])
    # the final parameters
    ref = load_file(str(loop_dir / "model.safetensors"))
    model = trainer.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    got = model.state_dict()
    figures["params_abs"] = max((got[k].float() - v.float()).abs().max().item() for k, v in ref.items())
    for k, v in ref.items():
        torch.testing.assert_close(got[k], v, rtol=TOL, atol=1e-6, msg=lambda m, k=k: f"parameter {k}: {m}")
    return figures


@pytest.mark.slow
@pytest.mark.parametrize("which", ["CompactSFTTrainer", "CompactTrainer"])
def test_trainers_give_compact_trains_numbers(which, loop_run, world, exported, tmp_path):
    from compact import hf

    cls = getattr(hf, which)
    extra = {"report_to": ["tensorboard"]} if which == "CompactTrainer" else {}
    trainer = hf_train(cls, world, exported, tmp_path / "out", **extra)
    figures = compare(loop_run, trainer)
    print(f"\n{which} vs compact train, largest differences: {figures}")
    last = [r for r in trainer.state.log_history if "compact/alpha/sim-qwq" in r][-1]
    for key in ("mi", "consensus", "difficulty", "alpha_std"):
        assert f"compact/{key}/sim-r1-distill" in last
    if which == "CompactTrainer":  # what report_to names receives the COMPACT scalars
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = [EventAccumulator(str(p.parent)).Reload() for p in (tmp_path / "out").rglob("events.out.tfevents*")]
        tags = {t for e in events for t in e.Tags()["scalars"]}
        assert {"train/compact/alpha/sim-qwq", "train/compact/loss_consistency", "train/loss"} <= tags, tags
        import datasets

        val = datasets.load_from_disk(str(exported))["validation"].select(range(4))
        metrics = trainer.evaluate(eval_dataset=val)
        assert math.isfinite(metrics["eval_loss"]) and metrics["eval_loss"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("mutation", ["lambda", "micro_batch_weighting"])
def test_a_wrong_path_fails_the_comparison(mutation, loop_run, world, exported, tmp_path, monkeypatch):
    """Mutation tests: the comparison is sharp enough to catch a trainer that drops lambda (0.1, the default,
    instead of 0.5) or weighs micro-batches as a Trainer does by default (each micro-batch's mean over the number
    of micro-batches: 2 + 2 + 1 questions weigh 1/3 each instead of 2/5, 2/5, 1/5)."""
    from compact.hf import CompactSFTTrainer

    extra = {}
    if mutation == "lambda":
        extra["objective"] = {"path": "fast"}
    else:
        import compact.hf.trainer as T

        monkeypatch.setattr(T, "micro_batch_share", lambda loss_sum, n, q_local: loss_sum / n / math.ceil(q_local / M))
    trainer = hf_train(CompactSFTTrainer, world, exported, tmp_path / "out", **extra)
    with pytest.raises(AssertionError) as exc:
        compare(loop_run, trainer)
    print(f"\n{mutation}: {str(exc.value).splitlines()[0][:300]}")


@pytest.mark.slow
def test_lora_through_trl_peft_config_matches_compact_train_lora(tmp_path):
    """LoRA given to TRL (peft_config) trains what compact train trains with model.lora (same init: the seed is set
    before the adapters are drawn; dropout 0 on both sides), on a hand-made dataset, method mcckd, reference path."""
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM

    from compact.hf import CompactSFTConfig, CompactSFTTrainer
    from compact.hf.dataset import instances_dataset
    from compact.inputs.model import load_tokenizer
    from compact.trainer.run import load_config, train
    from compact.trainer.tiny import tiny_student, toy_instances

    student = tiny_student(tmp_path / "student")
    insts = toy_instances(10)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    cfg = load_config(None, [f"model.path={student}", "method=mcckd", "objective.path=reference",
                             "optim.questions_per_step=3", "optim.micro_batch_questions=2", "optim.max_steps=3",
                             "optim.lr=0.001", "optim.schedule=linear", "optim.warmup_steps=1", "data.max_length=48",
                             "model.lora={r: 4, alpha: 8, dropout: 0.0}"])
    loop_dir = train(cfg, root=tmp_path / "loop", instances=insts)
    args = CompactSFTConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=2,
                            gradient_accumulation_steps=2, questions_per_step=3, max_steps=3, learning_rate=1e-3,
                            lr_scheduler_type="linear", warmup_steps=1, max_grad_norm=1.0, optim="adamw_torch", seed=0,
                            logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True,
                            bf16=False, gradient_checkpointing=False, max_length=48, method="mcckd",
                            objective={"path": "reference"}, alpha_log=True)
    trainer = CompactSFTTrainer(model=AutoModelForCausalLM.from_pretrained(str(student)), args=args,
                                train_dataset=instances_dataset(insts), processing_class=load_tokenizer(student),
                                peft_config=LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets,
                                                       task_type="CAUSAL_LM"))
    assert all("lora_" in n for n, p in trainer.model.named_parameters() if p.requires_grad)
    trainer.train()
    log = jsonl(loop_dir / "log.jsonl")
    hist = [r for r in trainer.state.log_history if "compact/loss_sft" in r]
    assert len(hist) == len(log) == 3
    for r, h in zip(log, hist):
        assert h["loss"] == pytest.approx(r["loss"], rel=TOL) and h["grad_norm"] == pytest.approx(r["grad_norm"], rel=TOL)
        assert all(h[f"compact/alpha/{t}"] == pytest.approx(1 / 3, abs=1e-6) for t in ("t0", "t1", "t2"))
    ref, got = load_file(str(loop_dir / "model.safetensors")), trainer.model.merge_and_unload().state_dict()
    for k, v in ref.items():
        torch.testing.assert_close(got[k], v, rtol=TOL, atol=1e-6)
    assert any(not torch.equal(v, load_file(str(student / "model.safetensors"))[k])
               for k, v in ref.items() if k in load_file(str(student / "model.safetensors")))


# ------------------------------------------------------------------------------------------------ bad input
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from compact.inputs.model import load_tokenizer
    from compact.trainer.tiny import tiny_student

    path = tiny_student(tmp_path_factory.mktemp("tiny") / "s")
    return path, load_tokenizer(path)


def make(tiny, tmp_path, rows, cls_name="CompactTrainer", **extra):
    from transformers import AutoModelForCausalLM

    from compact import hf

    cls = getattr(hf, cls_name)
    kw = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=2, gradient_accumulation_steps=2,
              max_steps=1, report_to="none", use_cpu=True, max_length=64)
    kw.update(extra)
    if cls_name == "CompactSFTTrainer":
        args = hf.CompactSFTConfig(bf16=False, **kw)
    else:
        args = hf.CompactTrainingArguments(**kw)
    return cls(model=AutoModelForCausalLM.from_pretrained(str(tiny[0])), args=args, train_dataset=rows,
               processing_class=tiny[1])


def one_line(exc) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("cls_name", ["CompactTrainer", "CompactSFTTrainer"])
def test_bad_rows_stop_before_anything_is_written(tiny, tmp_path, cls_name):
    import datasets

    from compact.hf.dataset import instance_row
    from compact.trainer.tiny import toy_instances

    rows = [instance_row(i) for i in toy_instances(8)]
    bad = list(rows)
    bad[5] = dict(rows[5], teachers=rows[5]["teachers"][:2])
    with pytest.raises(DataError) as exc:
        make(tiny, tmp_path, datasets.Dataset.from_list(bad), cls_name)
    assert "train_dataset, row 5" in one_line(exc) and "toy-5" in str(exc.value)
    assert "3 completions but 2 teacher names" in str(exc.value)
    lone = list(rows)
    lone[2] = dict(rows[2], completions=rows[2]["completions"][:1], teachers=rows[2]["teachers"][:1],
                   correct=[None], steps_correct=[None], extracted=[None])
    with pytest.raises(DataError) as exc:
        make(tiny, tmp_path, lone, cls_name, method="uniform")
    assert "row 2" in one_line(exc) and "method 'uniform'" in str(exc.value) and "at least 2" in str(exc.value)
    assert not (tmp_path / "out").exists()  # no output folder, let alone a checkpoint


def test_batch_settings_that_would_split_questions_are_one_line(tiny, tmp_path):
    from compact.hf.dataset import instance_row
    from compact.trainer.tiny import toy_instances

    rows = [instance_row(i) for i in toy_instances(12)]
    cases = [
        (dict(questions_per_step=8, per_device_train_batch_size=3, gradient_accumulation_steps=2),
         "questions_per_step=8", "gradient_accumulation_steps=3"),
        (dict(accelerator_config={"split_batches": True}), "accelerator_config.split_batches", None),
        (dict(auto_find_batch_size=True), "auto_find_batch_size", None),
        (dict(questions_per_step=16, per_device_train_batch_size=8),
         "12 training questions are fewer than questions_per_step=16", None),
    ]
    for extra, needle, hint in cases:
        with pytest.raises(ConfigError) as exc:
            make(tiny, tmp_path, rows, **extra)
        assert needle in one_line(exc) and (hint is None or hint in str(exc.value)), str(exc.value)
    for name in ("packing", "padding_free"):
        with pytest.raises(ConfigError) as exc:
            make(tiny, tmp_path, rows, "CompactSFTTrainer", **{name: True})
        assert f"{name}=True" in one_line(exc)
    with pytest.raises(ConfigError) as exc:
        make(tiny, tmp_path, rows, objective={"lambda_consistancy": 0.2})
    assert "lambda_consistancy" in one_line(exc)
    with pytest.raises(ConfigError) as exc:
        make(tiny, tmp_path, rows, method="uniform", objective={"consistency": "sequence"})
    assert "method 'uniform'" in one_line(exc)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("checkpoint-*"))


def test_teachers_select_and_order_completions_and_methods_read_labels(tiny, tmp_path):
    from compact.hf.dataset import instance_row
    from compact.trainer.tiny import toy_instances

    rows = [instance_row(i) for i in toy_instances(8)]
    trainer = make(tiny, tmp_path, rows, teachers=["t2", "t0"])
    assert trainer.compact_teachers == ["t2", "t0"]
    assert all(q.teachers == [0, 1] and len(q.branches) == 2 for q in trainer.compact_questions)
    with pytest.raises(ConfigError) as exc:
        make(tiny, tmp_path, rows, teachers=["t1"])
    assert "name at least 2" in one_line(exc)
    with pytest.raises(DataError) as exc:
        make(tiny, tmp_path, rows, teachers=["t1", "t9"])
    assert "toy-0" in one_line(exc) and "t9" in str(exc.value)
    # oracle_answer keeps the completions labelled correct: unlabelled rows leave nothing to train on
    with pytest.raises(ConfigError) as exc:
        make(tiny, tmp_path, rows, method="oracle_answer")
    assert "no completion labelled correct" in one_line(exc)
    labelled = [dict(r, correct=[True, k % 2 == 0, False]) for k, r in enumerate(rows)]
    trainer = make(tiny, tmp_path, labelled, method="oracle_answer")
    assert [len(q.branches) for q in trainer.compact_questions] == [2 if k % 2 == 0 else 1 for k in range(8)]
    single = make(tiny, tmp_path, rows, method="single", teacher="t1")
    assert all(q.teachers == [1] for q in single.compact_questions)


def test_resuming_from_a_trainer_checkpoint_gives_the_uninterrupted_run(tiny, tmp_path):
    """Trainer checkpoints work as for any Trainer: resuming at step 2 of 4 (the steps cross an epoch) gives the
    uninterrupted run's parameters and losses; alpha.jsonl loses the lines an interrupted run left after the
    checkpoint and ends as the uninterrupted run's."""
    import shutil

    from transformers import AutoModelForCausalLM

    from compact.hf import CompactSFTConfig, CompactSFTTrainer
    from compact.hf.dataset import instances_dataset
    from compact.trainer.tiny import toy_instances

    def run(out: Path, resume=None):
        args = CompactSFTConfig(output_dir=str(out), per_device_train_batch_size=2, gradient_accumulation_steps=2,
                                questions_per_step=3, max_steps=4, save_strategy="steps", save_steps=2,
                                report_to="none", disable_tqdm=True, max_length=48, bf16=False,
                                gradient_checkpointing=False, optim="adamw_torch", learning_rate=1e-3,
                                lr_scheduler_type="cosine", warmup_steps=1, alpha_log=True, logging_steps=1)
        trainer = CompactSFTTrainer(model=AutoModelForCausalLM.from_pretrained(str(tiny[0])), args=args,
                                    train_dataset=instances_dataset(toy_instances(10)), processing_class=tiny[1])
        trainer.train(resume_from_checkpoint=resume)
        return trainer

    whole = run(tmp_path / "a")
    shutil.copytree(tmp_path / "a" / "checkpoint-2", tmp_path / "b" / "checkpoint-2")
    lines = (tmp_path / "a" / "alpha.jsonl").read_text().splitlines()
    (tmp_path / "b" / "alpha.jsonl").write_text("\n".join(ln for ln in lines if json.loads(ln)["step"] <= 3) + "\n")
    resumed = run(tmp_path / "b", resume=str(tmp_path / "b" / "checkpoint-2"))
    for k, v in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k
    losses = [[r["loss"] for r in t.state.log_history if "compact/loss_sft" in r] for t in (whole, resumed)]
    assert losses[0] == losses[1] and len(losses[0]) == 4
    assert (tmp_path / "b" / "alpha.jsonl").read_text() == (tmp_path / "a" / "alpha.jsonl").read_text()


def test_question_sampler_is_the_loops_order():
    """Each optimizer step's questions are compact train's: the (seed, epoch) permutation, the process's slice, sorted
    by length; every question of the step exactly once, micro-batches of whole questions."""
    from compact.hf.trainer import QuestionStepSampler
    from compact.trainer.loop import epoch_order

    lengths = [(7 * i) % 11 for i in range(23)]
    for world in (1, 2):
        samplers = [QuestionStepSampler(lengths, questions_per_step=6, micro_batch=2, seed=3, rank=r, world_size=world)
                    for r in range(world)]
        for s in samplers:
            s.set_epoch(1)
            assert len(list(s)) == len(s) == 3 * math.ceil(6 / world / 2)
        order = epoch_order(23, 3, 1)
        for step in range(3):
            got = [i for s in samplers for b in s.step_batches(1, step) for i in b]
            assert sorted(got) == sorted(order[step * 6:(step + 1) * 6])
            for s in samplers:
                flat = [i for b in s.step_batches(1, step) for i in b]
                assert flat == sorted(flat, key=lambda i: (lengths[i], i))


# -------------------------------------------------------------------------------------------- two processes
DDP_WORKER = '''
import json, os, sys
from pathlib import Path
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM
from compact.hf import CompactTrainer, CompactTrainingArguments
from compact.hf.dataset import instances_dataset
from compact.inputs.model import load_tokenizer
from compact.trainer.tiny import toy_instances

student, out = sys.argv[1], Path(sys.argv[2])
world = int(os.environ.get("WORLD_SIZE", "1"))
args = CompactTrainingArguments(output_dir=str(out), per_device_train_batch_size=1, gradient_accumulation_steps=4 // world,
    questions_per_step=4, max_steps=3, learning_rate=1e-3, adam_epsilon=0.1, optim="adamw_torch",
    lr_scheduler_type="constant", max_grad_norm=1.0, seed=0, logging_steps=1, save_strategy="no", report_to="none",
    use_cpu=True, disable_tqdm=True, max_length=96, alpha_log=True)
t = CompactTrainer(model=AutoModelForCausalLM.from_pretrained(student), args=args,
                   train_dataset=instances_dataset(toy_instances(16)), processing_class=load_tokenizer(student))
t.train()
if t.accelerator.is_main_process:
    save_file({k: v.clone().contiguous() for k, v in t.model.state_dict().items()}, str(out / "params.safetensors"))
    (out / "history.json").write_text(json.dumps(t.state.log_history))
'''


@pytest.mark.multiprocess
@pytest.mark.slow
def test_two_processes_match_compact_train_on_one(tmp_path):
    """CompactTrainer under torchrun (2 CPU processes, gloo DDP) trains what compact train trains in one process:
    each process takes its slice of every step's questions, the gradients average to the mean over all of them,
    and both processes' branches reach alpha.jsonl. Adam eps is large (as in test_ddp) so that all-reduce rounding
    on near-zero gradients is not blown up to lr-sized steps; alpha within the z-score bound (one padded forward
    under DDP, length buckets in one process)."""
    import os
    import subprocess
    import sys

    import yaml

    from compact.trainer.tiny import tiny_student, toy_instances, write_instances_jsonl

    student = tiny_student(tmp_path / "student")
    data = write_instances_jsonl(toy_instances(16), tmp_path / "inst.jsonl")
    cfg = {"name": "one", "data": {"instances": str(data), "max_length": 96}, "model": {"path": str(student)},
           "accelerator": {"cpu": True},
           "optim": {"lr": 0.001, "eps": 0.1, "questions_per_step": 4, "micro_batch_questions": 1, "max_steps": 3}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    base = {**os.environ, "COMPACT_QUIET": "1", "OMP_NUM_THREADS": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    one = subprocess.run([sys.executable, "-m", "compact.trainer", "--config", str(tmp_path / "run.yaml")],
                         capture_output=True, text=True, timeout=300,
                         env={**base, "COMPACT_ARTIFACTS": str(tmp_path / "art")})
    assert one.returncode == 0, one.stderr[-2000:]
    loop_dir = Path(one.stdout.strip().splitlines()[-1])
    (tmp_path / "worker.py").write_text(DDP_WORKER)
    torchrun = Path(sys.executable).with_name("torchrun")
    two = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29541", str(tmp_path / "worker.py"),
                          str(student), str(tmp_path / "hf")], capture_output=True, text=True, timeout=300, env=base)
    assert two.returncode == 0, two.stderr[-3000:]
    ref, got = load_file(str(loop_dir / "model.safetensors")), load_file(str(tmp_path / "hf" / "params.safetensors"))
    for k, v in ref.items():
        torch.testing.assert_close(got[k], v, rtol=TOL, atol=1e-6)
    log = jsonl(loop_dir / "log.jsonl")
    hist = [r for r in json.loads((tmp_path / "hf" / "history.json").read_text()) if "compact/loss_sft" in r]
    assert [h["loss"] for h in hist] == pytest.approx([r["loss"] for r in log], rel=TOL)
    ours = jsonl(loop_dir / "alpha.jsonl")
    theirs = {(r["step"], r["id"], r["teacher"]): r for r in jsonl(tmp_path / "hf" / "alpha.jsonl")}
    assert len(theirs) == len(ours) == 3 * 4 * 3
    cfg_obj = ObjectiveConfig()
    for step_id in {(r["step"], r["id"]) for r in ours}:
        rows = [r for r in ours if (r["step"], r["id"]) == step_id]
        out = types.SimpleNamespace(**{k: torch.tensor([r[k] for r in rows], dtype=torch.float64)
                                       for k in ("mi", "consensus", "difficulty")})
        bound = TOL + 0.5 * _fusion_tolerance(out, torch.zeros(len(rows), dtype=torch.long), cfg_obj, TOL).max().item()
        for r in rows:
            assert abs(theirs[(r["step"], r["id"], r["teacher"])]["alpha"] - r["alpha"]) <= bound
