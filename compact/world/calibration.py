"""The world's calibration table: what the base student knows before any distillation, against gates.

A world is a scientific instrument only if its base student (1) knows its atomic skills, every
single-operation fact in the exact ``a op b = c`` form the rationales use, (2) knows the knowledge base
the OOD tasks rest on, measured as those tasks are scored (log-likelihood of the options; see
:mod:`compact.eval.loglik`), well above chance on balanced splits, and (3) cannot yet solve the in-distribution
tasks when it answers directly, so distillation has reasoning to teach. Each row reports the measured
value, its chance or majority baseline, the gate and whether it holds.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..data.answers import extract_strict, is_correct
from ..data.records import Example
from ..eval.decode import greedy_generate
from ..eval.loglik import probe_beliefs
from . import tasks as T
from .student import all_facts, generate


@dataclass(frozen=True)
class Gate:
    name: str
    what: str
    threshold: float
    at_least: bool  # value >= threshold (else value <= threshold)

    def holds(self, value: float) -> bool:
        return value >= self.threshold if self.at_least else value <= self.threshold


GATES: tuple[Gate, ...] = (
    Gate("facts", "single-operation facts, worst operation (greedy, `a op b =` -> c)", 0.95, True),
    Gate("yesno", "yes/no test split (50/50), log-likelihood of the facts it rests on", 0.80, True),
    Gate("mcq", "multiple-choice test split (5-way), log-likelihood of each option", 0.60, True),
    Gate("id_direct", "in-distribution test splits answered directly, best task (strict)", 0.20, False),
)


@torch.inference_mode()
def fact_accuracy(model, tokenizer, max_value: int, *, batch_size: int = 512) -> dict[str, Any]:
    """Greedy completion of every fact's ``a op b =``; correct when the next number is c (then a period)."""
    facts = all_facts(max_value)
    prompts = [tokenizer(f"{a} {op} {b} =", add_special_tokens=False)["input_ids"] for a, op, b, _ in facts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    right: Counter = Counter()
    total: Counter = Counter()
    wrong: list[str] = []
    for i in range(0, len(facts), batch_size):
        new, _ = greedy_generate(model, prompts[i:i + batch_size], pad_id=pad, eos_ids={tokenizer.eos_token_id},
                                 max_new_tokens=4)
        for (a, op, b, c), g in zip(facts[i:i + batch_size], new):
            text = tokenizer.decode(g, skip_special_tokens=True)
            ok = text.startswith(f" {c}") and not text[len(f" {c}"):][:1].isdigit()
            total[op] += 1
            right[op] += ok
            if not ok and len(wrong) < 12:
                wrong.append(f"{a} {op} {b} ={text}")
    per_op = {op: right[op] / total[op] for op in total}
    return {"per_op": per_op, "n": dict(total), "worst": min(per_op.values()), "mean": sum(right.values()) / len(facts),
            "examples_wrong": wrong}


def probe_accuracy(model, tokenizer, examples: Sequence[Example]) -> dict[str, Any]:
    """Accuracy of the verdicts the student's beliefs imply, with the split's majority baseline."""
    probes = [e.meta["probe"] for e in examples]
    beliefs = probe_beliefs(model, tokenizer, probes)
    right = 0
    for e, probe, b in zip(examples, probes, beliefs):
        verdict = T.probe_verdict(probe, b)
        gold = probe["gold"] if probe["rule"] == "choice" else int(e.answer == "yes")
        right += verdict == gold
    answers = Counter(e.answer for e in examples)
    n_options = len(examples[0].choices) if examples[0].choices else 2
    return {"accuracy": right / len(examples), "n": len(examples),
            "majority": max(answers.values()) / len(examples), "chance": 1 / n_options,
            "answer_shares": {k: v / len(examples) for k, v in sorted(answers.items())}}


def calibrate(model, tokenizer, data: dict[str, dict[str, list[Example]]], max_value: int, *,
              split: str = "test", id_max_new_tokens: int = 32) -> dict[str, Any]:
    """The calibration table of a built world's base student (``data``: task -> split -> records)."""
    model.eval()
    facts = fact_accuracy(model, tokenizer, max_value)
    ood = {t: probe_accuracy(model, tokenizer, data[t][split]) for t in T.OOD_TASKS}
    direct = {}
    for t in T.ID_TASKS:
        exs = data[t][split]
        outs = generate(model, tokenizer, [e.question for e in exs], max_new_tokens=id_max_new_tokens)
        direct[t] = sum(is_correct(extract_strict(o, e.answer_type), e.answer, e.answer_type)
                        for o, e in zip(outs, exs)) / len(exs)
    values = {"facts": facts["worst"], "yesno": ood["yesno"]["accuracy"], "mcq": ood["mcq"]["accuracy"],
              "id_direct": max(direct.values())}
    baselines = {"facts": 0.0, "yesno": ood["yesno"]["majority"], "mcq": ood["mcq"]["chance"], "id_direct": 0.0}
    rows = [{"gate": g.name, "what": g.what, "value": round(values[g.name], 4), "baseline": round(baselines[g.name], 4),
             "threshold": g.threshold, "direction": ">=" if g.at_least else "<=", "holds": g.holds(values[g.name])}
            for g in GATES]
    return {"split": split, "rows": rows, "calibrated": all(r["holds"] for r in rows), "facts": facts,
            "ood": ood, "id_direct": direct}


def failed_gates(table: dict[str, Any]) -> list[str]:
    """One line per failed gate: what was measured against what it must be."""
    return [f"calibration gate '{r['gate']}' failed: {r['value']:.3f} (needs {r['direction']} {r['threshold']}; "
            f"baseline {r['baseline']:.3f}): {r['what']}" for r in table.get("rows", []) if not r["holds"]]


def markdown(table: dict[str, Any]) -> str:
    """The table as Markdown (what the book's calibration page shows)."""
    lines = ["| gate | measured | baseline | needs | holds |", "|---|---|---|---|---|"]
    for r in table["rows"]:
        lines.append(f"| {r['what']} | {100 * r['value']:.1f}% | {100 * r['baseline']:.1f}% | "
                     f"{r['direction']} {100 * r['threshold']:.0f}% | {'yes' if r['holds'] else '**no**'} |")
    per_op = table["facts"]["per_op"]
    lines += ["", "Facts per operation: " + ", ".join(f"`{op}` {100 * v:.1f}% of {table['facts']['n'][op]}"
                                                      for op, v in per_op.items()),
              "In-distribution, answered directly: " + ", ".join(f"{t} {100 * v:.1f}%"
                                                                for t, v in table["id_direct"].items())]
    return "\n".join(lines) + "\n"


__all__ = ["GATES", "Gate", "calibrate", "fact_accuracy", "failed_gates", "markdown", "probe_accuracy"]
