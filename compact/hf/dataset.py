"""The multi-teacher rationale store as a Hugging Face ``datasets.DatasetDict``: one row per question.

Schema (every split; :data:`FEATURES`)::

    id             string                     the question's id in the store
    prompt         [{role, content}]          the prompt as chat messages (here one user turn: the question)
    completions    [[{role, content}]]        K conversational completions, one per teacher (an assistant turn each)
    teachers       [string]                   the teacher of each completion (K names, distinct)
    answer         string                     the gold answer
    answer_type    string                     number | mcq | yesno | text | "" (unknown)
    source         string                     the task or benchmark the question comes from
    correct        [bool | null]              per completion: its stated final answer equals the gold answer
    steps_correct  [bool | null]              per completion: every written step is right (simulated teachers'
                                              ground truth; null where nobody checked, e.g. real teachers)
    extracted      [string | null]            per completion: the final answer the teacher stated (null: none)

The prompt and each completion follow TRL's *conversational prompt-completion* convention
(``prompt + completions[k]`` is the k-th branch's conversation), so a row is K SFT examples that share a
prompt. Store keys ``<dataset>-<split>`` are concatenated per split in the store's key order (``train``;
``dev`` becomes ``validation``; ``test``), so the ``train`` split of the world store lists the questions in the
order ``compact train`` reads them. The folder holds the ``DatasetDict`` (``save_to_disk``: read it with
``datasets.load_from_disk``), a dataset card ``README.md`` (schema, splits, teachers with their accuracy,
provenance) and ``manifest.json``.

    compact export --format dataset --generate configs/generate/world.yaml --out artifacts/datasets/world
    python -c "import datasets; print(datasets.load_from_disk('artifacts/datasets/world'))"

Publishing: :func:`push_to_hub` pushes the splits (``DatasetDict.push_to_hub``) and then the card, keeping the
metadata the Hub wrote; :class:`compact.hf.trainer.CompactTrainer` / :class:`compact.hf.sft.CompactSFTTrainer`
train on exactly this format (:func:`rows_to_instances` reads and checks it).
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import ArtifactError, ConfigError, DataError
from ..log import get_logger
from ..teachers.view import POLICIES, Instance, build_instances, instance_from_row

log = get_logger("hf.dataset")

#: store split suffix -> DatasetDict split name (the Hub's conventional names)
SPLIT_NAMES = {"train": "train", "dev": "validation", "validation": "validation", "test": "test"}
#: the columns of a row, in order
COLUMNS = ("id", "prompt", "completions", "teachers", "answer", "answer_type", "source", "correct", "steps_correct",
           "extracted")
#: methods that train on one completion per question (the others need at least two)
SINGLE_BRANCH_METHODS = ("single",)


def features():
    """The ``datasets.Features`` of a row (a Python list ``[x]`` is a list feature that keeps lists of dicts)."""
    import datasets  # local: heavy import (Arrow)

    message = {"role": datasets.Value("string"), "content": datasets.Value("string")}
    return datasets.Features({
        "id": datasets.Value("string"),
        "prompt": [message],
        "completions": [[message]],
        "teachers": [datasets.Value("string")],
        "answer": datasets.Value("string"),
        "answer_type": datasets.Value("string"),
        "source": datasets.Value("string"),
        "correct": [datasets.Value("bool")],
        "steps_correct": [datasets.Value("bool")],
        "extracted": [datasets.Value("string")],
    })


# ----------------------------------------------------------------------------------------------- writing
def _label(labels: Sequence[dict], k: int, key: str) -> Any:
    return labels[k].get(key) if k < len(labels) and isinstance(labels[k], dict) else None


def instance_row(inst: Instance) -> dict[str, Any]:
    """One :class:`Instance` as a row of :func:`features`."""
    k = len(inst.rationales)
    labels = list(inst.labels or [])
    extracted = [_label(labels, i, "extracted") for i in range(k)]
    return {
        "id": inst.id,
        "prompt": [{"role": "user", "content": inst.question}],
        "completions": [[{"role": "assistant", "content": r}] for r in inst.rationales],
        "teachers": list(inst.teachers),
        "answer": inst.answer,
        "answer_type": inst.answer_type,
        "source": inst.source,
        "correct": [None if (v := _label(labels, i, "final_correct")) is None else bool(v) for i in range(k)],
        "steps_correct": [None if (v := _label(labels, i, "steps_correct")) is None else bool(v) for i in range(k)],
        "extracted": [None if v is None else str(v) for v in extracted],
    }


def instances_dataset(instances: Sequence[Instance]):
    """A ``datasets.Dataset`` of :func:`features` from instances (one row each, in order)."""
    import datasets

    return datasets.Dataset.from_list([instance_row(i) for i in instances], features=features())


def split_of(key: str) -> str:
    """The DatasetDict split a store key ``<dataset>-<split>`` goes to (``dev`` -> ``validation``)."""
    suffix = key.rsplit("-", 1)[-1] if "-" in key else key
    name = SPLIT_NAMES.get(suffix, suffix)
    if not re.fullmatch(r"\w+(\.\w+)*", name):
        raise ConfigError(f"store key {key!r}: split {name!r} is not a valid dataset split name")
    return name


@dataclasses.dataclass
class Export:
    """What :func:`store_dataset` read: the splits' instances and what the card says about them."""
    splits: dict[str, list[Instance]]
    keys: dict[str, list[str]]               # split -> store keys, in order
    teachers: list[str]
    stats: list[dict[str, Any]]              # per (key, teacher): accuracy, parse rate, rows
    store: Path
    index: dict[str, Any]                    # the store's store.json
    options: dict[str, Any]                  # policy, correctness filter, limit


