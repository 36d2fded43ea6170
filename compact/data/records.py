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
            except (json.JSONDecodeError, RecursionError):
                raise DataError("not valid JSON", path=path, record=rid, field="meta") from None
        if not isinstance(meta, dict):
            raise DataError(f"expected a JSON object, got {type(meta).__name__}", path=path, record=rid, field="meta")
        choices = row.get("choices") or ()
        if isinstance(choices, str) or not isinstance(choices, (list, tuple)) \
                or not all(isinstance(c, str) and c.strip() for c in choices):
            raise DataError("expected a list of non-empty strings", path=path, record=rid, field="choices")
        split = row.get("split") or "train"
        if not isinstance(split, str):
            raise DataError(f"expected a string, got {type(split).__name__}", path=path, record=rid, field="split")
        return cls(id=row["id"], question=row["question"], answer=row["answer"], answer_type=row["answer_type"],
                   source=row["source"], split=split, choices=tuple(choices), meta=meta)


def to_dataset(examples: list[Example]):
    """A ``datasets.Dataset`` with the record's flat columns."""
    import datasets  # local: heavy import (Arrow): only where a datasets folder is read or written

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


def decode_utf8(data: bytes, path, *, line: int | None = None) -> str:
    """``data`` as text; bytes that are not UTF-8 are a DataError naming the file, the line and the column.

    ``line`` is the line number when ``data`` is one line of the file; otherwise the line is counted here.
    A leading byte-order mark is dropped.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        col = exc.start - data.rfind(b"\n", 0, exc.start)
        byte = f"byte 0x{data[exc.start]:02x}"
        if line is not None:
            raise DataError(f"not valid UTF-8 ({byte} at column {col}); save the file as UTF-8", path=str(path),
                            record=f"line {line}") from None
        at = 1 + data.count(b"\n", 0, exc.start)
        raise DataError(f"not valid UTF-8 ({byte} at line {at}, column {col}); save the file as UTF-8",
                        path=str(path)) from None
    return text[1:] if text.startswith("\ufeff") else text


def iter_jsonl(path, *, allow_empty: bool = False):
    """``(line index, row)`` for each non-blank line, each row a JSON object.

    Invalid JSON, bytes that are not UTF-8, a line that is not an object and a file without a single row
    (unless ``allow_empty``) are DataErrors naming the file and the line (counted from 1, as editors do; the
    yielded index counts from 0). The package's one JSONL reader.
    """
    n = 0
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise DataError("file not found", path=str(path)) from None
    except OSError as exc:  # a folder, no permission
        raise DataError(f"cannot read ({exc.strerror or type(exc).__name__})", path=str(path)) from None
    with fh:
        for i, raw in enumerate(fh):
            line = decode_utf8(raw, path, line=i + 1)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"invalid JSON ({exc.msg})", path=str(path), record=f"line {i + 1}") from None
            except RecursionError:
                raise DataError("JSON nested too deeply", path=str(path), record=f"line {i + 1}") from None
            if not isinstance(row, dict):
                raise DataError(f"expected a JSON object, got a JSON {_json_kind(row)}", path=str(path),
                                record=f"line {i + 1}")
            n += 1
            yield i, row
    if not n and not allow_empty:
        raise DataError("no records (the file is empty)", path=str(path))


def _json_kind(value) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def read_jsonl(path) -> list[Example]:
    """The records of a JSONL file; every problem is a DataError naming the file, the record and the field."""
    return [Example.from_row(row, path=str(path), index=i) for i, row in iter_jsonl(path)]
