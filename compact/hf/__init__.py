"""COMPACT where people already train: Hugging Face ``datasets``, Transformers and TRL.

    compact.hf.dataset   the rationale store as a DatasetDict (one row per question, K completions) + card
    compact.hf.trainer   CompactTrainer / CompactTrainingArguments (transformers.Trainer)
    compact.hf.sft       CompactSFTTrainer / CompactSFTConfig (TRL's SFTTrainer; pip install 'compact[trl]')

The names are imported lazily (``from compact.hf import CompactSFTTrainer``): importing this package costs nothing.
"""
from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "CompactTrainer": "trainer", "CompactTrainingArguments": "trainer", "CompactTrainerMixin": "trainer",
    "CompactCollator": "trainer", "QuestionStepSampler": "trainer",
    "CompactSFTTrainer": "sft", "CompactSFTConfig": "sft",
    "export_store": "dataset", "rows_to_instances": "dataset", "instances_dataset": "dataset",
    "push_to_hub": "dataset", "features": "dataset",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CompactCollator", "CompactSFTConfig", "CompactSFTTrainer", "CompactTrainer", "CompactTrainerMixin",
           "CompactTrainingArguments", "QuestionStepSampler", "export_store", "features", "instances_dataset",
           "push_to_hub", "rows_to_instances"]
