"""COMPACT on TRL: ``CompactSFTTrainer``, TRL's ``SFTTrainer`` with COMPACT's batches and loss.

Everything :mod:`compact.hf.trainer` says holds here; what TRL adds is kept: a model given by name is loaded
(``model_init_kwargs``), ``peft_config`` wraps it in LoRA (or any PEFT adapter), the chat template can be cloned
(``chat_template_path``), the model card and tags are written, and launches under accelerate (DDP, FSDP, DeepSpeed)
go through TRL's set-up. TRL's own dataset preparation (tokenising ``prompt``/``completion`` columns, packing) is
skipped: a row of :mod:`compact.hf.dataset` is K completions of one prompt, which this trainer encodes itself with the
tokenizer's chat template (``prompt + completions[k]`` per branch, the loss on the completion's tokens).

    pip install 'compact[trl]'
    from compact.hf import CompactSFTConfig, CompactSFTTrainer
    args = CompactSFTConfig(output_dir="out", method="compact", per_device_train_batch_size=2,
                            gradient_accumulation_steps=4, max_length=1024)
    CompactSFTTrainer(model="HuggingFaceTB/SmolLM2-1.7B-Instruct", args=args,
                      train_dataset=datasets.load_from_disk("export")["train"],
                      peft_config=peft.LoraConfig(r=16, lora_alpha=32, target_modules="all-linear")).train()

Refused (they would change the batches or the loss): ``packing``, ``padding_free``, ``loss_type="dft"``. Ignored:
``dataset_text_field``, ``completion_only_loss`` / ``assistant_only_loss`` (the loss is always on the completion's
tokens), ``shuffle_dataset`` (the order is ``compact train``'s).
"""
from __future__ import annotations

from dataclasses import dataclass

try:
    from trl import SFTConfig, SFTTrainer
except ImportError as exc:  # pragma: no cover - the optional extra
    raise ImportError("compact.hf.sft needs TRL: pip install 'compact[trl]'") from exc

from ..errors import ConfigError
from .trainer import CompactFields, CompactTrainerMixin


@dataclass
class CompactSFTConfig(SFTConfig, CompactFields):
    """TRL's ``SFTConfig`` with the COMPACT settings (:class:`compact.hf.trainer.CompactFields`).

    ``max_length`` (TRL's, default 1024) limits each branch: prompt + completion. TRL's defaults stay (bf16 where
    available, gradient checkpointing on, ``logging_steps=10``); on a CPU pass ``bf16=False``.
    """

    def __post_init__(self):
        super().__post_init__()
        self._compact_post_init()


class CompactSFTTrainer(CompactTrainerMixin, SFTTrainer):
    """TRL's ``SFTTrainer`` training with COMPACT on multi-teacher rows (:mod:`compact.hf.trainer`).

    Takes ``SFTTrainer``'s arguments (``model`` may be a hub id or path; ``peft_config``; ``processing_class``
    defaults to the model's tokenizer); ``train_dataset``: rows of :mod:`compact.hf.dataset`.
    """

    _tag_names = ["trl", "sft", "compact"]  # noqa: RUF012 - TRL declares it so
    _name = "COMPACT"
    _default_args_class = CompactSFTConfig

    def _as_dataset(self, rows):
        import datasets

        return datasets.Dataset.from_list(list(rows))  # SFTTrainer accepts only a Dataset

    def _prepare_args(self, args) -> None:
        if getattr(args, "loss_type", "nll") not in ("nll", "chunked_nll"):
            raise ConfigError(f"loss_type={args.loss_type!r}: the loss is COMPACT's objective; leave loss_type unset")
        # the rows are encoded by COMPACT (K branches per question), not by TRL's prompt/completion preparation
        args.dataset_kwargs = {**(args.dataset_kwargs or {}), "skip_prepare_dataset": True}


__all__ = ["CompactSFTConfig", "CompactSFTTrainer"]
