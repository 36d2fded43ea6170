"""FSDP2 over gloo on CPU: the objective on a fully_shard-ed student (two torchrun processes, DTensor shards)
gives the loss, alpha and gradients of one unsharded process (compact.trainer.fsdp_parity)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compact.paths import repo_root


def _parity(*args: str, port: int) -> dict:
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", str(port), "-m",
                           "compact.trainer.fsdp_parity", *args], capture_output=True, text=True, timeout=300,
                          env=env, cwd=repo_root())
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, proc.stderr[-3000:]
    out = json.loads(lines[-1])
    assert proc.returncode == 0, (out, proc.stderr[-2000:])
    return out


@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.parametrize("args,port", [(("--lora",), 29612), (("--path", "fast"), 29613)], ids=["lora", "fast"])
def test_fsdp2_two_processes_match_one(args, port):
    """Consensus applies the last layer's q/k projections and MI the LM head outside the wrapped forward, where
    FSDP2 leaves them as DTensor shards: gathered (compact.method.shards) they give one process's numbers. (The
    reference path without LoRA runs in test_gpu_check_runs_its_cpu_twin.)"""
    out = _parity(*args, port=port)
    assert out["world_size"] == 2 and out["sharded_params"] > 0 and out["ok"]
    assert out["max_abs_loss"] <= 1e-5 and out["max_abs_alpha"] <= 1e-5 and out["max_abs_grad"] <= 1e-5
    assert out["missing_grads"] == []


@pytest.mark.multiprocess
@pytest.mark.slow
def test_an_fsdp_config_on_cpu_is_refused_not_run_as_ddp(tmp_path):
    """accelerate runs an FSDP config without GPUs as DDP over gloo (nothing sharded, not what the config says);
    the trainer refuses that on one line and publishes no run."""
    import yaml

    from compact.trainer.tiny import tiny_student, toy_instances, write_instances_jsonl

    student = tiny_student(tmp_path / "student")
    data = write_instances_jsonl(toy_instances(8), tmp_path / "inst.jsonl")
    cfg = {"name": "fsdp-cpu", "data": {"instances": str(data), "max_length": 96}, "model": {"path": str(student)},
           "accelerator": {"cpu": True}, "optim": {"questions_per_step": 2, "micro_batch_questions": 1, "max_steps": 1}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    acc_cfg = yaml.safe_load((repo_root() / "configs/accelerate/fsdp.yaml").read_text())
    acc_cfg.update(num_processes=2, use_cpu=True, mixed_precision="no", main_process_port=29614)
    (tmp_path / "fsdp_cpu.yaml").write_text(yaml.safe_dump(acc_cfg))
    accelerate = Path(sys.executable).with_name("accelerate")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COMPACT_QUIET": "1", "COMPACT_ARTIFACTS": str(tmp_path / "art")}
    proc = subprocess.run([str(accelerate), "launch", "--config_file", str(tmp_path / "fsdp_cpu.yaml"), "-m",
                           "compact.trainer", "--config", str(tmp_path / "run.yaml")], capture_output=True, text=True,
                          timeout=300, env=env, cwd=repo_root())
    assert proc.returncode != 0
    assert "the accelerate config asks for FSDP but accelerate runs MULTI_CPU here" in proc.stderr
    assert not (tmp_path / "art" / "runs").exists() or not any((tmp_path / "art" / "runs").glob("fsdp-cpu-*"))


@pytest.mark.multiprocess
@pytest.mark.slow
def test_gpu_check_runs_its_cpu_twin():
    """benchmarks/gpu_check.sh --cpu: the GPU check's steps at CPU size (FSDP2 parity in the reference path over
    2 gloo processes, both objective paths with the same numbers, the step benchmarks) all finish, rc 0."""
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--cpu"], capture_output=True, text=True, timeout=600,
                          cwd=repo_root(), env={**os.environ, "PY": sys.executable})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    parity = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("{")))
    assert parity["ok"] and parity["world_size"] == 2 and parity["path"] == "reference"
    assert proc.stdout.count("same numbers (tolerance 1e-05): True") == 1
    assert "(b) COMPACT: B=1" in proc.stdout and "gpu_check done" in proc.stdout
