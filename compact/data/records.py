"""The common record every task uses, embedded world and real benchmarks alike.

A :class:`Example` is one question with its gold answer. World tasks also carry a structured
``solution`` (JSON in ``meta``) that simulated teachers turn into rationales; real benchmarks leave it
empty. Records round-trip through ``datasets`` (flat columns, ``meta`` as a JSON string).

World records carry their gold solution in ``meta`` (simulated teachers render and corrupt it):

    meta = {
      "task": "arith" | "variation" | "symbolic" | "mcq" | "yesno",
      "steps": [                              # in-distribution tasks: the gold computation, in order
        {"op": "+", "args": [12, 7], "refs": [null, null], "value": 19, "desc": "apples Tom has"},
        {"op": "*", "args": [19, 3], "refs": [0, null],    "value": 57, "desc": "apples in all"},
      ],                                      # refs[j] = index of the earlier step whose value is args[j]
      "distractors": ["Tom is 9 years old."], # variation task: facts irrelevant to the answer
      "facts": ["A robin is a bird.", ...],   # OOD tasks: the knowledge-base facts the answer rests on
    }

Ops are "+", "-", "*", "/" (exact integer division only). The last step's value is the answer.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal

from ..errors import DataError

AnswerType = Literal["number", "latex", "choice", "yesno"]
ANSWER_TYPES: tuple[str, ...] = ("number", "latex", "choice", "yesno")
SPLITS: tuple[str, ...] = ("train", "dev", "test")


@dataclasses.dataclass(frozen=True)
class Example:
    """One question: ``question`` already renders multiple-choice options; ``answer`` is canonical."""

    id: str
    question: str
    answer: str
    answer_type: str
    source: str
    split: str = "train"
    choices: tuple[str, ...] = ()
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["choices"] = list(self.choices)
        row["meta"] = json.dumps(self.meta, sort_keys=True)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any], *, path: str | None = None, index: int | None = None) -> "Example":
        rid = row.get("id", index)
        for name in ("id", "question", "answer", "answer_type", "source"):
            value = row.get(name)
            if not isinstance(value, str) or not value.strip():
                raise DataError("missing or empty string", path=path, record=rid, field=name)
        if row["answer_type"] not in ANSWER_TYPES:
            raise DataError(f"answer_type {row['answer_type']!r} not in {ANSWER_TYPES}", path=path, record=rid,
                            field="answer_type")
        meta = row.get("meta") or {}
        if isinstance(meta, str):
            try:
                meta = json.loads(meta)
            except json.JSONDecodeError:
                raise DataError("not valid JSON", path=path, record=rid, field="meta") from None
        return cls(id=row["id"], question=row["question"], answer=row["answer"], answer_type=row["answer_type"],
                   source=row["source"], split=row.get("split") or "train",
                   choices=tuple(row.get("choices") or ()), meta=meta)


def to_dataset(examples: list[Example]):
    """A ``datasets.Dataset`` with the record's flat columns."""
    import datasets

    features = datasets.Features({
        "id": datasets.Value("string"), "question": datasets.Value("string"),
        "answer": datasets.Value("string"), "answer_type": datasets.Value("string"),
        "source": datasets.Value("string"), "split": datasets.Value("string"),
        "choices": datasets.Sequence(datasets.Value("string")), "meta": datasets.Value("string"),
    })
    rows = [e.to_row() for e in examples]
    return datasets.Dataset.from_list(rows, features=features)


def from_dataset(ds, *, path: str | None = None) -> list[Example]:
    return [Example.from_row(row, path=path, index=i) for i, row in enumerate(ds)]


def write_jsonl(examples: list[Example], path) -> None:
    with open(path, "w") as fh:
        for e in examples:
            fh.write(json.dumps(e.to_row(), sort_keys=True) + "\n")


def iter_jsonl(path):
    """``(line index, row)`` for each non-blank line; invalid JSON is a DataError naming file and line."""
    with open(path) as fh:
        for i, line in enumerate(fh):
            if not line.strip():
                continue
            try:
                yield i, json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"invalid JSON ({exc.msg})", path=str(path), record=i) from None


def read_jsonl(path) -> list[Example]:
    return [Example.from_row(row, path=str(path), index=i) for i, row in iter_jsonl(path)]
