"""Build (or reuse) the embedded world: tasks, tokenizer and base student, cached by config hash.

    compact world                                   # configs/world/default.yaml
    compact world --config configs/world/smoke.yaml # seconds, for tests and CI
    compact world --set student.steps=200 --force   # rebuild with an override

Layout of ``artifacts/world/<config hash>/`` (published atomically; ``manifest.json`` last):

    data/<task>/<split>.jsonl   the records (compact.data.records.Example)
    knowledge_base.json         the fixed facts the OOD tasks rest on
    tokenizer/                  PreTrainedTokenizerFast with the chat template
    student/                    the base student (safetensors + config + tokenizer)
    pretrain_log.jsonl          loss log of the base student's pretraining
    base_eval.json              the base student's dev accuracy per task (strict final-line match)
    calibration.json / .md      the calibration table against its gates (worlds with knowledge probes)
    corpus_sample.txt           the first pretraining documents, for reading
"""
from __future__ import annotations

import json
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from .. import config as C
from ..data.records import SPLITS, Example, read_jsonl, write_jsonl
from ..errors import ArtifactError, ConfigError
from ..log import get_logger, seed_everything
from ..method.adaptability import THINKING_WORDS, thinking_token_ids
from ..paths import configs_dir, resolve
from ..provenance import (
    artifact_path,
    atomic_dir,
    is_complete,
    manifest,
    read_manifest,
    write_json,
)
from . import student as S
from . import tasks as T
from .calibration import calibrate, failed_gates, markdown
from .student import arith_fact
from .tokenizer import missing_thinking_words, train_tokenizer

log = get_logger("world")

FORMAT_VERSION = 2  # 2: knowledge probes, calibration table, single-step corpus
DEFAULT_CONFIG = "configs/world/default.yaml"


