"""The training run config: one dataclass per section, filled from ``configs/train/*.yaml``.

A run is fully named by its resolved :class:`TrainConfig` (the artifact directory carries its hash), so
every field that changes the numbers lives here; fields that only change speed or verbosity too, because a
user re-running a config must get the same artifact path.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Literal, Optional, Sequence

from ..config import hash_view
from ..method.objective import ObjectiveConfig
from .methods import resolve_objective
from ..teachers.view import FILTERS, POLICIES

Method = Literal["compact", "uniform", "single", "static", "mcckd", "oracle", "oracle_answer", "oracle_steps", "random",
                 "shuffled", "uniform_consistency"]
Schedule = Literal["constant", "linear", "cosine"]


def _finite(key: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number, got {value!r}")
    return value


def _check(key: str, value, *, lo=None, hi=None, lo_open: bool = False, hi_open: bool = False) -> None:
    """``value`` finite and within [lo, hi] (open ends when asked); the message names the key."""
    _finite(key, value)
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise ValueError(f"{key} must be {'>' if lo_open else '>='} {lo}, got {value!r}")
    if hi is not None and (value >= hi if hi_open else value > hi):
        raise ValueError(f"{key} must be {'<' if hi_open else '<='} {hi}, got {value!r}")


def _one_of(key: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{key} must be one of {list(allowed)}, got {value!r}")


@dataclasses.dataclass
class DataConfig:
    """Where the training instances come from and how they are tokenised."""
    # A world config (``configs/world/*.yaml``): its student is the default model and its tokenizer hash
    # is checked against the store's.
    world: Optional[str] = None
    # A rationale store directory, or a generate config (``configs/generate/*.yaml``) whose store is built
    # (or reused) by ``compact.teachers.generate.generate_store``.
    store: Optional[str] = None
    generate: Optional[str] = None
    # Or a JSONL file of instances (fields of compact.teachers.view.Instance): hand-made data, tests.
    instances: Optional[str] = None
    # store keys "<dataset>-<split>" whose instances are concatenated (world: its in-distribution tasks)
    split: list[str] = dataclasses.field(
        default_factory=lambda: ["arith-train", "variation-train", "symbolic-train"])
    teachers: list[str] = dataclasses.field(default_factory=list)  # empty: every teacher in the store
    policy: str = "drop_question"            # unusable rationales (compact.teachers.view.POLICIES)
    correctness_filter: str = "none"         # compact.teachers.view.FILTERS
    max_length: int = 512                    # tokens per branch; longer rationales are cut from the right
    max_instances: Optional[int] = None      # first N instances (after the view's order), for smoke runs

    def validate(self) -> None:
        given = [k for k in ("store", "generate", "instances") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of data.store, data.generate, data.instances (got {given})")
        for key in given:
            if not getattr(self, key).strip():
                raise ValueError(f"data.{key} is an empty path")
        if self.max_length < 8:
            raise ValueError(f"data.max_length must be >= 8, got {self.max_length}")
        if self.max_instances is not None and self.max_instances < 1:
            raise ValueError("data.max_instances must be >= 1")
        _one_of("data.policy", self.policy, POLICIES)
        _one_of("data.correctness_filter", self.correctness_filter, FILTERS)
        if not self.split and self.instances is None:
            raise ValueError("data.split must name at least one store key")
        if len(set(self.teachers)) != len(self.teachers) or not all(t.strip() for t in self.teachers):
            raise ValueError(f"data.teachers must be distinct non-empty names, got {self.teachers}")


@dataclasses.dataclass
class LoraConfig:
    """peft LoRA on the listed linear projections (the authors' setting by default)."""
    r: int = 16
    alpha: int = 32
    dropout: float = 0.1
    target_modules: list[str] = dataclasses.field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])

    def validate(self) -> None:
        if self.r < 1 or self.alpha < 1:
            raise ValueError("lora.r and lora.alpha must be >= 1")
        _check("lora.dropout", self.dropout, lo=0.0, hi=1.0, hi_open=True)
        if not self.target_modules:
            raise ValueError("lora.target_modules must name at least one module")


