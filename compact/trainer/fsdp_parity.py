"""FSDP2 parity check: the COMPACT objective on a ``fully_shard``-ed student equals one unsharded process.

Run under torchrun (gloo on CPU, NCCL on a GPU)::

    torchrun --nproc_per_node 2 -m compact.trainer.fsdp_parity --questions 4
    torchrun --nproc_per_node 1 -m compact.trainer.fsdp_parity --device cuda --dtype bfloat16 --shape qwen2.5-1.5b

Every rank builds the same seeded student twice. The first copy stays whole and evaluates the objective on ALL
questions of a synthetic batch (one process's view). The second copy is sharded with FSDP2 (each decoder layer,
then the root; parameters become DTensor shards), each rank evaluates its own block of questions, and backward
reduce-scatters the gradients. Then: the mean of the ranks' losses must equal the whole loss, every rank's alpha
(per branch) the whole run's alpha for its rows, and every gathered gradient the whole run's gradient. Consensus
and MI read the last layer's q/k projections and the LM head outside the wrapped forward, which is exactly what
sharding breaks unless they are gathered (:mod:`compact.method.shards`).

Prints one JSON line (rank 0): the largest differences, the number of sharded parameters, and ``ok``; the exit
status is non-zero when a difference exceeds its tolerance.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from transformers import Qwen2ForCausalLM

from ..inputs.model import small_qwen2, small_qwen2_config
from ..method.batch import Batch, synthetic_batch
from ..method.objective import ObjectiveConfig, compact_objective
from ..method.shards import is_sharded
from .loop import shard_fsdp2

# shapes: the tests' tiny student, and the paper's student (Qwen2.5-1.5B's config, random weights, no download)
SHAPES = {
    "tiny": dict(vocab_size=96, hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128),
    "qwen2.5-1.5b": dict(vocab_size=151936, hidden=1536, layers=28, heads=12, kv_heads=2, intermediate=8960),
}


def questions(batch: Batch, first: int, last: int) -> Batch:
    """The rows of questions ``first..last-1`` as a batch of its own (questions renumbered from 0)."""
    rows = ((batch.group >= first) & (batch.group < last)).nonzero().squeeze(1)
    return Batch(input_ids=batch.input_ids[rows], attention_mask=batch.attention_mask[rows],
                 assistant_start=batch.assistant_start[rows], group=batch.group[rows] - first,
                 teacher=batch.teacher[rows], gold_ids=batch.gold_ids[first:last],
                 gold_mask=batch.gold_mask[first:last], thinking_ids=batch.thinking_ids,
                 answer_span=None if batch.answer_span is None else batch.answer_span[rows])


def attention_backend(device: str) -> str:
    """flash-attention 2 on a GPU where the package is installed, else PyTorch's sdpa."""
    if str(device).startswith("cuda"):
        try:
            import flash_attn  # noqa: F401  (optional: only its presence is checked)
            return "flash_attention_2"
        except ImportError:
            pass
    return "sdpa"


def build(shape: str, seed: int, lora: bool, device: str = "cpu", dtype: torch.dtype = torch.float32) -> nn.Module:
    """A seeded random student of ``shape`` (initialised directly on ``device``; the big shape takes seconds there)."""
    cfg = dict(SHAPES[shape])
    vocab = cfg.pop("vocab_size")
    if shape == "tiny":
        model = small_qwen2(vocab, seed=seed, **cfg)
    else:  # the paper's student shape from its config, random weights
        torch.manual_seed(seed)
        config = small_qwen2_config(vocab, max_positions=4096, **cfg)
        config._attn_implementation = attention_backend(device)
        with torch.device(device):
            model = Qwen2ForCausalLM(config)
    model = model.to(device=device, dtype=dtype)
    if lora:
        from peft import LoraConfig, get_peft_model  # local: optional extra [lora]
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, init_lora_weights=False,
                                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    return model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m compact.trainer.fsdp_parity", description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    ap.add_argument("--questions", type=int, default=4, help="questions in the batch (a multiple of the ranks)")
    ap.add_argument("--k", type=int, default=4, help="teacher branches per question")
    ap.add_argument("--length", type=int, default=48, help="padded sequence length")
    ap.add_argument("--path", choices=["reference", "fast"], default="reference")
    ap.add_argument("--lora", action="store_true", help="wrap the student in LoRA adapters first")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--atol", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        device = torch.device("cuda", torch.cuda.current_device())
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.questions % world:
        raise SystemExit(f"--questions {args.questions} is not a multiple of the {world} ranks")
    dtype = getattr(torch, args.dtype)
    cfg = ObjectiveConfig(path=args.path)

    whole = build(args.shape, args.seed, args.lora, device=str(device), dtype=dtype)
    sharded = copy.deepcopy(whole)
    batch = synthetic_batch(args.questions, args.k, args.length, SHAPES[args.shape]["vocab_size"],
                            seed=args.seed).to(device)

    # one process's view: every question, unsharded
    whole.train()
    ref = compact_objective(whole, batch, cfg)
    ref.loss.backward()
    ref_grads = {n: p.grad.detach().float().clone() for n, p in whole.named_parameters() if p.grad is not None}

    # FSDP2: each decoder layer, then the root; this rank's block of questions
    shard_fsdp2(sharded, bf16=dtype == torch.bfloat16)  # the trainer's own sharding (accelerator.fsdp)
    n_sharded = sum(is_sharded(p) for p in sharded.parameters())
    per = args.questions // world
    mine = questions(batch, rank * per, (rank + 1) * per)
    sharded.train()
    out = compact_objective(sharded, mine, cfg)
    out.loss.backward()

    loss = out.loss.detach().float().clone()
    dist.all_reduce(loss)
    loss /= world
    rows = ((batch.group >= rank * per) & (batch.group < (rank + 1) * per)).nonzero().squeeze(1)
    d_alpha = (out.alpha.float() - ref.alpha.float()[rows]).abs().max()
    d_cons = (out.consensus.float() - ref.consensus.float()[rows]).abs().max()
    dist.all_reduce(d_alpha, op=dist.ReduceOp.MAX)
    dist.all_reduce(d_cons, op=dist.ReduceOp.MAX)
    d_grad, r_grad, missing = 0.0, 0.0, []
    for name, p in sharded.named_parameters():
        g = p.grad
        g = g.full_tensor() if g is not None and is_sharded(g) else g  # a collective: every rank, same order
        if name not in ref_grads or g is None:
            if (name in ref_grads) != (g is not None):
                missing.append(name)
            continue
        diff = (g.float() - ref_grads[name]).abs().max().item()
        d_grad = max(d_grad, diff)
        r_grad = max(r_grad, diff / max(ref_grads[name].abs().max().item(), 1e-12))
    d_loss = abs(loss.item() - ref.loss.item())
    ok = (n_sharded > 0 and not missing and d_loss <= args.atol and d_alpha.item() <= args.atol
          and d_grad <= args.atol)
    if rank == 0:
        print(json.dumps({"world_size": world, "device": str(device), "dtype": args.dtype, "shape": args.shape,
                          "path": args.path, "lora": args.lora, "questions": args.questions, "k": args.k,
                          "sharded_params": n_sharded, "loss": ref.loss.item(), "max_abs_loss": d_loss,
                          "max_abs_alpha": d_alpha.item(), "max_abs_consensus": d_cons.item(),
                          "max_abs_grad": d_grad, "max_rel_grad": r_grad, "missing_grads": missing, "ok": ok}))
        sys.stdout.flush()
    dist.destroy_process_group()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
