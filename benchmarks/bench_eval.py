"""Benchmark: evaluate 1000 world questions with a world student (target: at most 20 s on CPU).

    .venv/bin/python benchmarks/bench_eval.py [--n 1000] [--batch-size 256] [--max-new-tokens 128]
    # a trained student, which writes whole rationales (~80-200 tokens) where the base student writes ~8
    .venv/bin/python benchmarks/bench_eval.py --model artifacts/runs/<run> --max-new-tokens 320

Where the time goes: the same questions are also timed in two parts, the generated answers (ID questions:
prefill + greedy decoding) and the knowledge probes (OOD questions: option log-likelihoods, one forward each).

Uses the default world when it is already built, else builds (or reuses) the smoke world, and says which.
Questions cycle over every task and split until ``--n`` are collected (the smoke world has fewer than 1000
distinct questions; repeats get distinct ids). Prints one JSON line: seconds, questions/s, the target, the
mean generated length, how rows stopped, and accuracy (meaningless for speed, shown as a sanity check).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_S = 20.0


def main() -> int:
    import torch

    from compact.config import load
    from compact.eval.evaluate import EvalConfig, evaluate, load_model, load_tokenizer
    from compact.provenance import is_complete
    from compact.world.build import WorldConfig, build_world, world_path

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--prune", type=float, default=0.0, help="EvalConfig.prune_finished (0: the batch stays whole)")
    ap.add_argument("--model", default="", help="a student folder (a trained run); default: the world's base student")
    args = ap.parse_args()

    default = load(WorldConfig, "configs/world/default.yaml")
    which = "default" if is_complete(world_path(default)) else "smoke"
    world = build_world(default if which == "default" else load(WorldConfig, "configs/world/smoke.yaml"))
    # every task in turn (ID answers and OOD probes mixed as in a real evaluation), test split first
    per_task = [[e for s in ("test", "dev", "train") for e in world.examples(t, s)]
                for t in [*world.id_tasks, *world.ood_tasks]]
    pool = [lst[i] for i in range(max(map(len, per_task))) for lst in per_task if i < len(lst)]
    examples = [dataclasses.replace(pool[i % len(pool)], id=f"{pool[i % len(pool)].id}#{i // len(pool)}")
                for i in range(args.n)]
    tok_dir = world.student_path if (world.student_path / "tokenizer_config.json").is_file() else world.tokenizer_path
    if args.model:
        tok_dir = args.model
    model, tok = load_model(args.model or world.student_path), load_tokenizer(tok_dir)
    cfg = EvalConfig(batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, n_bootstrap=200,
                     probe_scoring="loglik", prune_finished=args.prune)
    evaluate(model, tok, examples[: args.batch_size], cfg)  # warm-up (first-call allocations)
    t0 = time.perf_counter()
    res = evaluate(model, tok, examples, cfg)
    secs = time.perf_counter() - t0
    probes = [e for e in examples if isinstance(e.meta, dict) and "probe" in e.meta]
    answers = [e for e in examples if not (isinstance(e.meta, dict) and "probe" in e.meta)]
    parts = {}
    for name, part in (("generated_answers", answers), ("probes", probes)):
        t1 = time.perf_counter()
        if part:
            evaluate(model, tok, part, cfg)
        parts[name] = {"questions": len(part), "seconds": round(time.perf_counter() - t1, 2)}
    stops: dict[str, int] = {}
    for s in res.samples:
        stops[s["stop"]] = stops.get(s["stop"], 0) + 1
    print(json.dumps({
        "benchmark": "eval", "world": which, "world_path": str(world.path), "questions": len(examples),
        "distinct_questions": min(len(pool), args.n), "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens, "seconds": round(secs, 2),
        "questions_per_s": round(len(examples) / secs, 1), "target_s": TARGET_S, "ok": secs <= TARGET_S,
        "model": args.model or str(world.student_path), "prune_finished": args.prune, "parts": parts,
        "mean_new_tokens": round(sum(s["n_new_tokens"] for s in res.samples) / len(res.samples), 1),
        "stops": stops, "accuracy_strict": round(res.metrics["all"]["strict"], 3),
        "torch_threads": torch.get_num_threads(),
        "student_params": sum(p.numel() for p in model.parameters()),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
