"""The rationale store: per (dataset split, teacher) a ``datasets`` Dataset on disk, with provenance.

Layout (``root`` = ``artifacts/rationales/<generate-config-hash>``)::

    root/store.json                          which (dataset-split, teacher) pairs the config asked for
    root/<dataset>-<split>/questions/        the questions (compact.data.records columns) + manifest.json
    root/<dataset>-<split>/<teacher>/        the rationales (Dataset.save_to_disk) + manifest.json
    root/<dataset>-<split>/.<teacher>.shards/  work in progress: job.json + shard-00000.jsonl, ...

Rows (one per question and sample, in question order): ``id``, ``sample``, ``teacher``, ``rationale``,
``extracted`` (strict answer, or None), ``parse_ok``, ``final_correct`` (extracted == gold),
``steps_correct`` and ``n_errors`` (simulated ground truth; None for real teachers), ``meta`` (JSON: the
backend's per-generation info) and ``provenance`` (JSON: teacher id, backend, model, revision, sampling
params, seed, prompt-template hash).

Generation is resumable and idempotent: questions are cut into shards of ``shard_size``; each shard is
written atomically (temp file + rename) as soon as it is generated, so a killed run loses at most the
shard in flight and a rerun validates and keeps the finished shards and generates only the missing
ones. When all shards exist the Dataset is assembled in a temporary directory and renamed into place
(:func:`compact.provenance.atomic_dir`); a complete teacher directory is never regenerated. Anything on
disk that was produced by a different job (config, inputs, teacher, sampling) is an
:class:`ArtifactError` naming the file, the record and the field; nothing is overwritten.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Iterator

from ..config import config_hash, to_dict
from ..data.answers import extract_strict, is_correct
from ..data.records import Example, from_dataset, iter_jsonl, to_dataset
from ..errors import ArtifactError, DataError
from ..log import get_logger
from ..provenance import (
    atomic_dir,
    atomic_write_text,
    is_complete,
    manifest,
    read_manifest,
    tree_fingerprint,
    write_json,
)
from .base import Generation, SamplingParams, provenance_of
from .prompts import template_hash

log = get_logger("teachers.store")

STORE_FORMAT = 1
ROW_COLUMNS = ("id", "sample", "teacher", "rationale", "extracted", "parse_ok", "final_correct",
               "steps_correct", "n_errors", "meta", "provenance")


def row_features():
    import datasets  # local: heavy import (Arrow): only where a datasets folder is read or written

    return datasets.Features({
        "id": datasets.Value("string"), "sample": datasets.Value("int32"), "teacher": datasets.Value("string"),
        "rationale": datasets.Value("string"), "extracted": datasets.Value("string"),
        "parse_ok": datasets.Value("bool"), "final_correct": datasets.Value("bool"),
        "steps_correct": datasets.Value("bool"), "n_errors": datasets.Value("int32"),
        "meta": datasets.Value("string"), "provenance": datasets.Value("string"),
    })


def inputs_fingerprint(examples: list[Example]) -> str:
    """A hash of the questions (ids, text, gold answers, meta) a job generates for."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps(ex.to_row(), sort_keys=True).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def row_provenance(teacher: Any, params: SamplingParams) -> str:
    """The provenance JSON stored on every row of a teacher's output."""
    info = provenance_of(teacher)
    prov = {"teacher": info.get("teacher"), "backend": info.get("backend"), "model": info.get("model"),
            "revision": info.get("revision", ""), "sampling": params.to_dict(), "seed": params.seed,
            "prompt_template": info.get("prompt_template", template_hash())}
    extra = {k: v for k, v in info.items() if k not in prov}
    if extra:
        prov["backend_config"] = extra
    return json.dumps(prov, sort_keys=True, default=str)