def store_dataset(store: str | Path, *, keys: Sequence[str] | None = None, teachers: Sequence[str] | None = None,
                  policy: str = "drop_question", correctness_filter: str = "none", limit: int = 0) -> Export:
    """Read a rationale store's instances, grouped into DatasetDict splits (see the module docstring)."""
    from ..teachers.store import RationaleStore

    rs = RationaleStore(store)
    if not rs.root.is_dir():
        raise ArtifactError(f"rationale store not found: {rs.root}")
    index = json.loads((rs.root / "store.json").read_text()) if (rs.root / "store.json").is_file() else {}
    stored = rs.keys()
    order = [k for k in index.get("keys", []) if k in stored] + [k for k in stored if k not in index.get("keys", [])]
    if keys:
        unknown = [k for k in keys if k not in stored]
        if unknown:
            raise ConfigError(f"store key {unknown[0]!r} is not in {rs.root} (stored: {', '.join(order) or 'none'})")
        order = list(keys)
    if not order:
        raise ArtifactError(f"rationale store {rs.root} holds no questions")
    if policy not in POLICIES:
        raise ConfigError(f"unknown policy {policy!r} (known: {', '.join(POLICIES)})")
    splits: dict[str, list[Instance]] = {}
    split_keys: dict[str, list[str]] = {}
    names: list[str] = []
    stats = []
    for key in order:
        insts = build_instances(rs, key, list(teachers) if teachers else None, policy, correctness_filter)
        insts = insts[:limit] if limit else insts
        split = split_of(key)
        splits.setdefault(split, []).extend(insts)
        split_keys.setdefault(split, []).append(key)
        for t in (list(teachers) if teachers else rs.teachers(key)):
            if t not in names:
                names.append(t)
            s = rs.manifest(key, t).get("stats", {})
            stats.append({"key": key, "teacher": t, "rows": s.get("n_rows"), "accuracy": s.get("accuracy"),
                          "parse_rate": s.get("parse_rate"), "steps_correct": s.get("steps_correct_rate")})
    return Export(splits=splits, keys=split_keys, teachers=names, stats=stats, store=rs.root, index=index,
                  options={"policy": policy, "correctness_filter": correctness_filter, "limit": limit})


def dataset_dict(export: Export):
    """The :class:`Export`'s splits as a ``datasets.DatasetDict`` of :func:`features`."""
    import datasets

    return datasets.DatasetDict({name: instances_dataset(insts) for name, insts in export.splits.items()})


