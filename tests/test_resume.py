"""Kill a training process with SIGKILL after a checkpoint, resume it, and get the uninterrupted run's bits."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from compact.trainer.checkpoint import list_checkpoints
from compact.trainer.tiny import tiny_student, toy_instances, write_instances_jsonl


def _config(tmp: Path) -> Path:
    student = tiny_student(tmp / "student")
    data = write_instances_jsonl(toy_instances(24), tmp / "inst.jsonl")
    cfg = {"name": "resume", "data": {"instances": str(data), "max_length": 96}, "model": {"path": str(student),
           # LoRA dropout draws from torch's generator: resume must restore it to match bit for bit
           "lora": {"r": 4, "alpha": 8, "dropout": 0.1}},
           "optim": {"lr": 0.01, "schedule": "cosine", "warmup_steps": 2, "epochs": 2, "questions_per_step": 4,
                     "micro_batch_questions": 2},  # 2 epochs x 6 steps: the kill lands mid-run
           "checkpoint": {"every": 2, "keep": 2}, "seed": 3}
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _cmd(cfg: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "compact.trainer", "--config", str(cfg), *extra]


def _env(root: Path) -> dict:
    return {**os.environ, "COMPACT_ARTIFACTS": str(root), "COMPACT_QUIET": "1"}


@pytest.mark.slow
def test_sigkill_then_resume_is_bitwise_equal(tmp_path, await_checkpoints):
    cfg = _config(tmp_path)
    ref = subprocess.run(_cmd(cfg), env=_env(tmp_path / "ref"), capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr[-2000:]
    ref_dir = Path(ref.stdout.strip().splitlines()[-1])

    root = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(cfg, "--set", "debug.step_sleep_s=0.4"), env=_env(root),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ckpts = await_checkpoints(root, proc, 2)  # steps 2 and 4 written
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at = list_checkpoints(ckpts)[-1][0]
    assert 4 <= killed_at < 12

    res = subprocess.run(_cmd(cfg), env=_env(root), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "resumed from" in res.stderr
    out = Path(res.stdout.strip().splitlines()[-1])
    assert out.name == ref_dir.name
    a, b = load_file(str(ref_dir / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    la = [json.loads(x) for x in (ref_dir / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lb] == list(range(1, 13))
    assert [r["loss"] for r in la] == [r["loss"] for r in lb]
