"""Trainer step benchmarks (figures for the report; never timed tests).

    .venv/bin/python benchmarks/bench_step.py [--world configs/world/default.yaml] [--repeats 5]
    # the paper's student shape (Qwen2.5-1.5B config, random weights), synthetic batches of L tokens, bf16 on a GPU
    python benchmarks/bench_step.py --shape qwen2.5-1.5b --length 2048 --device cuda --dtype bfloat16 --questions 8

(a) a COMPACT step vs a uniform multi-teacher SFT step on the same batch (target: <= 1.15x);
(b) B=8 questions per micro-step vs B=1 (the released design) on the world student (target: >= 3x
    questions per second);
(d) one micro-step on the whole forward (LM head everywhere), the head split (LM head only where the objective
    reads logits) and the head split with shared prompts (the default), on the default store's rationales;
(c) the forward on length buckets (``objective.forward_buckets=4``) vs one padded batch, on the default
    store's rationales when it is built (their lengths differ ~5x within a question), for uniform weights
    (rows bucket freely) and COMPACT (whole questions: the reference MI reads padding). Uses the world's student when the world is built (else a same-shaped random Qwen2)
    and toy instances of world-like length. Ratios are against the baseline measured in the same process.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compact.inputs.encode import collate, encode_instances  # noqa: E402
from compact.method.objective import ObjectiveConfig, compact_objective  # noqa: E402
from compact.trainer.tiny import tiny_student, toy_instances  # noqa: E402


def student(world_cfg: str | None):
    """(model, tokenizer, description): the built world's student, else a random tiny Qwen2."""
    from transformers import AutoModelForCausalLM

    from compact.inputs.model import load_tokenizer

    if world_cfg:
        from compact.config import load
        from compact.provenance import is_complete
        from compact.world.build import WorldConfig, world_path

        wc = load(WorldConfig, world_cfg)
        p = world_path(wc)
        if is_complete(p):
            sp = p / "student"
            tp = sp if (sp / "tokenizer_config.json").is_file() else p / "tokenizer"
            return AutoModelForCausalLM.from_pretrained(str(sp)), load_tokenizer(tp), f"world student {sp}"
    path = tiny_student(Path(tempfile.mkdtemp()) / "s", hidden=128, layers=4, heads=4, kv_heads=2, intermediate=512)
    return AutoModelForCausalLM.from_pretrained(str(path)), load_tokenizer(path), "random Qwen2 h128/L4"


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _once(model, batches, cfg) -> float:
    _sync()
    t = time.perf_counter()
    for b in batches:
        out = compact_objective(model, b, cfg)
        (out.loss * b.n_questions).backward()
    model.zero_grad(set_to_none=True)
    _sync()
    return time.perf_counter() - t