def _fmt(x: Any) -> str:
    return "" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def dataset_card(export: Export, *, name: str, provenance: dict[str, Any], command: str = "") -> str:
    """The dataset card (``README.md``): YAML metadata, schema, splits, teachers, provenance, how to use."""
    cfg = export.index.get("config", {})
    specs = {t.get("name"): t for t in cfg.get("teachers", [])}
    simulated = all(specs.get(t, {}).get("backend") == "simulated" for t in export.teachers)
    n_rows = sum(len(v) for v in export.splits.values())
    size = ("n<1K" if n_rows < 1000 else "1K<n<10K" if n_rows < 10_000 else "10K<n<100K" if n_rows < 100_000
            else "100K<n<1M")
    meta = ["---", f"pretty_name: {json.dumps(name)}",
            # simulated teachers: text written by this package (Apache-2.0); real teachers: their models' terms
            f"license: {'apache-2.0' if simulated else 'other'}", "language: [en]",
            "task_categories: [text-generation, question-answering]",
            ("tags: [compact, multi-teacher, chain-of-thought, distillation, reasoning"
             + (", synthetic" if simulated else "") + "]"), f"size_categories: [{size}]", "---", ""]
    out = meta + [f"# {name}", "",
                  ("Multi-teacher chain-of-thought rationales written by `compact export --format dataset` from a "
                   f"COMPACT rationale store: one row per question, with the completions of {len(export.teachers)} "
                   "teachers for it. Train on it with COMPACT (`compact.hf.CompactSFTTrainer`, TRL) or read "
                   "it as K supervised examples per question."), ""]
    if not simulated:
        out += [("**License.** The completions were written by the teacher models below; their use follows those "
                 "models' terms (set `license:` above accordingly before publishing)."), ""]
    out += ["## Loading", "", "```python", "import datasets",
            "ds = datasets.load_from_disk('<this folder>')        # or datasets.load_dataset('<user>/<repo>')",
            "row = ds['train'][0]",
            "branch_0 = row['prompt'] + row['completions'][0]      # the first teacher's conversation",
            "```", "", "## Schema", "", "| column | type | meaning |", "|---|---|---|",
            "| `id` | string | the question's id in the store |",
            "| `prompt` | list of `{role, content}` | the prompt as chat messages (one user turn) |",
            "| `completions` | list (K) of lists of `{role, content}` | each teacher's answer as an assistant turn |",
            "| `teachers` | list (K) of string | the teacher of each completion, in the same order |",
            "| `answer` | string | the gold answer |",
            "| `answer_type` | string | `number`, `mcq`, `yesno`, `text` or empty (unknown) |",
            "| `source` | string | the task or benchmark of the question |",
            "| `correct` | list (K) of bool or null | the completion's stated final answer equals the gold answer |",
            ("| `steps_correct` | list (K) of bool or null | every written step is right (simulated teachers' "
             "ground truth; null where unchecked) |"),
            "| `extracted` | list (K) of string or null | the final answer the completion states |", "",
            "## Splits", "", "| split | questions | store keys |", "|---|---|---|"]
    for split, insts in export.splits.items():
        out.append(f"| {split} | {len(insts)} | {', '.join(export.keys[split])} |")
    out += ["", f"Selection: policy `{export.options['policy']}` (unusable rationales), correctness filter "
                f"`{export.options['correctness_filter']}`"
                + (f", first {export.options['limit']} questions per key" if export.options["limit"] else "") + ".",
            "", "## Teachers", "", "| teacher | backend | model | stands for |", "|---|---|---|---|"]
    for t in export.teachers:
        s = specs.get(t, {})
        out.append(f"| {t} | {s.get('backend', '')} | {s.get('model', '') or ''} | {s.get('paper_name', '') or ''} |")
    out += ["", "Per store key (as generated, before selection):", "",
            "| key | teacher | rows | accuracy | parse rate | steps correct |", "|---|---|---|---|---|---|"]
    for r in export.stats:
        out.append(f"| {r['key']} | {r['teacher']} | {_fmt(r['rows'])} | {_fmt(r['accuracy'])} | "
                   f"{_fmt(r['parse_rate'])} | {_fmt(r['steps_correct'])} |")
    git = provenance.get("git", {})
    packages = provenance.get("packages", {})
    out += ["", "## Provenance", "",
            f"- rationale store: `{export.store.name}` (generate config hash `{export.index.get('config_hash', '')}`)",
            f"- questions: {json.dumps(cfg.get('inputs', {}), sort_keys=True)}",
            (f"- written {provenance.get('created', '')} by compact {packages.get('compact') or ''} at commit "
             f"`{git.get('commit') or 'unknown'}`" + (" (uncommitted changes)" if git.get("dirty") else "")),
            "- packages: " + ", ".join(f"{k} {v}" for k, v in packages.items() if v)]
    if command:
        out.append(f"- command: `{command}`")
    out += ["", "The full generate config (teachers, sampling, seeds) is in `manifest.json` beside this card.", "",
            "## Training with COMPACT", "", "```python",
            "from compact.hf import CompactSFTConfig, CompactSFTTrainer   # pip install 'compact[trl]'",
            "args = CompactSFTConfig(output_dir='out', method='compact', per_device_train_batch_size=2,",
            "                        gradient_accumulation_steps=4)     # batch sizes count questions (K branches each)",
            "trainer = CompactSFTTrainer(model='<student>', args=args, train_dataset=ds['train'])",
            "trainer.train()", "```", ""]
    return "\n".join(out)


