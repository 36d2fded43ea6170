"""World questions as files of a real benchmark's published schema.

A real-model run can then read world questions through the same benchmark adapter a user's GSM8K file goes
through (:mod:`compact.data.benchmarks`): the file is the bridge between the embedded world and the real-data
path. GSM8K rows are ``{"question": ..., "answer": "<solution lines>\\n#### <number>"}``; the solution lines
are the world's own gold steps, written the way GSM8K writes them (``a + b = <<a+b=c>>c``).

    compact export --world configs/world/default.yaml --task arith --split test --limit 40 \\
        --out data/world_arith_test.gsm8k.jsonl
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
    p.add_argument("--limit", type=int, default=0, help="first N questions (0 = all)")
    p.add_argument("--format", default="gsm8k", choices=("gsm8k",), help="the benchmark schema to write")
    p.add_argument("--out", required=True, help="output .jsonl")


def run(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise ConfigError("--limit must be >= 0")
    out = export_world(args.world, args.task, args.split, args.limit, args.out)
    print(out)
    return 0


__all__ = ["GSM8K_TASKS", "export_world", "gsm8k_lines", "gsm8k_row"]
