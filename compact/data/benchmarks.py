r"""Real benchmark adapters: GSM8K, MATH-500, SVAMP, CommonsenseQA, StrategyQA -> :class:`Example`.

Each adapter reads one benchmark in its published schema (from the Hugging Face hub through
``datasets``, or from a local json / jsonl / parquet file or a ``save_to_disk`` folder of the same
schema) and normalises every row to the common record: ``id``, ``question`` (multiple-choice options
rendered into the text), canonical gold ``answer``, ``answer_type`` and ``source``.

==============  ===========================  =========  ==========  =====================================
name            default hub id               config     type        gold answer
==============  ===========================  =========  ==========  =====================================
gsm8k           openai/gsm8k                 main       number      text after ``####`` in ``answer``
math500         HuggingFaceH4/MATH-500       -          latex       ``answer`` (else last ``\boxed{}``)
svamp           ChilleD/SVAMP                -          number      ``Answer`` (float) -> canonical
commonsense_qa  tau/commonsense_qa           -          choice      ``answerKey`` (A-E)
strategyqa      ChilleD/StrategyQA           -          yesno       ``answer`` (bool) -> yes / no
==============  ===========================  =========  ==========  =====================================
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import DataError
from ..paths import resolve
from .answers import last_boxed, normalize_number
from .records import Example, decode_utf8, iter_jsonl

LOCAL_SUFFIXES = (".json", ".jsonl", ".parquet")


@dataclasses.dataclass(frozen=True)
class BenchmarkInfo:
    name: str
    hub_id: str
    config: str | None
    default_split: str
    answer_type: str
    adapter: Callable[[dict[str, Any], str, int], Example]


@dataclasses.dataclass
class BenchmarkSpec:
    """Which benchmark to read and from where (a hub id or a local file of the published schema)."""

    name: str = "gsm8k"
    path: str = ""          # hub id or local file/folder; "" = the benchmark's default hub id
    config: str = ""        # hub config name; "" = the benchmark's default (GSM8K: "main")
    split: str = ""         # "" = the benchmark's default evaluation split
    limit: int = 0          # keep the first N rows (0 = all); for smoke runs

    def validate(self) -> None:
        if self.name not in BENCHMARKS:
            raise ValueError(f"unknown benchmark {self.name!r} (known: {', '.join(BENCHMARKS)})")
        if self.limit < 0:
            raise ValueError("limit must be >= 0")

    @property
    def info(self) -> BenchmarkInfo:
        return BENCHMARKS[self.name]

    @property
    def resolved_split(self) -> str:
        return self.split or self.info.default_split


# ---------------------------------------------------------------------------------------------------------
# field helpers: every error names the file, the record and the field

def _field(row: dict[str, Any], name: str, where: str, rid: Any, types=(str,)) -> Any:
    if name not in row or row[name] is None:
        raise DataError("missing field", path=where, record=rid, field=name)
    value = row[name]
    if not isinstance(value, types):
        raise DataError(f"expected {'/'.join(t.__name__ for t in types)}, got {type(value).__name__}",
                        path=where, record=rid, field=name)
    if isinstance(value, str) and not value.strip():
        raise DataError("empty string", path=where, record=rid, field=name)
    return value


def _number(text: Any, where: str, rid: Any, field: str) -> str:
    if isinstance(text, bool):
        raise DataError("expected a number, got a boolean", path=where, record=rid, field=field)
    out = normalize_number(str(text))
    if out is None:
        raise DataError(f"not a number: {str(text)[:40]!r}", path=where, record=rid, field=field)
    return out


def render_choices(question: str, labels: Iterable[str], texts: Iterable[str]) -> str:
    """The question with its options on one line: ``... Answer choices: (A) x (B) y``."""
    opts = " ".join(f"({lab}) {txt}" for lab, txt in zip(labels, texts))
    return f"{question.strip()}\nAnswer choices: {opts}"


# ---------------------------------------------------------------------------------------------------------
# adapters: (raw row, file or hub id, row index) -> Example

def _gsm8k(row: dict[str, Any], where: str, i: int) -> Example:
    question = _field(row, "question", where, i)
    solution = _field(row, "answer", where, i)
    if "####" not in solution:
        raise DataError("no '#### <answer>' line in the solution", path=where, record=i, field="answer")
    gold = _number(solution.rsplit("####", 1)[1].strip(), where, i, "answer")
    return Example(id=f"gsm8k-{i}", question=question.strip(), answer=gold, answer_type="number",
                   source="gsm8k", meta={"solution": solution})


def _math500(row: dict[str, Any], where: str, i: int) -> Example:
    problem = _field(row, "problem", where, i)
    rid = row.get("unique_id") or f"math500-{i}"
    answer = row.get("answer")
    if not isinstance(answer, str) or not answer.strip():
        solution = row.get("solution")
        answer = last_boxed(solution) if isinstance(solution, str) else None
        if not answer:
            raise DataError("no 'answer' and no \\boxed{} in 'solution'", path=where, record=rid, field="answer")
    meta = {k: row[k] for k in ("subject", "level", "solution") if row.get(k) is not None}
    return Example(id=str(rid), question=problem.strip(), answer=answer.strip(), answer_type="latex",
                   source="math500", meta=meta)


def _svamp(row: dict[str, Any], where: str, i: int) -> Example:
    rid = row.get("ID") or row.get("id") or f"svamp-{i}"
    if row.get("question_concat"):
        question = _field(row, "question_concat", where, rid)
    else:
        body = _field(row, "Body", where, rid)
        ask = _field(row, "Question", where, rid)
        body = body.strip()
        question = f"{body}{'' if body.endswith(('.', '?', '!')) else '.'} {ask.strip()}"
    answer = _field(row, "Answer", where, rid, types=(int, float, str))
    meta = {k: row[k] for k in ("Equation", "Type") if row.get(k) is not None}
    return Example(id=str(rid), question=question.strip(), answer=_number(answer, where, rid, "Answer"),
                   answer_type="number", source="svamp", meta=meta)


def _commonsense_qa(row: dict[str, Any], where: str, i: int) -> Example:
    rid = row.get("id") or f"csqa-{i}"
    question = _field(row, "question", where, rid)
    choices = _field(row, "choices", where, rid, types=(dict,))
    labels, texts = choices.get("label"), choices.get("text")
    if not isinstance(labels, list) or not isinstance(texts, list) or len(labels) != len(texts) or not labels:
        raise DataError("expected {'label': [...], 'text': [...]} of equal length", path=where, record=rid,
                        field="choices")
    for name, values in (("label", labels), ("text", texts)):
        for k, v in enumerate(values):
            if not isinstance(v, str) or not v.strip():
                raise DataError(f"expected a non-empty string, got {type(v).__name__} {repr(v)[:40]}", path=where,
                                record=rid, field=f"choices.{name}[{k}]")
    if len(set(labels)) != len(labels):
        raise DataError(f"labels repeat: {labels}", path=where, record=rid, field="choices.label")
    key = row.get("answerKey")
    if not isinstance(key, str) or key.strip().upper() not in labels:
        raise DataError(f"answerKey {key!r} is not one of {labels} (the test split is unlabelled)",
                        path=where, record=rid, field="answerKey")
    meta = {"question_concept": row["question_concept"]} if row.get("question_concept") else {}
    return Example(id=str(rid), question=render_choices(question, labels, texts), answer=key.strip().upper(),
                   answer_type="choice", source="commonsense_qa", choices=tuple(texts), meta=meta)


def _strategyqa(row: dict[str, Any], where: str, i: int) -> Example:
    rid = row.get("qid") or row.get("id") or f"strategyqa-{i}"
    question = _field(row, "question", where, rid)
    answer = row.get("answer")
    if isinstance(answer, bool):
        gold = "yes" if answer else "no"
    elif isinstance(answer, str) and answer.strip().lower() in ("yes", "no", "true", "false"):
        gold = "yes" if answer.strip().lower() in ("yes", "true") else "no"
    else:
        raise DataError(f"expected a boolean or yes/no, got {answer!r}", path=where, record=rid, field="answer")
    facts = row.get("facts")
    if isinstance(facts, str):
        facts = [f.strip() for f in facts.split("\n") if f.strip()]
    meta = {"facts": list(facts)} if isinstance(facts, list) and facts else {}
    return Example(id=str(rid), question=question.strip(), answer=gold, answer_type="yesno",
                   source="strategyqa", meta=meta)


BENCHMARKS: dict[str, BenchmarkInfo] = {
    "gsm8k": BenchmarkInfo("gsm8k", "openai/gsm8k", "main", "test", "number", _gsm8k),
    "math500": BenchmarkInfo("math500", "HuggingFaceH4/MATH-500", None, "test", "latex", _math500),
    "svamp": BenchmarkInfo("svamp", "ChilleD/SVAMP", None, "test", "number", _svamp),
    "commonsense_qa": BenchmarkInfo("commonsense_qa", "tau/commonsense_qa", None, "validation", "choice",
                                    _commonsense_qa),
    "strategyqa": BenchmarkInfo("strategyqa", "ChilleD/StrategyQA", None, "test", "yesno", _strategyqa),
}


# ---------------------------------------------------------------------------------------------------------
# reading

def _is_local(path: str) -> bool:
    return path.endswith(LOCAL_SUFFIXES) or path.startswith(("/", ".", "~")) or resolve(path).exists()


def read_local_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a local json (list, or ``{"data": [...]}``), jsonl, parquet file or ``save_to_disk`` folder."""
    p = resolve(path)
    if not p.exists():
        raise DataError("file not found", path=str(p))
    if p.is_dir():
        import datasets  # local: heavy import (Arrow): only where a datasets folder is read or written

        try:
            ds = datasets.load_from_disk(str(p))
        except Exception as exc:  # not a datasets folder
            raise DataError(f"not a datasets folder ({type(exc).__name__})", path=str(p)) from None
        if isinstance(ds, datasets.DatasetDict):
            raise DataError(f"holds several splits {list(ds)}; point at one split's folder", path=str(p))
        return list(ds)
    if p.suffix == ".parquet":
        import pyarrow.parquet as pq  # local: comes with datasets: only for parquet files

        try:
            return pq.read_table(str(p)).to_pylist()
        except Exception as exc:
            raise DataError(f"unreadable parquet ({type(exc).__name__})", path=str(p)) from None
    if p.suffix == ".jsonl":
        return [row for _, row in iter_jsonl(p)]
    try:
        text = decode_utf8(p.read_bytes(), p)
    except OSError as exc:
        raise DataError(f"cannot read ({exc.strerror or type(exc).__name__})", path=str(p)) from None
    if p.suffix == ".json" and not text.lstrip().startswith(("[", "{\"data\"")):  # JSON Lines named .json
        return [row for _, row in iter_jsonl(p)]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON ({exc.msg} at line {exc.lineno})", path=str(p)) from None
    except RecursionError:
        raise DataError("JSON nested too deeply", path=str(p)) from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError("expected a list of JSON objects", path=str(p))
    if not data:
        raise DataError("no records (an empty list)", path=str(p))
    return data