def export_store(store: str | Path, out: str | Path, *, keys: Sequence[str] | None = None,
                 teachers: Sequence[str] | None = None, policy: str = "drop_question",
                 correctness_filter: str = "none", limit: int = 0, name: str | None = None,
                 command: str = "", overwrite: bool = False) -> Path:
    """Write the store as a DatasetDict folder with its card and manifest (atomically: all or nothing)."""
    from ..provenance import atomic_dir, is_complete, manifest, write_json

    exp = store_dataset(store, keys=keys, teachers=teachers, policy=policy, correctness_filter=correctness_filter,
                        limit=limit)
    empty = [s for s, v in exp.splits.items() if not v]
    if empty:
        raise DataError(f"split {empty[0]!r} has no question left after selection (policy {policy!r}, "
                        f"correctness filter {correctness_filter!r})", path=str(exp.store))
    out = Path(out)
    if is_complete(out) and not overwrite:
        raise ArtifactError(f"{out} already holds an export (use --force to replace it)")
    dd = dataset_dict(exp)
    prov = manifest(None, kind="hub-dataset", extra={
        "store": str(exp.store), "store_config_hash": exp.index.get("config_hash"), "keys": exp.keys,
        "teachers": exp.teachers, "options": exp.options, "rows": {s: len(v) for s, v in exp.splits.items()},
        "generate_config": exp.index.get("config"), "command": command or None})
    title = name or f"COMPACT multi-teacher rationales ({exp.store.name})"
    with atomic_dir(out, overwrite=True) as tmp:
        dd.save_to_disk(str(tmp))
        (tmp / "README.md").write_text(dataset_card(exp, name=title, provenance=prov, command=command))
        write_json(tmp / "manifest.json", prov)
    log.info("exported %s -> %s", {s: len(v) for s, v in exp.splits.items()}, out)
    return out