def compare(model, a, b, repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` seconds of two workloads (batches, cfg), interleaved so machine load hits both alike."""
    _once(model, *a), _once(model, *b)  # warm-up
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(_once(model, *a))
        tb.append(_once(model, *b))
    return min(ta), min(tb)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--world", default="configs/world/default.yaml")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--questions", type=int, default=16)
    # 1 thread: on the shared 2-core machine, 2 threads under load thrash (6x slower measured)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shape", default="world", choices=["world", "tiny", "qwen2.5-1.5b"],
                    help="world: the world's student on encoded instances; else a random student of that shape "
                         "(compact.trainer.fsdp_parity.SHAPES) on synthetic batches of --length tokens")
    ap.add_argument("--length", type=int, default=512, help="synthetic batches' padded length (--shape not world)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.shape != "world":
        return synthetic(args)
    model, tok, what = student(args.world)
    model.train()
    from compact.method.adaptability import thinking_token_ids

    teachers = ("t0", "t1", "t2", "t3")
    insts = toy_instances(args.questions, teachers=teachers)
    qs, _ = encode_instances(insts, tok, teachers=list(teachers), max_length=512)
    th = thinking_token_ids(tok)
    pad = tok.pad_token_id
    print(f"student: {what}; {len(qs)} questions x K={len(teachers)}; threads {torch.get_num_threads()}")

    full = [collate(qs[i:i + 8], pad_id=pad, thinking_ids=th) for i in range(0, len(qs), 8)]
    # one padded forward in both: (a) measures the objective's own overhead, not how each buckets (see (c))
    t_uni, t_cmp = compare(model, (full, ObjectiveConfig(weighting="uniform", consistency="none", forward_buckets=1)),
                           (full, ObjectiveConfig(weighting="compact", consistency="sequence", forward_buckets=1)),
                           args.repeats)
    print(f"(a) B=8: uniform step {t_uni * 1e3:.1f} ms, COMPACT step {t_cmp * 1e3:.1f} ms, "
          f"ratio {t_cmp / t_uni:.3f}x (target <= 1.15x)")

    one = [collate([q], pad_id=pad, thinking_ids=th) for q in qs]
    cfg = ObjectiveConfig()
    t1, t8 = compare(model, (one, cfg), (full, cfg), args.repeats)
    qps1, qps8 = len(qs) / t1, len(qs) / t8
    print(f"(b) COMPACT: B=1 {qps1:.1f} questions/s, B=8 {qps8:.1f} questions/s, speed-up {qps8 / qps1:.2f}x "
          f"(target >= 3x)")

    real = store_questions(tok, args.questions) or qs
    src = "default store" if real is not qs else "toy instances"
    rb = [collate(real[i:i + 8], pad_id=pad, thinking_ids=th) for i in range(0, len(real), 8)]
    from compact.method.objective import length_buckets

    real = sum(int(b.attention_mask.sum()) for b in rb)
    one = sum(b.attention_mask.numel() for b in rb)
    for label, by_question in (("rows (uniform weights)", False), ("whole questions (COMPACT's reference MI)", True)):
        bucketed = sum(len(rows) * w for b in rb
                       for rows, w in length_buckets(b.attention_mask, 4, b.group if by_question else None))
        print(f"(c) padding on the {src}, 4 length buckets of {label}: {1 - real / bucketed:.1%} of the computed "
              f"positions, against {1 - real / one:.1%} in one padded forward")
    for weighting in ("uniform", "compact"):
        t_one, t_b = compare(model, (rb, ObjectiveConfig(weighting=weighting, forward_buckets=1)),
                             (rb, ObjectiveConfig(weighting=weighting, forward_buckets=4)), args.repeats)
        print(f"(c) {weighting} on the {src}: one padded forward {t_one * 1e3:.1f} ms, 4 length buckets "
              f"{t_b * 1e3:.1f} ms, speed-up {t_one / t_b:.2f}x")
    step_paths(model, rb, src, args.repeats)
    return 0


def step_paths(model, batches, src: str, repeats: int) -> None:
    """(d) one training micro-step (objective + backward, 8 questions) on three implementations of the fast path,
    interleaved in this process: the whole forward with the LM head on every computed position ("dense", the
    path before the head split), the head applied only where the objective reads logits ("flat"), and flat with
    each question's prompt computed once for its branches ("shared", the default)."""
    import dataclasses

    from compact.method import objective

    split = objective.split_head

    def once(cfg, mode) -> float:
        objective.split_head = (lambda m: None) if mode == "dense" else split
        c = dataclasses.replace(cfg, share_prompts=mode == "shared")
        try:
            return _once(model, batches, c)
        finally:
            objective.split_head = split

    for name, cfg in (("COMPACT", ObjectiveConfig()),
                      ("uniform", ObjectiveConfig(weighting="uniform", consistency="none")),
                      ("COMPACT, 8 buckets", ObjectiveConfig(forward_buckets=8)),
                      ("uniform, 8 buckets", ObjectiveConfig(weighting="uniform", consistency="none", forward_buckets=8))):
        modes = ("dense", "flat", "shared")
        for m in modes:
            once(cfg, m)  # warm-up
        best = {m: min(once(cfg, m) for _ in range(repeats)) for m in modes}
        base = best["dense"] if "buckets" not in name else None
        per = {m: best[m] / len(batches) for m in modes}
        print(f"(d) {name} on the {src}, s per 8-question micro-step: " + ", ".join(
            f"{m} {per[m]:.3f}" + (f" ({best['dense'] / best[m]:.2f}x)" if base else "") for m in modes))


def synthetic(args) -> int:
    """(a) and (b) on a random student of ``args.shape`` with synthetic batches (K=4, ``args.length`` tokens)."""
    from compact.method.batch import synthetic_batch
    from compact.trainer.fsdp_parity import SHAPES, build, questions

    model = build(args.shape, 0, lora=False, device=args.device, dtype=getattr(torch, args.dtype))
    model.train()
    vocab, b = SHAPES[args.shape]["vocab_size"], min(8, args.questions)
    batch = synthetic_batch(b, 4, args.length, vocab, seed=0).to(args.device)
    print(f"student: random {args.shape} ({sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters), "
          f"{args.dtype} on {args.device}, attention {model.config._attn_implementation}; {b} questions x K=4 x L={args.length}; threads {torch.get_num_threads()}")
    full = [batch]
    t_uni, t_cmp = compare(model, (full, ObjectiveConfig(weighting="uniform", consistency="none", forward_buckets=1)),
                           (full, ObjectiveConfig(weighting="compact", consistency="sequence", forward_buckets=1)),
                           args.repeats)
    print(f"(a) B={b}: uniform step {t_uni * 1e3:.1f} ms, COMPACT step {t_cmp * 1e3:.1f} ms, "
          f"ratio {t_cmp / t_uni:.3f}x (target <= 1.15x)")
    one = [questions(batch, i, i + 1) for i in range(b)]
    cfg = ObjectiveConfig()
    t1, tb = compare(model, (one, cfg), (full, cfg), args.repeats)
    print(f"(b) COMPACT: B=1 {b / t1:.2f} questions/s, B={b} {b / tb:.2f} questions/s, speed-up {t1 / tb:.2f}x "
          f"(target >= 3x)")
    if args.device.startswith("cuda"):
        print(f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    return 0


def store_questions(tok, n: int):
    """The first ``n`` encoded questions of the default store (every ID train split in turn), or None."""
    from compact.config import load
    from compact.provenance import is_complete
    from compact.teachers.generate import GenerateConfig, store_root
    from compact.teachers.view import build_instances

    root = store_root(load(GenerateConfig, "configs/generate/world.yaml"))
    if not is_complete(root / "arith-train" / "questions"):
        return None
    insts = [i for key in ("arith-train", "variation-train", "symbolic-train")
             for i in build_instances(root, key)[: -(-n // 3)]][:n]
    if not insts:
        return None
    qs, _ = encode_instances(insts, tok, teachers=list(insts[0].teachers), max_length=512)
    return qs


if __name__ == "__main__":
    sys.exit(main())
