"""World questions as files of a real benchmark's published schema.

A real-model run can then read world questions through the same benchmark adapter a user's GSM8K file goes
through (:mod:`compact.data.benchmarks`): the file is the bridge between the embedded world and the real-data
path. GSM8K rows are ``{"question": ..., "answer": "<solution lines>\\n#### <number>"}``; the solution lines
are the world's own gold steps, written the way GSM8K writes them (``a + b = <<a+b=c>>c``).

    compact export --world configs/world/default.yaml --task arith --split test --limit 40 \\
        --out data/world_arith_test.gsm8k.jsonl

``--format dataset`` writes a rationale store instead, as a Hugging Face ``DatasetDict`` (one row per question:
the prompt as chat messages, the K teachers' completions, their names, the gold answer, correctness labels) with
a dataset card, ready for ``load_from_disk`` and ``push_to_hub`` (:mod:`compact.hf.dataset`):

    compact export --format dataset --generate configs/generate/world.yaml --out artifacts/datasets/world
    compact export --format dataset --store artifacts/rationales/<hash> --keys arith-train arith-dev --out DIR
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Iterable

from ..errors import ConfigError
from ..provenance import atomic_write_text
from .records import Example

#: world tasks whose gold is a number with arithmetic steps (GSM8K's shape)
GSM8K_TASKS = ("arith", "variation", "symbolic")


def gsm8k_row(ex: Example) -> dict[str, str]:
    """One world question in GSM8K's schema: the gold steps as calculator-annotated lines, then ``#### N``."""
    task = ex.meta.get("task", ex.source)
    if task not in GSM8K_TASKS:
        raise ConfigError(f"world task '{task}' has no GSM8K form (numeric tasks: {', '.join(GSM8K_TASKS)})")
    lines = []
    for step in ex.meta.get("steps", []):
        a, b = step["args"]
        expr = f"{a}{step['op']}{b}"
        lines.append(f"{a} {step['op']} {b} = <<{expr}={step['value']}>>{step['value']}")
    return {"question": ex.question, "answer": "\n".join([*lines, f"#### {ex.answer}"])}


def gsm8k_lines(examples: Iterable[Example]) -> list[str]:
    """The file's lines (one JSON object each, keys in GSM8K's order)."""
    return [json.dumps(gsm8k_row(ex), ensure_ascii=False) for ex in examples]


def export_world(world_config: str, task: str, split: str, limit: int, out: str | Path) -> Path:
    """Write the first ``limit`` questions (0 = all) of a world task's split as GSM8K rows to ``out``."""
    from ..world.build import world_from  # local: the world package builds on this one

    exs = world_from(world_config).examples(task, split)
    exs = exs[:limit] if limit else exs
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "\n".join(gsm8k_lines(exs)) + "\n")
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--world", default="configs/world/default.yaml", help="world config (built or reused)")
    p.add_argument("--task", default="arith", choices=GSM8K_TASKS, help="world task")
    p.add_argument("--split", default="test", choices=("train", "dev", "test"))
    p.add_argument("--limit", type=int, default=0, help="first N questions (per store key with --format dataset; 0 = all)")
    p.add_argument("--format", default="gsm8k", choices=("gsm8k", "dataset"),
                   help="gsm8k: world questions in GSM8K's schema (.jsonl); dataset: a rationale store as a Hugging "
                        "Face DatasetDict with a dataset card (a folder)")
    p.add_argument("--out", required=True, help="output .jsonl (gsm8k) or folder (dataset)")
    g = p.add_argument_group("--format dataset")
    g.add_argument("--generate", default=None, help="generate config whose rationale store is exported (built or reused)")
    g.add_argument("--store", default=None, help="or: a rationale store folder")
    g.add_argument("--keys", nargs="+", default=None, help="store keys <dataset>-<split> (default: all of them)")
    g.add_argument("--teachers", nargs="+", default=None, help="teachers, in this order (default: all of them)")
    g.add_argument("--policy", default="drop_question", help="unusable rationales: drop_question | drop_teacher | keep")
    g.add_argument("--correctness-filter", default="none", help="none | any_correct | all_correct | correct_only")
    g.add_argument("--name", default=None, help="the dataset card's title")
    g.add_argument("--force", action="store_true", help="replace an earlier export in --out")


def _command(args: argparse.Namespace) -> str:
    parts = ["compact export --format dataset"]
    for flag, value in (("--generate", args.generate), ("--store", args.store), ("--out", args.out),
                        ("--keys", args.keys), ("--teachers", args.teachers), ("--limit", args.limit or None)):
        if value:
            parts.append(f"{flag} {' '.join(value) if isinstance(value, list) else value}")
    for flag, value, default in (("--policy", args.policy, "drop_question"),
                                 ("--correctness-filter", args.correctness_filter, "none")):
        if value != default:
            parts.append(f"{flag} {value}")
    return " ".join(parts)


def run(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise ConfigError("--limit must be >= 0")
    if args.format == "dataset":
        # local: the datasets writer is not needed for GSM8K files
        from ..hf.dataset import export_store

        if (args.generate is None) == (args.store is None):
            raise ConfigError("--format dataset needs one of --generate (a generate config) or --store (a store folder)")
        if args.generate is not None:
            from ..teachers.generate import generate_store, load_config

            store = generate_store(load_config(args.generate))
        else:
            from ..paths import resolve

            store = resolve(args.store)
        out = export_store(store, args.out, keys=args.keys, teachers=args.teachers, policy=args.policy,
                           correctness_filter=args.correctness_filter, limit=args.limit, name=args.name,
                           command=_command(args), overwrite=args.force)
        print(out)
        return 0
    out = export_world(args.world, args.task, args.split, args.limit, args.out)
    print(out)
    return 0


__all__ = ["GSM8K_TASKS", "export_world", "gsm8k_lines", "gsm8k_row"]