@dataclasses.dataclass
class ModelConfig:
    """The student: a local Hugging Face folder or a hub id (empty: the world's student)."""
    path: Optional[str] = None
    revision: Optional[str] = None
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # weights as loaded; autocast is separate
    trust_remote_code: bool = False
    lora: Optional[LoraConfig] = None        # None: full fine-tuning
    # "sdpa", "eager", "flash_attention_2"; "auto": flash-attention 2 on CUDA when installed (the released
    # trainer's backend), else transformers' default; None: transformers' default (sdpa)
    attn_implementation: Optional[str] = None
    # a student folder with only a pickle ``pytorch_model.bin`` (no safetensors) is refused unless this is
    # set: unpickling can run code. It changes no numbers, so it does not name the run (TrainConfig.identity)
    allow_pickle: bool = False

    def validate(self) -> None:
        if self.path is not None and not self.path.strip():
            raise ValueError("model.path is empty (leave it out to use the world's student)")


@dataclasses.dataclass
class OptimConfig:
    """AdamW, the learning-rate schedule and the batch geometry."""
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    schedule: Schedule = "constant"
    warmup_steps: int = 0
    epochs: int = 1
    max_steps: Optional[int] = None          # stops earlier than ``epochs`` when set
    questions_per_step: int = 8              # questions (all their branches) per optimizer step, all processes
    micro_batch_questions: int = 8           # questions per forward pass on one process
    grad_clip: Optional[float] = 1.0

    def validate(self) -> None:
        _check("optim.lr", self.lr, lo=0.0, lo_open=True)
        _check("optim.weight_decay", self.weight_decay, lo=0.0)
        if len(self.betas) != 2:
            raise ValueError(f"optim.betas must have 2 entries, got {list(self.betas)}")
        for i, b in enumerate(self.betas):
            _check(f"optim.betas[{i}]", b, lo=0.0, hi=1.0, hi_open=True)
        _check("optim.eps", self.eps, lo=0.0, lo_open=True)
        if self.grad_clip is not None:
            # a negative max norm would flip the gradient's sign (clip scale max_norm / norm < 0)
            _check("optim.grad_clip", self.grad_clip, lo=0.0, lo_open=True)
        if self.questions_per_step < 1 or self.micro_batch_questions < 1:
            raise ValueError("optim.questions_per_step and optim.micro_batch_questions must be >= 1")
        if self.epochs < 1:
            raise ValueError("optim.epochs must be >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("optim.max_steps must be >= 1")
        if self.warmup_steps < 0:
            raise ValueError("optim.warmup_steps must be >= 0")


@dataclasses.dataclass
class CheckpointConfig:
    every: int = 0                           # optimizer steps between checkpoints (0: none)
    keep: int = 2                            # the newest ``keep`` checkpoints stay on disk
    resume: Literal["auto", "never"] = "auto"  # auto: continue from the newest complete checkpoint

    def validate(self) -> None:
        if self.every < 0:
            raise ValueError(f"checkpoint.every must be >= 0 (0: none), got {self.every}")
        if self.keep < 0:
            raise ValueError(f"checkpoint.keep must be >= 0 (0: keep all), got {self.keep}")


@dataclasses.dataclass
class AcceleratorConfig:
    cpu: bool = False                        # force CPU even when CUDA is present (always CPU without CUDA)
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"  # used on GPU only; CPU runs stay fp32 unless...
    cpu_mixed_precision: Literal["no", "bf16"] = "no"  # ...this asks for bf16 autocast on the CPU (the bf16 path)
    # shard the student with FSDP2 (torch's fully_shard: each decoder layer, then the root) instead of replicating
    # it: on GPUs (NCCL) and on CPU processes (gloo) alike, under torchrun; full fine-tuning (with LoRA, use DDP)
    fsdp: bool = False

    # added later: at these values earlier run names stay
    HASH_DEFAULTS: ClassVar[dict[str, Any]] = {"cpu_mixed_precision": "no", "fsdp": False}


@dataclasses.dataclass
class LogConfig:
    every: int = 1                           # optimizer steps between log.jsonl records
    alpha_every: int = 1                     # optimizer steps between alpha.jsonl records (0: never)
    tensorboard: bool = False                # accelerate's tensorboard tracker, under <work>/tb
    # optimizer steps after which the trainable parameters are kept as curve/step-NNNNN.safetensors: the
    # learning curve (evaluated by the pipeline's curves stage)
    curve_steps: list[int] = dataclasses.field(default_factory=list)

    def validate(self) -> None:
        if self.every < 0 or self.alpha_every < 0:
            raise ValueError(f"log.every and log.alpha_every must be >= 0, got {self.every}, {self.alpha_every}")
        if any(s < 1 for s in self.curve_steps):
            raise ValueError(f"log.curve_steps must be >= 1, got {self.curve_steps}")


@dataclasses.dataclass
class DebugConfig:
    """Test hooks. They change no numbers: a debug run is named like the run it reproduces."""
    step_sleep_s: float = 0.0                # slow each step down (kill-and-resume tests)
    nan_at_step: Optional[int] = None        # inject a NaN loss at this optimizer step (1-based)

    def validate(self) -> None:
        _check("debug.step_sleep_s", self.step_sleep_s, lo=0.0)
        if self.nan_at_step is not None and self.nan_at_step < 1:
            raise ValueError(f"debug.nan_at_step must be >= 1, got {self.nan_at_step}")


@dataclasses.dataclass
class TrainConfig:
    """One training run: data, model, method + objective, optimiser, checkpoints, seed."""
    name: str = "run"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    # compact: alpha from the three scores; uniform: alpha=1/K; single: teacher `teacher` only;
    # static: fixed `objective.static_weights`; mcckd: uniform alpha + answer-span consistency; the controls
    # oracle_answer / oracle_steps (= oracle), random, shuffled, uniform_consistency: compact/trainer/methods.py
    method: Method = "compact"
    teacher: Optional[str] = None            # single: the teacher's name (or its index, as a string)
    objective: ObjectiveConfig = dataclasses.field(default_factory=ObjectiveConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)
    accelerator: AcceleratorConfig = dataclasses.field(default_factory=AcceleratorConfig)
    log: LogConfig = dataclasses.field(default_factory=LogConfig)
    seed: int = 0
    debug: DebugConfig = dataclasses.field(default_factory=DebugConfig)

    def __post_init__(self) -> None:
        # the method's fixed objective choices, applied here so that the config (saved, hashed) says them
        self.objective = resolve_objective(self.method, self.objective)

    def validate(self) -> None:
        if not self.name.strip() or any(c in self.name for c in "/\\\0") or self.name.startswith("."):
            raise ValueError(f"name {self.name!r} must be a non-empty folder name (no '/', no leading '.')")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        _check("objective.temperature", self.objective.temperature, lo=0.0, lo_open=True)
        _check("objective.lambda_consistency", self.objective.lambda_consistency, lo=0.0)
        _check("objective.pair_threshold", self.objective.pair_threshold, lo=0.0)
        for i, b in enumerate(self.objective.beta):
            _check(f"objective.beta[{i}]", b)
        if self.method == "single" and self.teacher is None:
            raise ValueError("method 'single' needs `teacher` (a teacher name or index)")
        if self.method != "single" and self.teacher is not None:
            raise ValueError(f"`teacher` is only used by method 'single' (method is {self.method!r})")

    def identity(self) -> dict:
        """The config as it names the artifact: debug hooks are left out (they do not change results)."""

        d = hash_view(self)  # fields at their HASH_DEFAULTS value are left out, as in config_hash
        d.pop("debug", None)
        d["model"].pop("allow_pickle", None)  # permission to read a pickle file, not a different run
        return d
