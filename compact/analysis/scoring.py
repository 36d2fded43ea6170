r"""The scoring tool: COMPACT's teacher weights for any multi-teacher rationale set, without training.

    compact score --config configs/score/world.yaml                       # the rationale store, world student
    compact score --config configs/score/file.yaml --set input.path=my.jsonl --set student=<HF folder>

Input: the store (via :func:`compact.teachers.view.build_instances`) or a user's json / jsonl / parquet file
with ``question``, ``rationales`` (list of strings), ``answer`` and optional ``id``, ``teachers``,
``answer_type``. Each question's K rationales go through ONE student forward pass (no gradients) and the
same objective core as training (:func:`compact.method.objective.objective_from_outputs`), giving per branch the
raw scores :math:`M_k, C_k, L_k`, the fused :math:`S_k` and :math:`\alpha_k = \mathrm{softmax}(S/\tau)_k`.

Output (one row per (instance, teacher)): ``weight`` (= alpha), ``alpha``, ``mi``, ``consensus``,
``difficulty``, ``fused``, ``low_consensus`` (consensus below the ``low_consensus_quantile`` of all rows,
or, with ``low_consensus_z`` set, a z-score below ``-low_consensus_z``), the labels when the input has
them, as a ``datasets`` folder (``save_to_disk``) plus ``scores.parquet`` / ``scores.jsonl`` and a manifest:
a data audit or a filter (keep rows with high weight) usable without training.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..config import add_config_arguments, config_hash, load, save_yaml
from ..data.answers import extract_strict, is_correct
from ..data.benchmarks import read_local_rows
from ..data.records import iter_jsonl
from ..errors import ArtifactError, ConfigError, DataError
from ..inputs.encode import collate, encode_instances
from ..inputs.model import load_model, load_tokenizer, model_fingerprint
from ..inputs.packaged import PREFIX as PACKAGED_PREFIX, cached_folder
from ..log import get_logger, progress
from ..method.adaptability import thinking_token_ids
from ..method.hsic import token_answer_hsic
from ..method.objective import (
    ObjectiveConfig,
    lm_head_weight,
    objective_from_outputs,
    projections_for,
)
from ..paths import artifacts_dir, resolve
from ..provenance import (
    MANIFEST,
    atomic_dir,
    is_complete,
    manifest,
    read_manifest,
    storage_guard,
    tree_fingerprint,
    write_json,
)
from ..teachers.generate import GenerateConfig, generate_store, store_root
from ..teachers.store import RationaleStore
from ..teachers.view import POLICIES, build_instances, read_instance_rows
from ..world.build import WorldConfig, world_from

log = get_logger("scoring")


@dataclasses.dataclass
class ScoreInput:
    """Where the rationales come from: a rationale store (``store`` + ``split``) or a user file (``path``)."""
    store: str = ""                  # rationale store folder
    generate: str = ""               # or a generate config: its store (built when missing)
    split: str = "arith-train"       # store key "<dataset>-<split>"
    teachers: list[str] = dataclasses.field(default_factory=list)  # [] = every stored teacher
    policy: str = "drop_question"
    path: str = ""                   # json / jsonl / parquet with question, rationales, answer
    limit: int = 0                   # first N instances (0 = all)

    def validate(self) -> None:
        if sum(map(bool, (self.store, self.generate, self.path))) != 1:
            raise ValueError("give exactly one of input.store (a rationale store), input.generate (a generate "
                             "config) or input.path (a json/jsonl/parquet file)")
        if self.limit < 0:
            raise ValueError("input.limit must be >= 0")
        if self.policy not in POLICIES:
            raise ValueError(f"input.policy must be one of {list(POLICIES)}, got {self.policy!r}")
        if not self.path and not self.split.strip():
            raise ValueError("input.split must name a store key (<dataset>-<split>)")


DTYPES = ("float32", "bfloat16", "float16")
_DEVICE_RE = re.compile(r"auto|cpu|mps|(cuda|xpu)(:\d+)?")


@dataclasses.dataclass
class ScoreConfig:
    """Score a rationale set with a student."""
    student: str = ""                # HF folder; "" = the world's base student (needs world)
    tokenizer: str = ""              # "" = the student's folder (else the world's tokenizer)
    world: str = ""                  # world config, for the default student
    input: ScoreInput = dataclasses.field(default_factory=ScoreInput)
    objective: ObjectiveConfig = dataclasses.field(default_factory=ObjectiveConfig)
    max_length: int = 1024           # tokens per branch (longer rationales lose their end)
    # questions per forward pass (1 = the released implementation's layout); the scores do not depend on it:
    # the reference MI proxy counts each question's positions up to its own longest branch
    batch_questions: int = 1
    low_consensus_quantile: float = 0.1
    low_consensus_z: float | None = None  # when set, flag z(consensus) < -low_consensus_z instead
    hsic: bool = False               # also the HSIC estimate per branch (validates the MI proxy; slower)
    dtype: str = "float32"
    device: str = "auto"
    out: str = ""                    # "" = artifacts/score/<input name>-<hash>

    def validate(self) -> None:
        if not math.isfinite(self.low_consensus_quantile) or not 0.0 <= self.low_consensus_quantile <= 1.0:
            raise ValueError(f"low_consensus_quantile must be in [0, 1], got {self.low_consensus_quantile!r}")
        if self.low_consensus_z is not None and not (math.isfinite(self.low_consensus_z) and self.low_consensus_z >= 0):
            raise ValueError(f"low_consensus_z must be a finite number >= 0, got {self.low_consensus_z!r}")
        if self.batch_questions < 1 or self.max_length < 2:
            raise ValueError("batch_questions must be >= 1 and max_length >= 2")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {self.dtype!r}")
        if not isinstance(self.device, str) or not _DEVICE_RE.fullmatch(self.device):
            raise ValueError(f"device must be auto, cpu, mps, cuda[:<index>] or xpu[:<index>], got {self.device!r}")


# ---------------------------------------------------------------------------------------------------------
# input

def _row_locations(p: Path, n_rows: int) -> list[str]:
    """Where each row of a user file sits: "line N" for JSONL (as read by read_local_rows), else ""."""
    if p.is_file() and p.suffix in (".jsonl", ".json"):
        text = p.read_bytes().decode("utf-8", errors="replace").removeprefix("\ufeff")
        if p.suffix == ".jsonl" or not text.lstrip().startswith(("[", "{\"data\"")):
            lines = [f"line {n + 1}" for n, line in enumerate(text.split("\n")) if line.strip()]
            if len(lines) == n_rows:
                return lines
    return [""] * n_rows


def read_rationale_file(path: str | Path, *, limit: int = 0):
    """Instances from a user's json / jsonl / parquet file; bad rows raise DataError naming record and field.

    The rows go through the validator every instance reader shares
    (:func:`compact.teachers.view.read_instance_rows`); ``id``, ``teachers`` and ``answer_type`` are optional.
    """
    p = resolve(path)
    where = str(p)
    rows = read_local_rows(p)
    locations = _row_locations(p, len(rows))
    if limit:
        rows, locations = rows[:limit], locations[:limit]
    if not rows:
        raise DataError("no records", path=where)
    return read_instance_rows(zip(locations, rows), path=where, id_required=False, default_answer_type="",
                              default_source=p.stem, default_teachers=True)


def load_input(inp: ScoreInput):
    if not (inp.path or inp.store or inp.generate):
        raise ConfigError("give input.store (a rationale store), input.generate (a generate config) or "
                          "input.path (a json/jsonl/parquet file)")
    if inp.path:
        return read_rationale_file(inp.path, limit=inp.limit)

    if inp.generate:
        store = generate_store(load(GenerateConfig, inp.generate))
    else:
        store = resolve(inp.store)
    if not store.is_dir():
        raise DataError("rationale store not found", path=str(store))
    instances = build_instances(store, inp.split, inp.teachers or None, inp.policy)
    return instances[:inp.limit] if inp.limit else instances


# ---------------------------------------------------------------------------------------------------------
# scoring

def _gold_representation(model, gold_ids: torch.Tensor, gold_mask: torch.Tensor) -> torch.Tensor:
    """(B, H): the last hidden state at the last gold-answer token, the answer run alone through the model."""
    ids = gold_ids.clamp(min=0)  # (B, G); -1 padding -> any id, masked out
    out = model(input_ids=ids, attention_mask=gold_mask.long(), output_hidden_states=True)
    last = gold_mask.long().sum(1) - 1  # (B,)
    return out.hidden_states[-1][torch.arange(ids.shape[0], device=ids.device), last]


@torch.no_grad()
def score_instances(model, tokenizer, instances: Sequence, cfg: ScoreConfig | None = None) -> list[dict[str, Any]]:
    """One row per (instance, teacher): weight/alpha, raw scores, fused score, labels, low-consensus flag."""
    cfg = cfg or ScoreConfig()
    ocfg = cfg.objective
    teachers = list(dict.fromkeys(t for inst in instances for t in inst.teachers))
    questions, stats = encode_instances(instances, tokenizer, teachers=teachers, max_length=cfg.max_length)
    if stats.questions_dropped:
        log.warning("%d questions dropped: their prompt alone exceeds max_length=%d", stats.questions_dropped,
                    cfg.max_length)
    if not questions:
        raise ConfigError(f"no question fits max_length={cfg.max_length}")
    by_id = {inst.id: inst for inst in instances}
    proj = projections_for(model, ocfg)
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    thinking = thinking_token_ids(tokenizer)
    was_training = model.training
    model.eval()
    rows: list[dict[str, Any]] = []
    try:
        chunks = [questions[i:i + cfg.batch_questions] for i in range(0, len(questions), cfg.batch_questions)]
        for chunk in progress(chunks, desc="score"):
            batch = collate(chunk, pad_id=pad, thinking_ids=thinking).to(device)
            out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True)
            hidden = out.hidden_states[-1]  # (N, L, H)
            res = objective_from_outputs(out.logits, hidden, lm_head_weight(model), proj, batch, ocfg)
            hs = None
            if cfg.hsic:
                gold = _gold_representation(model, batch.gold_ids, batch.gold_mask)[batch.group]  # (N, H)
                pos = torch.arange(hidden.shape[1], device=device)[None, :]
                amask = (pos >= batch.assistant_start[:, None]) & batch.attention_mask.bool()  # (N, L)
                tok = token_answer_hsic(hidden.float(), gold.float(), batch.attention_mask, normalize=True,
                                        positions=amask)  # (N, L), computed on the answer's tokens only
                hs = (torch.nan_to_num(tok) * amask).sum(1) / amask.sum(1).clamp(min=1)  # (N,) mean over answer
            n = 0
            for q in chunk:
                inst = by_id[q.id]
                for k, seq in enumerate(q.branches):
                    label = inst.labels[k] if k < len(inst.labels) else {}
                    rat = inst.rationales[k]
                    row = {
                        "id": inst.id, "teacher": inst.teachers[k], "branch": k, "question": inst.question,
                        "answer": inst.answer, "rationale": rat,
                        "weight": float(res.alpha[n]), "alpha": float(res.alpha[n]), "mi": float(res.mi[n]),
                        "consensus": float(res.consensus[n]), "difficulty": float(res.difficulty[n]),
                        "fused": float(res.fused[n]), "n_tokens": len(seq) - q.assistant_start[k],
                        "k": len(q.branches),
                    }
                    if hs is not None:
                        row["hsic"] = float(hs[n])
                    if inst.answer_type:
                        row["answer_correct"] = bool(is_correct(extract_strict(rat, inst.answer_type), inst.answer,
                                                                inst.answer_type))
                    for key in ("final_correct", "steps_correct"):
                        if key in label:
                            row[key] = bool(label[key])
                    rows.append(row)
                    n += 1
    finally:
        model.train(was_training)
    flag_low_consensus(rows, quantile=cfg.low_consensus_quantile, z=cfg.low_consensus_z)
    return rows


def flag_low_consensus(rows: list[dict[str, Any]], *, quantile: float = 0.1, z: float | None = None) -> None:
    """Set ``low_consensus`` on every row: consensus below the quantile (or z-score below ``-z``) of all rows.

    Questions with a single rationale have no consensus (0 by definition) and are never flagged.
    """
    multi = [r for r in rows if r.get("k", 2) > 1]
    c = np.array([r["consensus"] for r in multi], dtype=np.float64)
    if c.size == 0:
        thresh = -np.inf
    elif z is not None:
        sd = c.std(ddof=1) if c.size > 1 else 0.0
        thresh = c.mean() - z * sd if sd > 0 else -np.inf
    else:
        thresh = float(np.quantile(c, quantile)) if quantile > 0 else -np.inf
    for r in rows:
        r["low_consensus"] = bool(r.get("k", 2) > 1 and r["consensus"] < thresh)


def to_dataset(rows: Sequence[dict[str, Any]]):
    """A ``datasets.Dataset`` of the score rows (``weight`` column = alpha)."""
    import datasets  # local: heavy import (Arrow): only where a datasets folder is read or written

    return datasets.Dataset.from_list(list(rows))


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    teachers = sorted({r["teacher"] for r in rows})
    per = {}
    for t in teachers:
        rs = [r for r in rows if r["teacher"] == t]
        per[t] = {"n": len(rs), "mean_weight": float(np.mean([r["weight"] for r in rs])),
                  "low_consensus": int(sum(r["low_consensus"] for r in rs))}
        for key in ("final_correct", "answer_correct"):
            if rs and key in rs[0]:
                per[t][f"{key}_rate"] = float(np.mean([r[key] for r in rs]))
    return {"n_rows": len(rows), "n_instances": len({r["id"] for r in rows}),
            "n_low_consensus": int(sum(r["low_consensus"] for r in rows)), "teachers": per}


# ---------------------------------------------------------------------------------------------------------
# artifacts and CLI

def _student(cfg: ScoreConfig) -> tuple[str, str]:
    if cfg.student:
        return cfg.student, cfg.tokenizer or cfg.student
    if not cfg.world:
        raise ConfigError("give student=<HF folder> or world=<world config> (its base student)")

    world = world_from(cfg.world)
    tok = cfg.tokenizer or (str(world.student_path) if (world.student_path / "tokenizer_config.json").is_file()
                            else str(world.tokenizer_path))
    return str(world.student_path), tok


def inputs_fingerprint(cfg: ScoreConfig) -> dict[str, Any]:
    """Content hashes of what a score reads besides its config: the rationale file or store, the student."""
    inp = cfg.input
    out: dict[str, Any] = {}
    if inp.path:
        out["input"] = tree_fingerprint(resolve(inp.path))
    elif inp.generate:
        out["input"] = store_root(load(GenerateConfig, inp.generate)).name
    elif inp.store:
        out["input"] = RationaleStore(resolve(inp.store)).fingerprint([inp.split], inp.teachers or None)
    if cfg.world and not cfg.student:
        out["world"] = config_hash(load(WorldConfig, cfg.world))
    for key in ("student", "tokenizer"):
        value = getattr(cfg, key)
        if value and value.startswith(PACKAGED_PREFIX):
            out[key] = cached_folder(value[len(PACKAGED_PREFIX):]).name  # named by the GGUF file's bytes
        elif value and resolve(value).is_dir():
            out[key] = model_fingerprint(resolve(value))
    return out


def score_dir(cfg: ScoreConfig, fingerprint: dict[str, Any] | None = None) -> Path:
    """``cfg.out``, else ``artifacts/score/<input name>-<hash of the config and its inputs' contents>``."""
    if cfg.out:
        return resolve(cfg.out)
    fingerprint = inputs_fingerprint(cfg) if fingerprint is None else fingerprint
    name = Path(cfg.input.path).stem if cfg.input.path else cfg.input.split
    return artifacts_dir() / "score" / f"{name}-{config_hash({'config': cfg, 'inputs': fingerprint})}"


