"""Two processes over gloo (torchrun) train the same parameters as one process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from compact.trainer.tiny import tiny_student, toy_instances, write_instances_jsonl


@pytest.mark.multiprocess
@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    student = tiny_student(tmp_path / "student")
    data = write_instances_jsonl(toy_instances(16), tmp_path / "inst.jsonl")
    # Adam eps large: the update stays proportional to the gradient, so rounding noise from DDP's all-reduce
    # on near-zero gradients is not blown up to lr-sized steps. Reference-mode objective (the default).
    cfg = {"name": "ddp", "data": {"instances": str(data), "max_length": 96}, "model": {"path": str(student)},
           "accelerator": {"cpu": True},
           "optim": {"lr": 0.001, "eps": 0.1, "questions_per_step": 4, "micro_batch_questions": 1, "max_steps": 3},
           "checkpoint": {"every": 2}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    base = {**os.environ, "COMPACT_QUIET": "1", "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "compact.trainer", "--config", str(path)], capture_output=True,
                         text=True, timeout=300, env={**base, "COMPACT_ARTIFACTS": str(tmp_path / "one")})
    assert one.returncode == 0, one.stderr[-2000:]
    torchrun = Path(sys.executable).with_name("torchrun")
    two = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29517", "-m", "compact.trainer",
                          "--config", str(path)], capture_output=True, text=True, timeout=300,
                         env={**base, "COMPACT_ARTIFACTS": str(tmp_path / "two")})
    assert two.returncode == 0, two.stderr[-3000:]
    d1 = Path(one.stdout.strip().splitlines()[-1])
    d2 = Path([ln for ln in two.stdout.strip().splitlines() if ln.startswith("/")][-1])
    s2 = json.loads((d2 / "summary.json").read_text())
    assert s2["num_processes"] == 2
    p1, p2 = load_file(str(d1 / "model.safetensors")), load_file(str(d2 / "model.safetensors"))
    for k in p1:
        torch.testing.assert_close(p2[k], p1[k], atol=1e-6, rtol=1e-5)
    l1 = [json.loads(x) for x in (d1 / "log.jsonl").read_text().splitlines()]
    l2 = [json.loads(x) for x in (d2 / "log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in l2] == pytest.approx([r["loss"] for r in l1], rel=1e-5)
    # both processes' branches reach the alpha log
    assert len((d2 / "alpha.jsonl").read_text().splitlines()) == 3 * 4 * 3
