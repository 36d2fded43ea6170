"""Fast versus reference objective core: same numbers, time and peak memory (forward + backward).

    .venv/bin/python benchmarks/bench_objective.py            # K=4, L=512, V=32000, hidden 64
    .venv/bin/python benchmarks/bench_objective.py --quick    # L=128, fewer repeats (a smoke run)
    # on a GPU at the paper's student shape (Qwen2.5-1.5B: V=151936, hidden 1536), bf16 (benchmarks/gpu_check.sh)
    python benchmarks/bench_objective.py --device cuda --dtype bfloat16 --length 2048 --vocab 151936 --hidden 1536

Times: both paths alternate in THIS process (the reference path is the baseline), median of the repeats.
Peak memory: each path runs once in a fresh subprocess and reports its peak resident set size
(``VmHWM`` in /proc/self/status; ``ru_maxrss`` would inherit the parent's peak across fork + exec) minus
the RSS just before the objective runs (inputs already allocated): what the objective itself adds; torch's CPU allocator returns large
blocks to the OS, so RSS peaks track tensor peaks. On a GPU the peak is CUDA's ``max_memory_allocated`` minus
the memory allocated before the objective ran, and every timed step ends with a device synchronisation. The inputs are random logits (leaf, requires grad),
random hidden states and random q/k projections (4 heads, 2 kv heads), seeded, identical in every process.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from compact.method.batch import synthetic_batch  # noqa: E402
from compact.method.objective import (
    AttentionProjections,
    ObjectiveConfig,
    objective_from_outputs,
)


def make_inputs(k: int, length: int, vocab: int, hidden: int, seed: int = 0, device: str = "cpu",
                dtype: torch.dtype = torch.float32):
    """Seeded on the CPU (the same numbers on every device), then moved to ``device`` in ``dtype``."""
    gen = torch.Generator().manual_seed(seed)
    batch = synthetic_batch(1, k, length, vocab, seed=seed).to(device)
    logits = torch.randn(k, length, vocab, generator=gen).mul_(2.0).to(device, dtype).requires_grad_(True)  # (K, L, V)
    hid = torch.randn(k, length, hidden, generator=gen).to(device, dtype)  # (K, L, H)
    w_u = torch.randn(vocab, hidden, generator=gen).to(device, dtype)  # (V, H)
    torch.manual_seed(seed)
    proj = AttentionProjections(nn.Linear(hidden, hidden).to(device, dtype), nn.Linear(hidden, hidden // 2).to(device, dtype),
                                4, 2)
    return logits, hid, w_u, proj, batch


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def step(path: str, inputs) -> dict:
    logits, hid, w_u, proj, batch = inputs
    logits.grad = None
    out = objective_from_outputs(logits, hid, w_u, proj, batch, ObjectiveConfig(path=path))
    out.loss.backward()
    sync(str(logits.device))
    peak = torch.cuda.max_memory_allocated() / 2**20 if logits.is_cuda else hwm_mib()  # before the copies below
    grad = logits.grad.detach().float().clone()
    return {"peak_rss_mib": peak, "grad": grad, "loss": out.loss.item(), "loss_sft": out.loss_sft.item(), "loss_consistency": out.loss_consistency.item(),
            "alpha": out.alpha.tolist(), "grad_l2": float(logits.grad.double().norm()),
            "grad_abs_sum": float(logits.grad.double().abs().sum())}


def hwm_mib() -> float:
    """Peak RSS of this process image (VmHWM; unlike ru_maxrss it is not inherited across fork + exec)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def worker(path: str, args) -> None:
    inputs = make_inputs(args.k, args.length, args.vocab, args.hidden, device=args.device, dtype=getattr(torch, args.dtype))
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
    else:
        before = rss_mib()
    result = step(path, inputs)
    result["peak_mib"] = result["peak_rss_mib"] - before
    result.pop("grad")
    print(json.dumps(result))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="L=128, 2 repeats")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--length", type=int, default=None)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--tol", type=float, default=None, help="largest difference allowed (1e-5 in float32, 2e-2 in bf16)")
    ap.add_argument("--worker", choices=["reference", "fast"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.length = args.length or (128 if args.quick else 512)
    repeats = args.repeats or (2 if args.quick else 5)
    if args.worker:
        worker(args.worker, args)
        return 0

    tol = args.tol if args.tol is not None else (1e-5 if args.dtype == "float32" else 2e-2)
    shape = f"K={args.k} L={args.length} V={args.vocab} hidden={args.hidden} {args.dtype} on {args.device}"
    print(f"bench_objective: {shape}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    inputs = make_inputs(args.k, args.length, args.vocab, args.hidden, device=args.device, dtype=getattr(torch, args.dtype))
    results, times = {}, {"reference": [], "fast": []}
    for path in ("reference", "fast"):  # warm-up, and the numbers to compare
        results[path] = step(path, inputs)
    for _ in range(repeats):
        for path in ("reference", "fast"):
            sync(args.device)
            t0 = time.perf_counter()
            step(path, inputs)
            times[path].append(time.perf_counter() - t0)
    del inputs

    peaks = {}
    for path in ("reference", "fast"):
        cmd = [sys.executable, __file__, "--worker", path, "--k", str(args.k), "--length", str(args.length),
               "--vocab", str(args.vocab), "--hidden", str(args.hidden), "--device", args.device, "--dtype", args.dtype]
        peaks[path] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)["peak_mib"]

    ref, fast = results["reference"], results["fast"]
    diffs = {key: abs(fast[key] - ref[key]) / max(1.0, abs(ref[key]))
             for key in ("loss", "loss_sft", "loss_consistency", "grad_l2")}
    diffs["alpha"] = max(abs(a - b) for a, b in zip(fast["alpha"], ref["alpha"]))
    diffs["grad (max abs)"] = float((fast["grad"] - ref["grad"]).abs().max())
    same = all(v <= tol for v in diffs.values())
    print("differences (relative on scalars, absolute on alpha and gradient): "
          + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
    t_ref, t_fast = statistics.median(times["reference"]), statistics.median(times["fast"])
    print(f"{'path':<10} {'time (s)':>10} {'peak (MiB)':>11}")
    print(f"{'reference':<10} {t_ref:>10.3f} {peaks['reference']:>11.0f}")
    print(f"{'fast':<10} {t_fast:>10.3f} {peaks['fast']:>11.0f}")
    print(f"speed-up (reference / fast): {t_ref / t_fast:.2f}x   memory ratio (fast / reference): "
          f"{peaks['fast'] / peaks['reference']:.2f}")
    print(f"same numbers (tolerance {tol:.0e}): {same} (max difference {max(diffs.values()):.1e}; loss {ref['loss']:.6f}, "
          f"consistency {ref['loss_consistency']:.6f}, grad L2 {ref['grad_l2']:.6f})")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
