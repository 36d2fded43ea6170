"""Multi-teacher view: training instances (question, K rationales, gold answer) from the store.

An :class:`Instance` holds one question and one rationale per teacher, in a fixed teacher order (the
order given, else the generate config's). Which rationales make it in is decided by two settings:

``policy`` -- what to do with a MISSING (no row) or UNPARSEABLE (no final answer line, empty) rationale:

* ``drop_question`` (default): the question is dropped unless every teacher has a parseable rationale,
  so every instance has exactly K branches.
* ``drop_teacher``: only the bad branches are dropped; instances may have fewer than K branches
  (a question with no branch left is dropped).
* ``keep``: unparseable rationales are kept and trained on; a missing row cannot be, so that branch is
  dropped as in ``drop_teacher``.

``correctness_filter`` -- by the stated final answer checked against the gold answer (what one can do
with real teachers too; the simulated ground-truth step labels are never used to select data):

* ``none`` (default, COMPACT's own setting: the method must cope with wrong rationales),
* ``any_correct``: keep a question only if at least one branch is correct,
* ``all_correct``: keep a question only if every branch is correct,
* ``correct_only``: drop the incorrect branches (a question with none left is dropped).

``labels`` carry each branch's ``final_correct`` / ``steps_correct`` / ``n_errors`` for analysis.

Every reader of instances from a file (``compact train`` with ``data.instances``, ``compact score`` with
``input.path``, :func:`instances_from_dataset`) goes through ONE validator, :func:`read_instance_rows`:
a question and a gold answer that are non-empty strings, a known ``answer_type`` whose gold answer is of
that type (a number for ``number``), a non-empty list of non-blank rationales, one distinct teacher name
per rationale, and ids that do not repeat. The first violation is a :class:`DataError` naming the file,
the line (or row), the record and the field.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Iterable

from ..data.answers import canonical, is_correct
from ..data.records import ANSWER_TYPES
from ..errors import ConfigError, DataError
from .store import RationaleStore, check_row

POLICIES = ("drop_question", "drop_teacher", "keep")
FILTERS = ("none", "any_correct", "all_correct", "correct_only")


@dataclasses.dataclass
class Instance:
    """One training instance: a question with K teacher rationales (teacher order fixed)."""

    id: str
    question: str
    answer: str
    answer_type: str
    source: str
    rationales: list[str]
    teachers: list[str]
    labels: list[dict[str, Any]]

    def to_row(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["labels"] = json.dumps(self.labels, sort_keys=True)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Instance":
        labels = row.get("labels") or "[]"
        return cls(id=row["id"], question=row["question"], answer=row["answer"], answer_type=row["answer_type"],
                   source=row["source"], rationales=list(row["rationales"]), teachers=list(row["teachers"]),
                   labels=json.loads(labels) if isinstance(labels, str) else list(labels))


def build_instances(store: RationaleStore | str | Path, split: str, teachers: list[str] | None = None,
                    policy: str = "drop_question", correctness_filter: str = "none",
                    sample: int = 0) -> list[Instance]:
    """Training instances for store key ``split`` (``"<dataset>-<split>"``, e.g. ``"arith-train"``).

    ``teachers`` defaults to every teacher stored for that key; ``sample`` picks which of each teacher's
    samples forms the branch.
    """
    if policy not in POLICIES:
        raise ConfigError(f"unknown policy {policy!r} (known: {', '.join(POLICIES)})")
    if correctness_filter not in FILTERS:
        raise ConfigError(f"unknown correctness_filter {correctness_filter!r} (known: {', '.join(FILTERS)})")
    store = store if isinstance(store, RationaleStore) else RationaleStore(store)
    questions = store.questions(split)
    available = store.teachers(split)
    teachers = list(teachers) if teachers is not None else available
    if not teachers:
        raise ConfigError(f"no teachers stored for {split} in {store.root}")
    unknown = [t for t in teachers if t not in available]
    if unknown:
        raise ConfigError(f"unknown teacher {unknown[0]!r} for {split} (stored: {', '.join(available) or 'none'})")
    by_teacher: dict[str, dict[str, dict[str, Any]]] = {}
    for t in teachers:
        where = str(store.teacher_dir(split, t))
        rows: dict[str, dict[str, Any]] = {}
        for i, row in enumerate(store.load(split, t)):
            row = check_row(row, where, i)
            if row["sample"] == sample:
                rows[row["id"]] = row
        by_teacher[t] = rows

    out = []
    for q in questions:
        branches = []
        bad = False
        for t in teachers:
            row = by_teacher[t].get(q.id)
            if row is None:
                bad = True
                continue
            usable = row["parse_ok"] and row["rationale"].strip()
            if not usable:
                bad = True
                if policy != "keep":
                    continue
            correct = is_correct(row["extracted"], q.answer, q.answer_type)
            branches.append((t, row, correct))
        if policy == "drop_question" and bad:
            continue
        if correctness_filter == "any_correct" and not any(c for _, _, c in branches):
            continue
        if correctness_filter == "all_correct" and not (branches and all(c for _, _, c in branches)
                                                        and len(branches) == len(teachers)):
            continue
        if correctness_filter == "correct_only":
            branches = [b for b in branches if b[2]]
        if not branches:
            continue
        out.append(Instance(
            id=q.id, question=q.question, answer=q.answer, answer_type=q.answer_type, source=q.source,
            rationales=[r["rationale"] for _, r, _ in branches], teachers=[t for t, _, _ in branches],
            labels=[{"final_correct": c, "parse_ok": bool(r["parse_ok"]), "steps_correct": r.get("steps_correct"),
                     "n_errors": r.get("n_errors"), "extracted": r["extracted"]} for _, r, c in branches]))
    return out


def instances_to_dataset(instances: list[Instance]):
    """A ``datasets.Dataset`` of instances (``rationales``/``teachers`` as string lists, labels JSON)."""
    import datasets  # local: heavy import (Arrow): only where a datasets folder is read or written

    features = datasets.Features({
        "id": datasets.Value("string"), "question": datasets.Value("string"), "answer": datasets.Value("string"),
        "answer_type": datasets.Value("string"), "source": datasets.Value("string"),
        "rationales": datasets.Sequence(datasets.Value("string")),
        "teachers": datasets.Sequence(datasets.Value("string")), "labels": datasets.Value("string"),
    })
    return datasets.Dataset.from_list([i.to_row() for i in instances], features=features)


def _as_list(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") and not isinstance(value, (str, bytes)) else value


def instance_from_row(row: Any, *, where: str, index: int, id_required: bool = True,
                      default_answer_type: str = "number", default_source: str = "instances",
                      default_teachers: bool = False) -> Instance:
    """Validate one instance row (a mapping with :class:`Instance`'s fields) and build the Instance.

    ``where`` locates the row ("<file>, line 57"); ``index`` is its position (the id when ``id`` may be
    left out). ``answer_type`` "" means "unknown" (no correctness check anywhere).
    """
    if not isinstance(row, dict):
        raise DataError(f"record number {index + 1}: expected a JSON object, got {type(row).__name__}", path=where)
    rid = row.get("id")
    if rid is None and not id_required:
        rid = str(index)
    if isinstance(rid, int) and not isinstance(rid, bool):
        rid = str(rid)
    if not isinstance(rid, str) or not rid.strip():
        raise DataError(f"missing or empty id in record number {index + 1} (a non-empty string)", path=where,
                        field="id")

    def bad(message: str, field: str) -> DataError:
        return DataError(message, path=where, record=rid, field=field)

    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise bad("missing or empty question (a non-blank string)", "question")
    answer = row.get("answer")
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        answer = str(answer)
    if not isinstance(answer, str) or not answer.strip():
        raise bad("missing or empty gold answer", "answer")
    atype = row.get("answer_type", default_answer_type)
    if atype is None:
        atype = default_answer_type
    if not isinstance(atype, str) or (atype and atype not in ANSWER_TYPES):
        raise bad(f"unknown answer_type {atype!r} (known: {', '.join(ANSWER_TYPES)})", "answer_type")
    if atype and canonical(answer, atype) is None:
        raise bad(f"gold answer {answer!r} is not a valid {atype!r} answer", "answer")
    rats = _as_list(row.get("rationales"))
    if not isinstance(rats, (list, tuple)) or not rats:
        raise bad("expected a non-empty list of rationales", "rationales")
    for k, r in enumerate(rats):
        if not isinstance(r, str):
            raise bad(f"expected a string, got {type(r).__name__}", f"rationales[{k}]")
        if not r.strip():
            raise bad("empty or blank rationale", f"rationales[{k}]")
    teachers = _as_list(row.get("teachers"))
    if teachers is None and default_teachers:
        teachers = [f"teacher{k}" for k in range(len(rats))]
    if not isinstance(teachers, (list, tuple)) or len(teachers) != len(rats):
        raise bad(f"expected {len(rats)} teacher names (one per rationale)", "teachers")
    for k, t in enumerate(teachers):
        if not isinstance(t, str) or not t.strip():
            raise bad("expected a non-empty teacher name", f"teachers[{k}]")
    dup = [t for k, t in enumerate(teachers) if t in teachers[:k]]
    if dup:
        raise bad(f"teacher {dup[0]!r} appears twice", "teachers")
    labels = row.get("labels")
    if isinstance(labels, str):
        try:
            labels = json.loads(labels)
        except json.JSONDecodeError:
            raise bad("not valid JSON", "labels") from None
    labels = _as_list(labels)
    if labels is None or labels == []:
        labels = [{} for _ in teachers]
    if not isinstance(labels, list) or len(labels) != len(teachers) or not all(isinstance(x, dict) for x in labels):
        raise bad(f"expected {len(teachers)} label objects (one per rationale)", "labels")
    source = row.get("source") or default_source
    if not isinstance(source, str):
        raise bad("expected a string", "source")
    return Instance(id=rid, question=question, answer=answer, answer_type=atype, source=source,
                    rationales=list(rats), teachers=list(teachers), labels=list(labels))


def read_instance_rows(rows: Iterable[tuple[str, Any]], *, path: str, **options: Any) -> list[Instance]:
    """Validate ``(location, row)`` pairs into Instances (location: "line 57", or "" when the record id is
    enough); ids must not repeat. ``options`` go to :func:`instance_from_row`. Errors name ``path``, the
    location, the record and the field."""
    out: list[Instance] = []
    first: dict[str, str] = {}
    for index, (loc, row) in enumerate(rows):
        where = f"{path}, {loc}" if loc else path
        inst = instance_from_row(row, where=where, index=index, **options)
        if inst.id in first:
            raise DataError(f"duplicate id: {loc or f'row {index}'} repeats {first[inst.id]}", path=where,
                            record=inst.id, field="id")
        first[inst.id] = loc or f"row {index}"
        out.append(inst)
    return out


def check_instances(instances: Iterable[Instance], *, path: str = "instances") -> list[Instance]:
    """Validate in-memory Instances with the same rules as the file readers."""
    return read_instance_rows((("", dataclasses.asdict(inst)) for inst in instances), path=path)


def instances_from_dataset(ds, *, path: str | None = None) -> list[Instance]:
    return read_instance_rows((("", dict(row)) for row in ds), path=path or "dataset")


def disagreement(store: RationaleStore, split: str, teachers: list[str] | None = None, sample: int = 0) -> float:
    """Share of questions on which the teachers' stated final answers are not all equal (None counts)."""
    teachers = teachers or store.teachers(split)
    questions = store.questions(split)
    answers: dict[str, list[Any]] = {q.id: [] for q in questions}
    for t in teachers:
        for row in store.load(split, t):
            if row["sample"] == sample and row["id"] in answers:
                answers[row["id"]].append(row["extracted"])
    n = sum(1 for q in questions if len(set(map(str, answers[q.id]))) > 1)
    return n / max(len(questions), 1)


def summarize(store: RationaleStore) -> list[dict[str, Any]]:
    """Per (key, teacher): rows, accuracy, parse rate, steps-correct rate; plus each key's disagreement."""
    out = []
    for key in store.keys():
        teachers = store.teachers(key)
        dis = disagreement(store, key, teachers) if len(teachers) > 1 else 0.0
        for t in teachers:
            stats = store.manifest(key, t).get("stats", {})
            out.append({"key": key, "teacher": t, "rows": stats.get("n_rows"), "accuracy": stats.get("accuracy"),
                        "parse_rate": stats.get("parse_rate"), "steps_correct": stats.get("steps_correct_rate"),
                        "disagreement": dis})
    return out


__all__ = ["Instance", "build_instances", "instances_to_dataset", "instances_from_dataset", "disagreement",
           "summarize", "POLICIES", "FILTERS", "instance_from_row", "read_instance_rows", "check_instances"]