# ----------------------------------------------------------------------------------------------- reading
def _messages(value: Any, *, where: str, rid: str, column: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        return [{"role": "user" if column == "prompt" else "assistant", "content": value}]
    if not isinstance(value, (list, tuple)) or not value:
        raise DataError("expected a non-empty list of chat messages ({role, content}) or a string", path=where,
                        record=rid, field=column)
    out = []
    for j, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise DataError("expected a chat message {role, content} with string values", path=where, record=rid,
                            field=f"{column}[{j}]")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _as_list(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") and not isinstance(value, (str, bytes)) else value


def rows_to_instances(rows: Iterable[dict[str, Any]], *, where: str = "dataset", method: str = "compact"
                      ) -> tuple[list[Instance], list[list[dict[str, str]]]]:
    """Check rows of :func:`features` (or the same columns from elsewhere) and return (instances, prompts).

    The first bad row is a :class:`DataError` naming ``where``, the row and the column: completions and teachers
    of different lengths, fewer than two completions under a multi-teacher ``method``, a completion that is not
    one assistant turn, a prompt that does not end with a user turn, then everything
    :func:`compact.teachers.view.instance_from_row` checks (non-blank texts, distinct teachers, a gold answer of
    its type, unique ids).
    """
    instances: list[Instance] = []
    prompts: list[list[dict[str, str]]] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        at = f"{where}, row {i}"
        if not isinstance(row, dict):
            raise DataError(f"expected a mapping, got {type(row).__name__}", path=at)
        rid = row.get("id")
        rid = str(rid) if rid is not None and str(rid).strip() else str(i)
        missing = [c for c in ("prompt", "completions", "teachers", "answer") if c not in row]
        if missing:
            raise DataError(f"missing column '{missing[0]}' (a multi-teacher row has prompt, completions, teachers, "
                            "answer)", path=at, record=rid)
        prompt = _messages(row["prompt"], where=at, rid=rid, column="prompt")
        if prompt[-1]["role"] != "user":
            raise DataError(f"the prompt must end with a user turn, not {prompt[-1]['role']!r}", path=at, record=rid,
                            field="prompt")
        comps = _as_list(row["completions"])
        teachers = _as_list(row["teachers"])
        if not isinstance(comps, (list, tuple)) or not isinstance(teachers, (list, tuple)):
            raise DataError("completions and teachers must be lists", path=at, record=rid, field="completions")
        if len(comps) != len(teachers):
            raise DataError(f"{len(comps)} completions but {len(teachers)} teacher names (one per completion)",
                            path=at, record=rid, field="teachers")
        if method not in SINGLE_BRANCH_METHODS and len(comps) < 2:
            raise DataError(f"{len(comps)} completion(s), but method {method!r} weighs several teachers' "
                            "completions of each question: it needs at least 2", path=at, record=rid,
                            field="completions")
        texts = []
        for k, c in enumerate(comps):
            msgs = _messages(c, where=at, rid=rid, column=f"completions[{k}]")
            if len(msgs) != 1 or msgs[0]["role"] != "assistant":
                raise DataError("a completion must be one assistant turn", path=at, record=rid,
                                field=f"completions[{k}]")
            texts.append(msgs[0]["content"])
        labels = []
        for k in range(len(comps)):
            label: dict[str, Any] = {}
            for col, key in (("correct", "final_correct"), ("steps_correct", "steps_correct"),
                             ("extracted", "extracted")):
                vals = _as_list(row.get(col))
                if vals is not None and (not isinstance(vals, (list, tuple)) or len(vals) != len(comps)):
                    raise DataError(f"expected {len(comps)} values (one per completion) or none", path=at,
                                    record=rid, field=col)
                if vals is not None and vals[k] is not None:
                    label[key] = vals[k]
            labels.append(label)
        inst = instance_from_row({"id": rid, "question": prompt[-1]["content"], "answer": row["answer"],
                                  "answer_type": row.get("answer_type") or "", "source": row.get("source") or "dataset",
                                  "rationales": texts, "teachers": teachers, "labels": labels},
                                 where=at, index=i, id_required=False, default_answer_type="")
        if inst.id in seen:
            raise DataError(f"duplicate id: row {i} repeats row {seen[inst.id]}", path=at, record=inst.id, field="id")
        seen[inst.id] = i
        instances.append(inst)
        prompts.append(prompt)
    return instances, prompts


# ---------------------------------------------------------------------------------------------- the Hub
def _front_matter(text: str) -> tuple[dict[str, Any], str]:
    import yaml

    if text.startswith("---"):
        parts = text.split("\n---", 1)
        if len(parts) == 2:
            head = parts[0][3:]
            body = parts[1].split("\n", 1)[1] if "\n" in parts[1] else ""
            return (yaml.safe_load(head) or {}), body
    return {}, text


def merge_card(hub_readme: str, ours: str) -> str:
    """Our card's body and metadata over the card the Hub wrote on ``push_to_hub`` (its ``dataset_info`` and
    ``configs``, which loading from the Hub reads, are kept)."""
    import yaml

    hub_meta, _ = _front_matter(hub_readme)
    our_meta, body = _front_matter(ours)
    meta = {**hub_meta, **{k: v for k, v in our_meta.items() if k not in ("dataset_info", "configs")}}
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n" + body


def push_to_hub(folder: str | Path, repo_id: str, **kwargs: Any) -> None:
    """Push an export: the splits with ``DatasetDict.push_to_hub(repo_id, **kwargs)``, then its card."""
    import datasets
    from huggingface_hub import HfApi, hf_hub_download

    folder = Path(folder)
    datasets.load_from_disk(str(folder)).push_to_hub(repo_id, **kwargs)
    token = kwargs.get("token")
    hub = Path(hf_hub_download(repo_id, "README.md", repo_type="dataset", token=token)).read_text()
    card = merge_card(hub, (folder / "README.md").read_text())
    HfApi(token=token).upload_file(path_or_fileobj=card.encode(), path_in_repo="README.md", repo_id=repo_id,
                                   repo_type="dataset", commit_message="COMPACT dataset card")


__all__ = ["COLUMNS", "SPLIT_NAMES", "Export", "dataset_card", "dataset_dict", "export_store", "features", "instance_row",
           "instances_dataset", "merge_card", "push_to_hub", "rows_to_instances", "split_of", "store_dataset"]