def _reusable(out: Path, cfg: ScoreConfig, fingerprint: dict[str, Any]) -> bool:
    """A complete score of this config and these inputs; a folder compact did not write is an error."""
    if not out.exists():
        return False
    if not out.is_dir():
        raise ArtifactError(f"out={out} is a file, not a folder")
    if not is_complete(out):
        if any(out.iterdir()):
            raise ArtifactError(f"out={out} is a non-empty folder that compact did not write (no {MANIFEST}): "
                                "refusing to write into it; choose a new or empty folder")
        return False
    man = read_manifest(out)
    if man.get("kind") != "score":
        raise ArtifactError(f"out={out} holds a {man.get('kind')!r} artifact, not a score: refusing to replace it")
    return (man.get("config_hash") == config_hash(cfg) and man.get("inputs") == fingerprint
            and (out / "scores.jsonl").is_file())


def run_score(cfg: ScoreConfig, *, force: bool = False) -> tuple[list[dict[str, Any]], Path]:
    """Score ``cfg.input`` with the student and write the table (datasets folder + parquet + jsonl + manifest).

    The result is reused when its manifest records this config and the same input contents.
    """
    fingerprint = inputs_fingerprint(cfg)
    out = score_dir(cfg, fingerprint)
    if _reusable(out, cfg, fingerprint) and not force:
        log.info("reusing %s", out)
        return [row for _, row in iter_jsonl(out / "scores.jsonl", allow_empty=True)], out
    instances = load_input(cfg.input)
    student, tok_path = _student(cfg)
    model = load_model(student, dtype=cfg.dtype, device=cfg.device)
    tokenizer = load_tokenizer(tok_path, pad_to_eos=True)
    rows = score_instances(model, tokenizer, instances, cfg)
    with storage_guard(f"the score {out}"), atomic_dir(out, overwrite=True) as tmp:
        ds = to_dataset(rows)
        ds.save_to_disk(str(tmp / "dataset"))
        ds.to_parquet(str(tmp / "scores.parquet"))
        with open(tmp / "scores.jsonl", "w") as fh:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        summary = summarize(rows)
        write_json(tmp / "summary.json", summary)
        save_yaml(cfg, tmp / "config.yaml")
        write_json(tmp / "manifest.json", manifest(cfg, kind="score", extra={"student": student, "inputs": fingerprint,
                                                                             "summary": summary}))
    return rows, out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--force", action="store_true", help="re-score even when a cached result exists")


def run(args: argparse.Namespace) -> int:
    cfg = load(ScoreConfig, args.config, args.overrides)
    rows, out = run_score(cfg, force=args.force)
    s = summarize(rows)
    print(f"{s['n_rows']} rationales of {s['n_instances']} questions scored; {s['n_low_consensus']} low-consensus")
    for t, m in s["teachers"].items():
        extra = "".join(f"  {k}={v:.3f}" for k, v in m.items() if k.endswith("_rate"))
        print(f"  {t:<24} mean weight {m['mean_weight']:.3f}  low-consensus {m['low_consensus']}{extra}")
    print(f"wrote {out}")
    return 0


__all__ = ["ScoreConfig", "ScoreInput", "read_rationale_file", "load_input", "score_instances",
           "flag_low_consensus", "to_dataset", "summarize", "run_score", "score_dir"]
