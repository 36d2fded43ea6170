"""Token-level HSIC for metric validation: ``token_answer_hsic`` against the estimator it implements,
``hsic_mi`` of each token's (hidden coordinate, gold coordinate) pairs batched over tokens (the baseline, as
``token_answer_hsic`` computed it before: both Gram matrices, their bandwidths and three centrings per token).

    .venv/bin/python benchmarks/bench_hsic.py                  # SmolLM2's hidden size 576, 2 rows x 48 tokens
    .venv/bin/python benchmarks/bench_hsic.py --hidden 128     # the world student's

Both run in THIS process on the same seeded inputs, alternating; the median of the repeats; the largest relative
difference of the two results is printed (they compute the same numbers).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from compact.method.hsic import hsic_mi, token_answer_hsic  # noqa: E402


def baseline(hidden: torch.Tensor, gold: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """hsic_mi (normalised) per token, tokens batched ``chunk`` at a time, gold repeated per token."""
    n, length, h = hidden.shape
    x = hidden.reshape(n * length, h, 1)
    y = gold[:, None, :].expand(n, length, h).reshape(n * length, h, 1)
    out = torch.empty(n * length, dtype=torch.float64)
    for s in range(0, n * length, chunk):
        out[s:s + chunk] = hsic_mi(x[s:s + chunk], y[s:s + chunk], normalize=True)
    return out.view(n, length)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, default=576)
    ap.add_argument("--rows", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(args.rows, args.tokens, args.hidden, generator=gen)
    gold = torch.randn(args.rows, args.hidden, generator=gen)
    times: dict[str, list[float]] = {"baseline": [], "token_answer_hsic": []}
    for _ in range(args.repeats):
        t = time.perf_counter()
        ref = baseline(hidden, gold)
        times["baseline"].append(time.perf_counter() - t)
        t = time.perf_counter()
        fast = token_answer_hsic(hidden, gold, normalize=True)
        times["token_answer_hsic"].append(time.perf_counter() - t)
    n_tok = args.rows * args.tokens
    med = {k: statistics.median(v) for k, v in times.items()}
    res = {"hidden": args.hidden, "tokens": n_tok, "threads": torch.get_num_threads(),
           "ms_per_token": {k: round(1000 * v / n_tok, 2) for k, v in med.items()},
           "speedup": round(med["baseline"] / med["token_answer_hsic"], 2),
           "max_rel_diff": float(((fast - ref).abs() / ref.abs().clamp(min=1e-12)).max())}
    print(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
