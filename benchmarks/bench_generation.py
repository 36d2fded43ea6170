"""Hugging Face teacher throughput: batched generation (batch 64) versus one prompt at a time.

    .venv/bin/python benchmarks/bench_generation.py                 # CPU: tiny random Llama, 64 prompts
    .venv/bin/python benchmarks/bench_generation.py --new-tokens 128 --threads 0

Same 64 prompts, same number of new tokens per prompt (``min_new_tokens == max_new_tokens`` so EOS cannot
end a row early), greedy decoding, through :class:`compact.teachers.hf.HFTeacher` (chat template, left
padding). Prints tokens/s for both and the ratio; the issue asks for at least 10x.
"""
from __future__ import annotations

import argparse
import json
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=1024, help="tiny BPE vocabulary (0 = bytes only)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (0 = torch default); 1 avoids thread-sync overhead of a tiny model on a busy CPU")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from compact.data.records import Example
    from compact.teachers.base import SamplingParams
    from compact.teachers.hf import HFTeacher
    from compact.teachers.tiny import tiny_llama, tiny_tokenizer

    tok = tiny_tokenizer(vocab_size=args.vocab)
    model = tiny_llama(tok, hidden=args.hidden, layers=args.layers, heads=4)
    qs = [Example(id=f"b{i}", question=f"Tom has {i} apples and buys {i % 7 + 2} more. How many now?",
                  answer=str(i + i % 7 + 2), answer_type="number", source="bench") for i in range(args.prompts)]
    params = SamplingParams(max_new_tokens=args.new_tokens)
    results = {}
    for batch in (args.batch, 1):
        t = HFTeacher(model, tokenizer=tok, name=f"bench-b{batch}", batch_size=batch, device="cpu",
                      min_new_tokens=args.new_tokens)
        t.generate(qs[:2], params)  # warm-up
        t0 = time.perf_counter()
        out = t.generate(qs, params)
        dt = time.perf_counter() - t0
        n_tok = sum(g.meta["n_new_tokens"] for x in out for g in x)
        assert n_tok == args.prompts * args.new_tokens, n_tok
        results[batch] = {"tokens": n_tok, "seconds": round(dt, 3), "tokens_per_s": round(n_tok / dt, 1)}
        print(f"batch {batch:>3}: {n_tok} new tokens in {dt:7.2f}s = {n_tok / dt:9.1f} tok/s")
    ratio = results[args.batch]["tokens_per_s"] / results[1]["tokens_per_s"]
    print(f"speed-up batch {args.batch} vs 1: {ratio:.1f}x (target >= 10x)")
    prompt_len = len(tok(t.prompt_text(qs[0]), add_special_tokens=False)["input_ids"])
    print(json.dumps({"prompt_tokens": prompt_len, "model_params": sum(p.numel() for p in model.parameters()), "torch_threads":
                      torch.get_num_threads(), "results": results, "ratio": round(ratio, 2)}))
    return 0 if ratio >= 10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
