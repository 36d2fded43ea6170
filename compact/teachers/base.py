"""The teacher interface: every backend maps questions to ``n`` sampled rationales per question.

``Teacher.generate(prompts, params) -> list[list[Generation]]``: outer list = questions (same order as
``prompts``), inner list = ``params.n`` samples. Backends seed per question (or per batch, for the
Hugging Face backend) so that generation is reproducible shard by shard and therefore resumable.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Protocol, runtime_checkable

from ..data.records import Example


@dataclasses.dataclass
class SamplingParams:
    """How a teacher samples. ``temperature == 0`` means greedy decoding (then ``n`` must be 1 for HF)."""

    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1                      # samples per question
    max_new_tokens: int = 512
    seed: int = 0
    stop: list[str] = dataclasses.field(default_factory=list)  # generation ends before any of these

    def validate(self) -> None:
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.n < 1:
            raise ValueError("n (samples per question) must be >= 1")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise ValueError("stop strings must be non-empty strings")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Generation:
    """One rationale and what the backend knows about it (token counts, simulated ground-truth labels)."""

    text: str
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


@runtime_checkable
class Teacher(Protocol):
    name: str

    def generate(self, prompts: list[Example], params: SamplingParams) -> list[list[Generation]]:
        ...


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any parts (teacher, base seed, question id, sample), stable across runs."""
    blob = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big") >> 1


def truncate_at_stop(text: str, stop: list[str] | tuple[str, ...]) -> str:
    """Cut ``text`` before the earliest stop string (the stop string itself is not kept, as in vLLM)."""
    cut = len(text)
    for s in stop:
        i = text.find(s)
        if i >= 0:
            cut = min(cut, i)
    return text[:cut]


def provenance_of(teacher: Any) -> dict[str, Any]:
    """What identifies a teacher's output: backend, model id and revision (``teacher.provenance()`` if any)."""
    fn = getattr(teacher, "provenance", None)
    info = dict(fn()) if callable(fn) else {}
    info.setdefault("teacher", teacher.name)
    return info