# ----------------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------------
@dataclass
class SplitSizes:
    train: int
    dev: int
    test: int

    def validate(self) -> None:
        for name in ("train", "dev", "test"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def as_dict(self) -> dict[str, int]:
        return {"train": self.train, "dev": self.dev, "test": self.test}


def _id_sizes() -> SplitSizes:
    return SplitSizes(2000, 200, 300)


def _ood_sizes() -> SplitSizes:
    return SplitSizes(1000, 200, 300)


@dataclass
class TasksConfig:
    """Split sizes per task and the arithmetic range of the in-distribution tasks."""
    arith: SplitSizes = field(default_factory=_id_sizes)
    variation: SplitSizes = field(default_factory=_id_sizes)
    symbolic: SplitSizes = field(default_factory=_id_sizes)
    mcq: SplitSizes = field(default_factory=_ood_sizes)
    yesno: SplitSizes = field(default_factory=_ood_sizes)
    min_steps: int = 2  # operations per in-distribution problem (variation and symbolic cap at 3)
    max_steps: int = 4
    max_value: int = 20  # every operand and intermediate value is in [1, max_value]
    # OOD questions carry knowledge probes (scored by log-likelihood) and yes/no splits are exactly 50/50
    knowledge_probes: bool = True

    def validate(self) -> None:
        if not 2 <= self.min_steps <= self.max_steps <= 4:
            raise ValueError(f"need 2 <= min_steps <= max_steps <= 4, got {self.min_steps}, {self.max_steps}")
        if not 20 <= self.max_value <= 999:
            raise ValueError(f"max_value must be in [20, 999], got {self.max_value}")

    def sizes(self, task: str) -> dict[str, int]:
        return getattr(self, task).as_dict()


@dataclass
class TokenizerConfig:
    vocab_size: int = 1024  # small: the world has a few hundred words
    min_frequency: int = 2
    model_max_length: int = 512

    def validate(self) -> None:
        if not 300 <= self.vocab_size <= 32000:
            raise ValueError(f"vocab_size must be in [300, 32000], got {self.vocab_size}")


@dataclass
class CorpusConfig:
    """What the base corpus holds (document counts); see :func:`compact.world.student.base_corpus`."""
    stories: int = 1500  # word-problem stories without questions (the world's language)
    arith_docs: int = 0  # documents of randomly drawn single-operation facts (superseded by fact_sweeps)
    facts_per_doc: int = 8  # sentences per arithmetic / knowledge-base document
    kb_repeats: int = 40  # shuffled copies of the knowledge base
    ood_repeats: int = 0  # copies of the chat-formatted OOD train questions answered by letter / yes-no
    ood_extra: int = 0  # further such OOD questions (new compositions; never a dev/test question)
    fact_sweeps: int = 150  # shuffled passes over EVERY single-operation fact, in the rationales' "a op b = c." form
    recall_docs: int = 8000  # chat recall questions over the knowledge base ("Where does a crow live?")
    direct_id_docs: int = 500  # fresh 2-4 step in-distribution questions answered directly: the answer format
    single_step_docs: int = 8000  # one-operation questions of the ID forms with their equation: the atomic step

    def validate(self) -> None:
        for name in ("stories", "arith_docs", "kb_repeats", "ood_repeats", "ood_extra", "fact_sweeps",
                     "recall_docs", "direct_id_docs", "single_step_docs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.facts_per_doc < 1:
            raise ValueError("facts_per_doc must be >= 1")


@dataclass
class StudentConfig:
    """Architecture (Qwen2, GQA, tied embeddings) and pretraining of the base student."""
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2  # grouped-query attention: METHOD's consensus GQA widening matters
    intermediate_size: int = 512
    max_position_embeddings: int = 512
    rope_theta: float = 10000.0
    steps: int = 1500
    batch_size: int = 32
    block_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_frac: float = 0.05
    min_lr_frac: float = 0.1
    log_every: int = 10
    eval_max_new_tokens: int = 16  # build summary: greedy answers to the dev questions
    eval_limit: int = 200  # dev questions per task in the build summary (0: skip it)

    def validate(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} not divisible by num_heads {self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} not divisible by num_kv_heads {self.num_kv_heads}")
        for name in ("hidden_size", "num_layers", "intermediate_size", "steps", "batch_size", "block_size",
                     "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.block_size > self.max_position_embeddings:
            raise ValueError("block_size must not exceed max_position_embeddings")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.warmup_frac < 1 or not 0 <= self.min_lr_frac <= 1:
            raise ValueError("warmup_frac must be in [0, 1) and min_lr_frac in [0, 1]")
        if self.eval_limit < 0:
            raise ValueError("eval_limit must be >= 0")


@dataclass
class WorldConfig:
    seed: int = 0
    tasks: TasksConfig = field(default_factory=TasksConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    student: StudentConfig = field(default_factory=StudentConfig)


def load_config(path: str | Path | None = DEFAULT_CONFIG, overrides: list[str] | None = None) -> WorldConfig:
    return C.load(WorldConfig, path, overrides)


# ----------------------------------------------------------------------------------------------------
# World
# ----------------------------------------------------------------------------------------------------
class World:
    """A built world on disk: records, tokenizer, base student."""
    id_tasks: tuple[str, ...] = T.ID_TASKS
    ood_tasks: tuple[str, ...] = T.OOD_TASKS

    def __init__(self, path: Path, cfg: WorldConfig):
        self.path = Path(path)
        self.cfg = cfg
        self._tokenizer = None
        self._cache: dict[tuple[str, str], list[Example]] = {}

    def __repr__(self) -> str:
        return f"World({str(self.path)!r})"

    @property
    def tasks(self) -> list[str]:
        return list(T.TASKS)

    @property
    def student_path(self) -> Path:
        return self.path / "student"

    @property
    def tokenizer_path(self) -> Path:
        return self.path / "tokenizer"

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = AutoTokenizer.from_pretrained(str(self.tokenizer_path))
        return self._tokenizer

    def data_path(self, task: str, split: str) -> Path:
        return self.path / "data" / task / f"{split}.jsonl"

    def examples(self, task: str, split: str) -> list[Example]:
        """The records of one task and split (cached in memory after the first read)."""
        if task not in T.TASKS:
            raise ConfigError(f"unknown world task '{task}' (known: {', '.join(T.TASKS)})")
        if split not in SPLITS:
            raise ConfigError(f"unknown split '{split}' (known: {', '.join(SPLITS)})")
        key = (task, split)
        if key not in self._cache:
            p = self.data_path(task, split)
            if not p.is_file():
                raise ArtifactError(f"world data file missing: {p}")
            self._cache[key] = read_jsonl(p)
        return list(self._cache[key])

    def knowledge_base(self) -> dict[str, Any]:
        return json.loads((self.path / "knowledge_base.json").read_text())

    def load_student(self, dtype=None):
        """The base student in eval mode (float32 unless ``dtype`` says otherwise)."""

        model = AutoModelForCausalLM.from_pretrained(str(self.student_path), dtype=dtype or torch.float32)
        return model.eval()

    def summary(self) -> dict[str, Any]:
        return read_manifest(self.path).get("summary", {})


_REQUIRED = ["knowledge_base.json", "tokenizer/tokenizer.json", "student/config.json",
             "student/model.safetensors"]


def load_world(path: str | Path) -> World:
    """Open a built world directory, checking that it is complete and of this format."""
    p = resolve(path)
    if not p.is_dir():
        raise ArtifactError(f"world not found: {p}")
    if not is_complete(p):
        raise ArtifactError(f"{p}: not a complete world (no manifest.json); rebuild with `compact world`")
    man = read_manifest(p)
    if man.get("kind") != "world":
        raise ArtifactError(f"{p}: manifest kind is {man.get('kind')!r}, not 'world'")
    if man.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{p}: world format {man.get('format_version')} != {FORMAT_VERSION}; "
                            "rebuild with `compact world --force`")
    missing = [r for r in _REQUIRED if not (p / r).is_file()]
    missing += [f"data/{t}/{s}.jsonl" for t in T.TASKS for s in SPLITS if not (p / "data" / t / f"{s}.jsonl").is_file()]
    if missing:
        raise ArtifactError(f"{p}: world is missing {missing[0]}" + (f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""))
    cfg = C.from_dict(WorldConfig, man["config"])
    return World(p, cfg)


def world_path(cfg: WorldConfig, root: Path | None = None) -> Path:
    return artifact_path("world", cfg, root=root)


def world_from(config: str | Path) -> World:
    """The world a world config file names (built or reused): what every stage that reads a world calls."""
    return build_world(C.load(WorldConfig, config))


def build_world(cfg: WorldConfig, force: bool = False, root: Path | None = None) -> World:
    """Build the world for ``cfg`` at ``artifact_path("world", cfg)``, or reuse a complete cached one."""
    final = world_path(cfg, root)
    if not force and is_complete(final):
        try:
            world = load_world(final)
            log.info("world cached at %s", final)
            return world
        except ArtifactError as exc:
            log.warning("rebuilding the cached world: %s", exc)
    t_start = time.perf_counter()
    with atomic_dir(final, overwrite=True) as tmp:
        summary = _build_into(tmp, cfg)
        summary["build_seconds"] = round(time.perf_counter() - t_start, 1)
        write_json(tmp / "manifest.json", manifest(cfg, kind="world", extra={
            "format_version": FORMAT_VERSION, "summary": summary}))
    log.info("world built in %.1fs at %s", summary["build_seconds"], final)
    return load_world(final)


def _build_into(out: Path, cfg: WorldConfig) -> dict[str, Any]:


    seed_everything(cfg.seed)
    summary: dict[str, Any] = {}
    timings: dict[str, float] = {}

    # 1. tasks
    t0 = time.perf_counter()
    data: dict[str, dict[str, list[Example]]] = {}
    for task in T.TASKS:
        data[task] = T.generate_task(task, cfg.seed, cfg.tasks.sizes(task), cfg.tasks)
        for split, exs in data[task].items():
            (out / "data" / task).mkdir(parents=True, exist_ok=True)
            write_jsonl(exs, out / "data" / task / f"{split}.jsonl")
    write_json(out / "knowledge_base.json", {"facts": T.kb_facts(), **T.kb_as_dict()})
    summary["sizes"] = {t: {s: len(v) for s, v in d.items()} for t, d in data.items()}
    timings["tasks"] = time.perf_counter() - t0

    # 2. tokenizer, trained on the world's own text (train splits, corpus-style text, rationale phrasing)
    t0 = time.perf_counter()
    tok = train_tokenizer(_tokenizer_texts(data, cfg), vocab_size=cfg.tokenizer.vocab_size,
                          min_frequency=cfg.tokenizer.min_frequency,
                          model_max_length=cfg.tokenizer.model_max_length)
    missing = missing_thinking_words(tok)
    if missing:
        raise ConfigError(f"config key 'tokenizer.vocab_size': {cfg.tokenizer.vocab_size} is too small for the "
                          f"thinking words to be single tokens ({', '.join(missing)})")
    tok.save_pretrained(str(out / "tokenizer"))
    summary["vocab_size"] = len(tok)
    summary["thinking_token_ids"] = thinking_token_ids(tok)
    timings["tokenizer"] = time.perf_counter() - t0

    # 3. base corpus and pretraining
    t0 = time.perf_counter()
    ood_train = data["mcq"]["train"] + data["yesno"]["train"]
    held_out = {e.question for t in T.OOD_TASKS for s in ("dev", "test") for e in data[t][s]}
    held_out |= {e.question for t in T.ID_TASKS for s in SPLITS for e in data[t][s]}  # direct-answer docs
    docs = S.base_corpus(cfg.corpus, cfg.tasks, ood_train, tok, cfg.seed, exclude=held_out)
    (out / "corpus_sample.txt").write_text("\n\n".join(docs[:60]) + "\n")
    blocks = S.pack_blocks(docs, tok, cfg.student.block_size, random.Random(T.task_seed(cfg.seed, "blocks", "corpus")))
    summary["corpus"] = {"documents": len(docs), "blocks": len(blocks), "tokens": sum(len(b) for b in blocks)}
    timings["corpus"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = S.build_model(cfg.student, tok, cfg.seed)
    summary["student_params"] = S.n_params(model)
    log.info("base student: Qwen2, %d parameters; corpus %d documents, %d blocks of <= %d tokens",
             summary["student_params"], len(docs), len(blocks), cfg.student.block_size)
    summary["pretrain"] = S.pretrain(model, blocks, cfg.student, tok, cfg.seed, out / "pretrain_log.jsonl")
    model.save_pretrained(str(out / "student"))
    tok.save_pretrained(str(out / "student"))
    timings["pretrain"] = time.perf_counter() - t0

    # 4. what the base student can do (strict final-line match on dev questions)
    if cfg.student.eval_limit:
        t0 = time.perf_counter()
        acc = {}
        with torch.no_grad():
            for task in T.TASKS:
                exs = data[task]["dev"][:cfg.student.eval_limit]
                outs = S.generate(model, tok, [e.question for e in exs], max_new_tokens=cfg.student.eval_max_new_tokens)
                acc[task] = sum(S.final_line_matches(o, e.answer) for o, e in zip(outs, exs)) / len(exs)
        write_json(out / "base_eval.json", {"split": "dev", "limit": cfg.student.eval_limit, "accuracy": acc,
                                            "chance": {"mcq": 0.2, "yesno": 0.5}})
        summary["base_dev_accuracy"] = acc
        timings["base_eval"] = time.perf_counter() - t0
    # 5. the calibration table (worlds whose OOD questions carry knowledge probes)
    if cfg.tasks.knowledge_probes:
        t0 = time.perf_counter()
        table = calibrate(model, tok, data, cfg.tasks.max_value)
        write_json(out / "calibration.json", table)
        (out / "calibration.md").write_text(markdown(table))
        summary["calibration"] = {r["gate"]: r["value"] for r in table["rows"]}
        summary["calibrated"] = table["calibrated"]
        for line in failed_gates(table):
            log.warning(line)
        timings["calibration"] = time.perf_counter() - t0
    summary["timings"] = {k: round(v, 1) for k, v in timings.items()}
    return summary


def _tokenizer_texts(data: dict[str, dict[str, list[Example]]], cfg: WorldConfig):
    """Text the BPE is trained on: train questions, facts, answers, and rationale-like phrasing."""
    rng = random.Random(T.task_seed(cfg.seed, "tokenizer", "tokenizer"))
    for splits in data.values():
        for e in splits["train"]:
            yield e.question
            yield f"The answer is {e.answer}."
            for st in e.meta.get("steps", []):
                word = rng.choice(THINKING_WORDS)
                a, b = st["args"]
                yield f"{word}, {st['desc']} is {a} {st['op']} {b} = {st['value']}."
            for fact in e.meta.get("facts", []):
                yield f"{rng.choice(THINKING_WORDS)}, {fact[0].lower()}{fact[1:]}"
    yield from T.kb_facts()

    for _ in range(500):
        yield arith_fact(rng, cfg.tasks.max_value)


# ----------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------
def add_arguments(parser) -> None:
    C.add_config_arguments(parser)
    parser.add_argument("--force", action="store_true", help="rebuild even if a complete cached world exists")


def run(args) -> int:
    # a killed build must not leave its temporary directory behind: SIGTERM unwinds like Ctrl-C
    if hasattr(signal, "SIGTERM"):
        try:
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        except ValueError:  # not the main thread (e.g. called from a worker): leave handlers alone
            pass
    cfg_path = args.config or str(configs_dir() / "world" / "default.yaml")
    cfg = load_config(cfg_path, args.overrides)
    world = build_world(cfg, force=args.force)
    s = world.summary()
    if s:
        acc = s.get("base_dev_accuracy", {})
        log.info("student %s params; base dev accuracy: %s", f"{s.get('student_params', 0):,}",
                 ", ".join(f"{k} {v:.0%}" for k, v in acc.items()) or "not measured")
    print(world.path)
    return 0


__all__ = [
    "FORMAT_VERSION",
    "CorpusConfig",
    "SplitSizes",
    "StudentConfig",
    "TasksConfig",
    "TokenizerConfig",
    "World",
    "WorldConfig",
    "build_world",
    "load_config",
    "load_world",
    "world_from",
    "world_path",
]