def make_row(ex: Example, teacher: str, sample: int, gen: Generation, provenance: str) -> dict[str, Any]:
    """One stored row; the strict extractor decides ``parse_ok`` and the checker ``final_correct``."""
    if not isinstance(gen, Generation) or not isinstance(gen.text, str):
        raise DataError(f"teacher {teacher!r} returned a non-string rationale ({type(getattr(gen, 'text', gen)).__name__})",
                        record=ex.id, field="rationale")
    extracted = extract_strict(gen.text, ex.answer_type)
    meta = dict(gen.meta or {})
    steps_correct = meta.pop("steps_correct", None)
    n_errors = meta.pop("n_errors", None)
    meta.pop("final_correct", None)  # recomputed below from the text, identical for simulated teachers
    return {
        "id": ex.id, "sample": sample, "teacher": teacher, "rationale": gen.text, "extracted": extracted,
        "parse_ok": extracted is not None, "final_correct": is_correct(extracted, ex.answer, ex.answer_type),
        "steps_correct": None if steps_correct is None else bool(steps_correct),
        "n_errors": None if n_errors is None else int(n_errors),
        "meta": json.dumps(meta, sort_keys=True, default=str), "provenance": provenance,
    }


def check_row(row: Any, where: str, index: int) -> dict[str, Any]:
    """Validate one stored row's schema; errors name the file, the record and the field."""
    if not isinstance(row, dict):
        raise DataError("expected a JSON object", path=where, record=index)
    rid = row.get("id", index)
    for name, types in (("id", str), ("sample", int), ("teacher", str), ("rationale", str),
                        ("parse_ok", bool), ("final_correct", bool), ("provenance", str)):
        if name not in row:
            raise DataError("missing field", path=where, record=rid, field=name)
        if not isinstance(row[name], types) or (types is int and isinstance(row[name], bool)):
            raise DataError(f"expected {types.__name__}, got {type(row[name]).__name__}", path=where, record=rid,
                            field=name)
    if not isinstance(row.get("extracted"), (str, type(None))):
        raise DataError("expected a string or null", path=where, record=rid, field="extracted")
    return row


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff_keys(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    return [] if a == b else [prefix or "<value>"]


class RationaleStore:
    """A store root; generation fills it, :mod:`compact.teachers.view` reads it."""
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RationaleStore({str(self.root)!r})"

    # paths ---------------------------------------------------------------------------------------------
    @staticmethod
    def key(dataset: str, split: str) -> str:
        return f"{dataset}-{split}"

    def teacher_dir(self, key: str, teacher: str) -> Path:
        return self.root / key / teacher

    def shards_dir(self, key: str, teacher: str) -> Path:
        return self.root / key / f".{teacher}.shards"

    def questions_dir(self, key: str) -> Path:
        return self.root / key / "questions"

    # reading -------------------------------------------------------------------------------------------
    def keys(self) -> list[str]:
        """The (dataset-split) keys with stored questions."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if is_complete(p / "questions"))

    def teachers(self, key: str) -> list[str]:
        """Teachers with a complete dataset for ``key``, in the order the generate config lists them."""
        d = self.root / key
        if not d.is_dir():
            return []
        present = {p.name for p in d.iterdir() if p.name != "questions" and not p.name.startswith(".")
                   and is_complete(p)}
        order = []
        if (self.root / "store.json").is_file():
            order = [t for t in json.loads((self.root / "store.json").read_text()).get("teachers", [])]
        return [t for t in order if t in present] + sorted(present - set(order))

    def has(self, key: str, teacher: str) -> bool:
        return is_complete(self.teacher_dir(key, teacher))

    def load(self, key: str, teacher: str):
        """The teacher's rationale Dataset for ``key`` (rows in question order, samples consecutive)."""
        import datasets  # local: heavy import (Arrow): only where a datasets folder is read or written

        d = self.teacher_dir(key, teacher)
        if not is_complete(d):
            raise ArtifactError(f"no complete rationales for teacher {teacher!r} on {key}: {d}")
        return datasets.load_from_disk(str(d))

    def questions(self, key: str) -> list[Example]:
        import datasets  # local: heavy import (Arrow): only where a datasets folder is read or written

        d = self.questions_dir(key)
        if not is_complete(d):
            raise ArtifactError(f"no stored questions for {key}: {d}")
        return from_dataset(datasets.load_from_disk(str(d)), path=str(d))

    def manifest(self, key: str, teacher: str) -> dict[str, Any]:
        return read_manifest(self.teacher_dir(key, teacher))

    def fingerprint(self, keys: list[str] | tuple[str, ...], teachers: list[str] | None = None) -> str:
        """A content hash of the stored questions and rationales of ``keys`` (``teachers``, default: all
        stored): what a cache of anything computed from them is keyed by."""

        h = hashlib.sha256()
        for key in sorted(keys):
            names = ["questions", *(teachers if teachers is not None else self.teachers(key))]
            for name in names:
                d = self.root / key / name
                h.update(f"{key}/{name}:{tree_fingerprint(d) if is_complete(d) else 'missing'}\n".encode())
        return h.hexdigest()[:16]

    # writing -------------------------------------------------------------------------------------------
    def write_index(self, cfg: Any, teachers: list[str], keys: list[str]) -> None:
        """``store.json``: the generate config, teacher order and keys; must match an existing one."""
        path = self.root / "store.json"
        index = {"format": STORE_FORMAT, "config_hash": config_hash(cfg), "teachers": teachers, "keys": keys}
        if path.is_file():
            old = json.loads(path.read_text())
            diff = [k for k in ("format", "config_hash", "teachers", "keys") if old.get(k) != index.get(k)]
            if diff:
                raise ArtifactError(f"{path}: field '{diff[0]}' differs from this config "
                                    f"({old.get(diff[0])!r} != {index.get(diff[0])!r}); the store was produced by "
                                    "a different config -- use another store root or delete it")
            return
        write_json(path, dict(index, config=to_dict(cfg)))

    def put_questions(self, key: str, examples: list[Example]) -> Path:
        """Store the questions of ``key`` once; a stored set with other content is an error."""
        d = self.questions_dir(key)
        fp = inputs_fingerprint(examples)
        if is_complete(d):
            old = read_manifest(d).get("inputs_fingerprint")
            if old != fp:
                raise ArtifactError(f"{d / 'manifest.json'}: field 'inputs_fingerprint' is {old!r}, these questions "
                                    f"hash to {fp!r}; the store was produced from other questions")
            return d
        with atomic_dir(d) as tmp:
            to_dataset(examples).save_to_disk(str(tmp))
            write_json(tmp / "manifest.json", manifest(None, kind="rationale-questions", extra={
                "key": key, "n_questions": len(examples), "inputs_fingerprint": fp}))
        return d

    def fill(self, key: str, teacher: Any, examples: list[Example], params: SamplingParams, *,
             shard_size: int = 64, store_config_hash: str = "") -> Path:
        """Generate ``teacher``'s rationales for ``examples`` into the store (resumable, idempotent)."""
        params.validate()
        if shard_size < 1:
            raise ArtifactError("shard_size must be >= 1")
        prov = row_provenance(teacher, params)
        job = {"format": STORE_FORMAT, "store": store_config_hash, "key": key, "teacher": teacher.name,
               "provenance": json.loads(prov), "inputs_fingerprint": inputs_fingerprint(examples),
               "n_questions": len(examples), "shard_size": shard_size}
        job_hash = config_hash(job)
        final = self.teacher_dir(key, teacher.name)
        if is_complete(final):
            man = read_manifest(final)
            if man.get("config_hash") != job_hash:
                diff = _diff_keys(man.get("config", {}), job)
                raise ArtifactError(f"{final / 'manifest.json'}: field '{diff[0] if diff else 'config_hash'}' differs "
                                    "from this job; the rationales were produced by a different config -- use "
                                    "another store root or delete that directory")
            log.info("%s/%s: complete, nothing to generate", key, teacher.name)
            return final
        work = self.shards_dir(key, teacher.name)
        work.mkdir(parents=True, exist_ok=True)
        job_file = work / "job.json"
        if job_file.is_file():
            old = json.loads(job_file.read_text())
            diff = _diff_keys(old, job)
            if diff:
                raise ArtifactError(f"{job_file}: field '{diff[0]}' differs from this job; these partial shards "
                                    "were produced by a different config -- delete the folder to start over")
        else:
            write_json(job_file, job)
        n_shards = (len(examples) + shard_size - 1) // shard_size
        stray = sorted(p.name for p in work.glob("shard-*.jsonl") if int(p.stem.split("-")[1]) >= n_shards)
        if stray:
            raise ArtifactError(f"{work / stray[0]}: unexpected shard (this job has {n_shards})")
        done = 0
        for s in range(n_shards):
            chunk = examples[s * shard_size:(s + 1) * shard_size]
            path = work / f"shard-{s:05d}.jsonl"
            if path.is_file():
                self._check_shard(path, chunk, teacher.name, params.n, prov)
                done += 1
                continue
            gens = teacher.generate(chunk, params)
            if len(gens) != len(chunk) or any(len(g) != params.n for g in gens):
                raise DataError(f"teacher {teacher.name!r} returned {len(gens)} questions x "
                                f"{[len(g) for g in gens][:3]} samples for {len(chunk)} x {params.n}")
            rows = [make_row(ex, teacher.name, j, g, prov) for ex, gs in zip(chunk, gens) for j, g in enumerate(gs)]
            atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
        if done:
            log.info("%s/%s: resumed, %d of %d shards were already done", key, teacher.name, done, n_shards)
        return self._assemble(key, teacher.name, examples, params, job, job_hash, n_shards)

    def _check_shard(self, path: Path, chunk: list[Example], teacher: str, n: int, prov: str) -> list[dict]:
        rows = list(_read_shard(path))
        expected = [(ex.id, j) for ex in chunk for j in range(n)]
        for i, row in enumerate(rows):
            if i >= len(expected) or (row["id"], row["sample"]) != expected[i]:
                raise ArtifactError(f"{path}: record {row['id']} (sample {row['sample']}): field 'id' does not match "
                                    f"the questions of this shard (expected {expected[i] if i < len(expected) else 'end'})")
            if row["teacher"] != teacher:
                raise ArtifactError(f"{path}: record {row['id']}: field 'teacher' is {row['teacher']!r}, "
                                    f"expected {teacher!r}")
            if row["provenance"] != prov:
                diff = _diff_keys(json.loads(row["provenance"]), json.loads(prov))
                raise ArtifactError(f"{path}: record {row['id']}: field 'provenance.{diff[0] if diff else ''}' differs "
                                    "from this job; produced by a different config")
        if len(rows) != len(expected):
            raise ArtifactError(f"{path}: {len(rows)} rows, expected {len(expected)}")
        return rows

    def _assemble(self, key: str, teacher: str, examples: list[Example], params: SamplingParams,
                  job: dict, job_hash: str, n_shards: int) -> Path:
        import datasets  # local: heavy import (Arrow): only where a datasets folder is read or written

        work = self.shards_dir(key, teacher)
        rows: list[dict] = []
        for s in range(n_shards):
            rows += list(_read_shard(work / f"shard-{s:05d}.jsonl"))
        ids = [r["id"] for r in rows if r["sample"] == 0]
        if ids != [ex.id for ex in examples] or len(rows) != len(examples) * params.n:
            raise ArtifactError(f"{work}: shards do not cover the questions exactly once")
        ds = datasets.Dataset.from_list([{c: r.get(c) for c in ROW_COLUMNS} for r in rows], features=row_features())
        stats = _stats(rows)
        final = self.teacher_dir(key, teacher)
        with atomic_dir(final) as tmp:
            ds.save_to_disk(str(tmp))
            man = manifest(job, kind="rationales", extra={"key": key, "teacher": teacher, "n_rows": len(rows),
                                                          "stats": stats})
            assert man["config_hash"] == job_hash
            write_json(tmp / "manifest.json", man)
        shutil.rmtree(work, ignore_errors=True)
        log.info("%s/%s: %d rationales, accuracy %.3f, parse rate %.3f -> %s", key, teacher, len(rows),
                 stats["accuracy"], stats["parse_rate"], final)
        return final


def _read_shard(path: Path) -> Iterator[dict]:
    for i, row in iter_jsonl(path, allow_empty=True):
        yield check_row(row, str(path), i)


def _stats(rows: list[dict]) -> dict[str, Any]:
    n = max(len(rows), 1)
    labelled = [r for r in rows if r.get("steps_correct") is not None]
    return {
        "n_rows": len(rows),
        "accuracy": sum(bool(r["final_correct"]) for r in rows) / n,
        "parse_rate": sum(bool(r["parse_ok"]) for r in rows) / n,
        "steps_correct_rate": (sum(bool(r["steps_correct"]) for r in labelled) / len(labelled)) if labelled else None,
    }


__all__ = ["RationaleStore", "ROW_COLUMNS", "row_features", "make_row", "check_row", "row_provenance",
           "inputs_fingerprint", "STORE_FORMAT"]