def _hub_rows(hub_id: str, config: str | None, split: str) -> list[dict[str, Any]]:
    import datasets  # local: heavy import (Arrow): only where a datasets folder is read or written

    try:
        ds = datasets.load_dataset(hub_id, config, split=split)
    except Exception as exc:  # offline, unknown id, unknown split
        raise DataError(f"cannot load {hub_id} (config {config}, split {split}): {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}", path=hub_id) from None
    return list(ds)


def load_benchmark(spec: BenchmarkSpec) -> list[Example]:
    """Read ``spec`` and normalise every row; the record ids are unique within the result."""
    info = spec.info
    split = spec.resolved_split
    if spec.path and _is_local(spec.path):
        where = str(resolve(spec.path))
        rows = read_local_rows(spec.path)
    else:
        where = spec.path or info.hub_id
        rows = _hub_rows(where, spec.config or info.config, split)
    if not rows:
        raise DataError(f"no records in split {split!r}", path=where)
    if spec.limit:
        rows = rows[:spec.limit]
    out, seen = [], set()
    for i, row in enumerate(rows):
        ex = info.adapter(row, where, i)
        if ex.id in seen:
            raise DataError("duplicate id", path=where, record=ex.id, field="id")
        seen.add(ex.id)
        out.append(dataclasses.replace(ex, split=split))
    return out


__all__ = ["BenchmarkSpec", "BenchmarkInfo", "BENCHMARKS", "load_benchmark", "read_local_rows", "render_choices"]
