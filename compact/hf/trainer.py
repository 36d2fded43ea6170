r"""COMPACT inside Hugging Face Transformers: a ``transformers.Trainer`` that trains on multi-teacher rows.

:class:`CompactTrainer` (and :class:`compact.hf.sft.CompactSFTTrainer`, the same on TRL's ``SFTTrainer``) takes
the rows :mod:`compact.hf.dataset` writes (one question, K teachers' completions) and trains with this package's
objective, :func:`compact.method.objective.compact_objective`: the method (``compact``, ``uniform``, ``single``,
``static``, ``mcckd``, the oracle and random controls) is a preset of the objective resolved by
:func:`compact.trainer.methods.resolve_objective`, and every objective setting (reference or fast path, weights,
variants) is ``args.objective``, a mapping of :class:`~compact.method.objective.ObjectiveConfig` fields. The
Trainer keeps its optimizer, schedule, logging (``report_to``), checkpoints, PEFT models, accelerate/DeepSpeed
launches and Hub uploads; what changes is what one batch is and what its loss is:

- **Batches count questions.** ``per_device_train_batch_size`` is the number of *questions* in a micro-batch,
  each with all its K branches (the collator never splits a question's branches). One optimizer step takes
  ``questions_per_step`` questions (default ``per_device_train_batch_size x gradient_accumulation_steps x
  processes``) in the global order of ``compact train``: a permutation seeded by ``(seed, epoch)``
  (:func:`compact.trainer.loop.epoch_order`), process ``r`` taking the ``r``-th slice of every step, its
  questions sorted by length and cut into micro-batches; the incomplete last step of an epoch is dropped.
- **The loss is the mean over the step's questions.** A micro-batch of ``n`` questions contributes
  ``loss_sum / q_local`` (``q_local`` = the step's questions on this process), not its own mean divided by the
  number of micro-batches, so a short last micro-batch weighs what its questions weigh; the Trainer's own
  gradient-accumulation scaling and ``num_items_in_batch`` (a token count) are not used
  (``loss_is_scaled_for_ga = True``). DDP's mean over processes then gives the mean over all questions.
- **Logged with the loss** (``logging_steps``, to whatever ``report_to`` names): ``compact/loss_sft``,
  ``compact/loss_consistency`` (the pair sum before lambda) and per teacher ``compact/alpha/<teacher>`` (with
  ``compact/alpha_std/<teacher>``), ``compact/mi/<teacher>``, ``compact/consensus/<teacher>`` and
  ``compact/difficulty/<teacher>``: means over the branches since the last log. ``alpha_log=True`` also writes
  ``alpha.jsonl`` (one line per branch and step, the format of ``compact train``'s) into ``output_dir``.

Same numbers as ``compact train``: with the same data, seed, AdamW settings, schedule, warmup and clipping, the
parameters, losses and alpha agree with :func:`compact.trainer.run.train` (tests/test_hf_trainer.py). Two
differences by design: the Trainer exempts biases and norms from weight decay (``compact train`` decays every
parameter; equal at ``weight_decay=0``), and its default optimizer on torch >= 2.8 is ``adamw_torch_fused``
(``compact train`` uses ``torch.optim.AdamW``'s default kernel: choose ``optim="adamw_torch"`` for bit-level
agreement).

    from compact.hf import CompactTrainer, CompactTrainingArguments
    args = CompactTrainingArguments(output_dir="out", method="compact", objective={"lambda_consistency": 0.1},
                                    per_device_train_batch_size=4, gradient_accumulation_steps=2, max_length=512)
    CompactTrainer(model=model, args=args, train_dataset=datasets.load_from_disk("export")["train"],
                   processing_class=tokenizer).train()

Bad input stops before anything is trained or saved, in one line naming the row or the setting: a row whose
completions and teachers differ in length, a question with fewer than two completions under a multi-teacher
method (:func:`compact.hf.dataset.rows_to_instances`), a batch geometry that cannot give every step its
questions whole (``questions_per_step`` against ``per_device_train_batch_size``, ``gradient_accumulation_steps``
and the processes; ``accelerator_config.split_batches`` or ``dispatch_batches``, which cut a batch's rows across
processes; TRL's ``packing`` / ``padding_free``).
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.data import DataLoader, SequentialSampler
from transformers import Trainer, TrainingArguments

from ..config import from_dict
from ..errors import ConfigError, TrainingError
from ..inputs.encode import EncodedQuestion, collate, encode_instances
from ..inputs.instances import _select_teachers
from ..inputs.model import check_model
from ..log import get_logger
from ..method.adaptability import thinking_token_ids
from ..method.batch import Batch
from ..method.objective import ObjectiveConfig, compact_objective
from ..trainer.loop import epoch_order
from ..trainer.methods import (
    PRESETS,
    check_explicit,
    oracle_keep,
    resolve_objective,
    single_teacher,
)
from .dataset import SINGLE_BRANCH_METHODS, rows_to_instances

log = get_logger("hf.trainer")

#: the collated batch's tensors; ``gold_ids`` (B, G) first, so that the Trainer's ``find_batch_size`` counts questions
BATCH_FIELDS = ("gold_ids", "gold_mask", "input_ids", "attention_mask", "assistant_start", "group", "teacher",
                "thinking_ids")
SCORES = ("alpha", "mi", "consensus", "difficulty")


def micro_batch_share(loss_sum: torch.Tensor, n_questions: int, q_local: int) -> torch.Tensor:
    """A micro-batch's share of the step's mean loss: the sum of its questions' totals over the step's questions on
    this process (``compact train``'s weighting, :mod:`compact.trainer.loop`)."""
    return loss_sum / q_local


# ------------------------------------------------------------------------------------------------ arguments
@dataclass
class CompactFields:
    """The COMPACT settings a ``TrainingArguments`` / ``SFTConfig`` subclass adds (all with defaults)."""
    method: str = field(default="compact", metadata={
        "help": f"the training method, a preset of the objective: {', '.join(PRESETS)}"})
    objective: dict | str | None = field(default=None, metadata={
        "help": "ObjectiveConfig fields as a mapping or JSON, e.g. '{\"path\": \"reference\", \"lambda_consistency\": "
                "0.2}' (compact/method/objective.py; the method fixes weighting and consistency)"})
    teacher: str | None = field(default=None, metadata={"help": "method 'single': the teacher's name or index"})
    teachers: list[str] | None = field(default=None, metadata={
        "help": "the teachers to train on, in this order (default: every teacher, in order of first appearance)"})
    questions_per_step: int | None = field(default=None, metadata={
        "help": "questions (each with its K completions) per optimizer step over all processes; default "
                "per_device_train_batch_size x gradient_accumulation_steps x processes"})
    alpha_log: bool = field(default=False, metadata={
        "help": "write alpha.jsonl (per branch and step: alpha and the three scores) into output_dir"})

    def _compact_post_init(self) -> None:
        obj = self.objective
        if isinstance(obj, ObjectiveConfig):
            obj = dataclasses.asdict(obj)
        elif isinstance(obj, str):
            try:
                obj = json.loads(obj) if obj.strip() else None
            except json.JSONDecodeError as exc:
                raise ConfigError(f"objective: not valid JSON ({exc.msg}): {self.objective!r}") from None
        if obj is not None and not isinstance(obj, dict):
            raise ConfigError(f"objective: expected a mapping of ObjectiveConfig fields, got {type(obj).__name__}")
        self.objective = obj
        if self.method not in PRESETS:
            raise ConfigError(f"unknown method {self.method!r} (known: {', '.join(PRESETS)})")
        if self.method == "single" and self.teacher is None:
            raise ConfigError("method 'single' needs `teacher` (a teacher name or index)")
        if self.method != "single" and self.teacher is not None:
            raise ConfigError(f"`teacher` is only used by method 'single' (method is {self.method!r})")
        if self.questions_per_step is not None and self.questions_per_step < 1:
            raise ConfigError(f"questions_per_step must be >= 1, got {self.questions_per_step}")


@dataclass
class CompactTrainingArguments(TrainingArguments, CompactFields):
    """``TrainingArguments`` with the COMPACT settings (:class:`CompactFields`) and ``max_length``."""
    max_length: int | None = field(default=1024, metadata={
        "help": "tokens per branch (prompt + completion); longer completions lose their end (None: no limit)"})

    def __post_init__(self):
        super().__post_init__()
        self._compact_post_init()


def _setting(args, name: str, default: Any = None) -> Any:
    return getattr(args, name, default)


# ------------------------------------------------------------------------------------------ data loading
class CompactCollator:
    """Encoded questions -> the tensors of one :class:`~compact.method.batch.Batch` (all K branches of each question,
    right-padded; :func:`compact.inputs.encode.collate`), plus ``ids`` (the questions' ids, for logs and errors)."""

    def __init__(self, pad_id: int, thinking_ids: Sequence[int]):
        self.pad_id, self.thinking_ids = int(pad_id), list(thinking_ids)

    def __call__(self, questions: Sequence[EncodedQuestion]) -> dict[str, Any]:
        batch = collate(questions, pad_id=self.pad_id, thinking_ids=self.thinking_ids)
        out: dict[str, Any] = {name: getattr(batch, name) for name in BATCH_FIELDS}
        out["ids"] = [q.id for q in questions]
        return out


class QuestionStepSampler:
    """Batches of question indices in ``compact train``'s order (a batch sampler; the loop's data order exactly).

    Epoch ``e``: the permutation :func:`compact.trainer.loop.epoch_order` ``(n, seed, e)``; step ``s`` takes its
    ``s``-th slice of ``questions_per_step``; this process the ``rank``-th ``q_local`` of it, sorted by the length
    of each question's longest branch, in micro-batches of ``micro_batch`` questions (the last may be shorter).
    The incomplete last step of an epoch is dropped. Already sharded by process: accelerate must not shard it again.
    """
    drop_last = True

    def __init__(self, lengths: Sequence[int], *, questions_per_step: int, micro_batch: int, seed: int,
                 rank: int = 0, world_size: int = 1):
        self.lengths = list(lengths)
        self.q_step, self.m, self.seed = questions_per_step, micro_batch, seed
        self.rank, self.world = rank, world_size
        self.q_local = questions_per_step // world_size
        self.n_micro = math.ceil(self.q_local / micro_batch)
        self.steps_per_epoch = len(self.lengths) // questions_per_step
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def step_batches(self, epoch: int, step_in_epoch: int) -> list[list[int]]:
        order = epoch_order(len(self.lengths), self.seed, epoch)
        global_ids = order[step_in_epoch * self.q_step:(step_in_epoch + 1) * self.q_step]
        local = global_ids[self.rank * self.q_local:(self.rank + 1) * self.q_local]
        local = sorted(local, key=lambda i: (self.lengths[i], i))
        return [local[s:s + self.m] for s in range(0, self.q_local, self.m)]

    def __iter__(self):
        for step in range(self.steps_per_epoch):
            yield from self.step_batches(self.epoch, step)

    def __len__(self) -> int:
        return self.steps_per_epoch * self.n_micro


# -------------------------------------------------------------------------------------------- the trainer
def _rows(data, where: str):
    """(rows, a datasets.Dataset for trainers that need one) of a Dataset, a DatasetDict split or a list of rows."""
    import datasets

    if isinstance(data, datasets.IterableDataset):
        raise ConfigError(f"{where}: a streaming (Iterable) dataset cannot give the per-epoch question order; "
                          "load it as a Dataset")
    if isinstance(data, datasets.Dataset):
        return data, data
    if isinstance(data, (list, tuple)):
        rows = list(data)
        return rows, None
    raise ConfigError(f"{where}: expected a datasets.Dataset (one row per question; compact.hf.dataset) or a list of "
                      f"rows, got {type(data).__name__}")


class CompactTrainerMixin:
    """What COMPACT changes in a ``transformers.Trainer`` (see the module docstring); put it first in the bases."""

    loss_is_scaled_for_ga = True  # compute_loss returns each micro-batch's share of the step's mean
    _default_args_class: type = CompactTrainingArguments

    def __init__(self, model=None, args=None, data_collator=None, train_dataset=None, eval_dataset=None,
                 processing_class=None, **kwargs):
        import datasets

        if args is None:
            args = self._default_args_class(output_dir="tmp_trainer")
        if data_collator is not None:
            raise ConfigError("COMPACT builds its own batches (every question with all its completions): "
                              "leave data_collator unset")
        if isinstance(train_dataset, datasets.DatasetDict):
            if eval_dataset is None and "validation" in train_dataset:
                eval_dataset = train_dataset["validation"]
            train_dataset = train_dataset["train"]
        if train_dataset is None:
            raise ConfigError("train_dataset is required")
        method = _setting(args, "method", "compact")
        if method not in PRESETS:
            raise ConfigError(f"unknown method {method!r} (known: {', '.join(PRESETS)})")
        self._check_geometry(args)
        train_rows, train_ds = _rows(train_dataset, "train_dataset")
        self._compact_rows = {"train": rows_to_instances(train_rows, where="train_dataset", method=method)}
        if eval_dataset is not None:
            eval_rows, eval_ds = _rows(eval_dataset, "eval_dataset")
            self._compact_rows["eval"] = rows_to_instances(eval_rows, where="eval_dataset", method=method)
            eval_dataset = eval_ds if eval_ds is not None else self._as_dataset(eval_rows)
        n = len(self._compact_rows["train"][0])
        if n < self._q_step:
            raise ConfigError(f"{n} training questions are fewer than questions_per_step={self._q_step}")
        self._resolve_method(args)
        self._prepare_args(args)
        super().__init__(model=model, args=args, data_collator=CompactCollator(0, []),
                         train_dataset=train_ds if train_ds is not None else self._as_dataset(train_rows),
                         eval_dataset=eval_dataset, processing_class=processing_class, **kwargs)
        if not hasattr(Trainer, "loss_is_scaled_for_ga"):  # transformers < 5.19 reads these two attributes instead
            self.model_accepts_loss_kwargs = False
            self.compute_loss_func = "compact: the loss is already scaled for gradient accumulation"
        self._setup_compact()

    # ---- set-up
    def _as_dataset(self, rows):
        return rows  # transformers.Trainer accepts any sized dataset (the loader is built from the encoded questions)

    def _prepare_args(self, args) -> None:
        """Adjust the trainer's own arguments before ``super().__init__`` (TRL: skip its dataset preparation)."""

    def _check_geometry(self, args) -> None:
        world = max(1, int(args.world_size))
        m, gas = int(args.per_device_train_batch_size), int(args.gradient_accumulation_steps)
        q = _setting(args, "questions_per_step") or m * gas * world
        if q % world:
            raise ConfigError(f"questions_per_step={q} must be a multiple of the number of processes ({world}): "
                              "every process takes an equal share of each step's questions")
        q_local = q // world
        n_micro = math.ceil(q_local / m)
        if n_micro != gas:
            raise ConfigError(f"questions_per_step={q} is {q_local} questions per process, {n_micro} micro-batch(es) of "
                              f"per_device_train_batch_size={m} questions, but gradient_accumulation_steps={gas}: set "
                              f"gradient_accumulation_steps={n_micro}")
        acc = getattr(args, "accelerator_config", None)
        if acc is not None and getattr(acc, "split_batches", False):
            raise ConfigError("accelerator_config.split_batches=True cuts every batch, and with it a question's "
                              "completions, across processes; leave it False (per_device_train_batch_size counts "
                              "whole questions)")
        if acc is not None and getattr(acc, "dispatch_batches", None) and world > 1:
            raise ConfigError("accelerator_config.dispatch_batches=True slices each batch's rows across processes, "
                              "splitting questions' completions; leave it unset")
        for name in ("packing", "padding_free"):
            if getattr(args, name, False):
                raise ConfigError(f"{name}=True packs completions of different questions into one row, and the "
                                  "objective compares a question's completions row by row: leave it False")
        if getattr(args, "auto_find_batch_size", False):
            raise ConfigError("auto_find_batch_size would change the questions per micro-batch during training; "
                              "set per_device_train_batch_size and gradient_accumulation_steps instead")
        self._q_step, self._q_local, self._world = q, q_local, world

    def _compact_tokenizer(self):
        from transformers import PreTrainedTokenizerBase

        pc = self.processing_class
        tok = pc if isinstance(pc, PreTrainedTokenizerBase) else getattr(pc, "tokenizer", None)
        if tok is None:
            raise ConfigError("pass processing_class (the student's tokenizer, with its chat template)")
        return tok

    def _resolve_method(self, args) -> None:
        """The teachers, the objective the method trains with, the single teacher's branch (before any set-up)."""
        method = _setting(args, "method", "compact")
        instances, _ = self._compact_rows["train"]
        chosen = list(_setting(args, "teachers") or [])
        if chosen:  # these teachers' completions, in this order (a row without one of them: DataError)
            if len(set(chosen)) != len(chosen):
                raise ConfigError(f"teachers must be distinct names, got {chosen}")
            if method not in SINGLE_BRANCH_METHODS and len(chosen) < 2:
                raise ConfigError(f"teachers={chosen}: method {method!r} weighs several teachers' completions of "
                                  "each question; name at least 2")
            self._compact_rows = {split: ([_select_teachers(i, chosen, f"{split}_dataset") for i in insts], prm)
                                  for split, (insts, prm) in self._compact_rows.items()}
        teachers = chosen or list(dict.fromkeys(t for inst in instances for t in inst.teachers))
        raw = _setting(args, "objective") or {}
        if isinstance(raw, dict):  # a field the method fixes, written with another value: refused, as compact train does
            check_explicit(method, raw, "args")
        objective = raw if isinstance(raw, ObjectiveConfig) else from_dict(ObjectiveConfig, dict(raw), prefix="objective")
        objective = resolve_objective(method, objective, teachers)
        if getattr(args, "gradient_checkpointing", False) and objective.share_prompts:
            # checkpointed decoders drop the key/value cache the shared prompt needs: one forward per row instead
            objective = dataclasses.replace(objective, share_prompts=False)
        self.compact_objective_config = objective
        self.compact_teachers = teachers
        self._compact_branch = single_teacher(method, _setting(args, "teacher"), teachers)

    def _setup_compact(self) -> None:
        args = self.args
        method = _setting(args, "method", "compact")
        tok = self._compact_tokenizer()
        if tok.pad_token_id is None:
            if tok.eos_token is None:
                raise ConfigError("the tokenizer has neither a pad nor an eos token to pad branches with")
            tok.pad_token = tok.eos_token  # padding is masked everywhere the objective reads
            log.info("the tokenizer has no pad token: padding with eos (%s)", tok.eos_token)
        teachers, objective = self.compact_teachers, self.compact_objective_config
        branch = self._compact_branch
        keep = oracle_keep(method)
        max_length = _setting(args, "max_length") or 10**9
        encoded = {}
        for split, (insts, prm) in self._compact_rows.items():
            questions, stats = encode_instances(insts, tok, teachers=teachers, max_length=max_length,
                                                branch_teacher=branch, keep_branch=keep, prompts=prm)
            if stats.questions_no_branch:
                log.info("%s (%s): %d of %d questions have no completion labelled correct and are left out", method,
                         split, stats.questions_no_branch, len(insts))
            if stats.branches_truncated or stats.questions_dropped:
                log.warning("%s: max_length %d: %d of %d branches truncated (%d tokens cut), %d questions dropped",
                            split, max_length, stats.branches_truncated, stats.branches, stats.tokens_truncated,
                            stats.questions_dropped)
            if not questions:
                raise ConfigError(f"{split}_dataset: every question was dropped (prompts longer than "
                                  f"max_length={max_length}, or no completion labelled correct for {method!r})")
            encoded[split] = (questions, stats)
        self.compact_questions = encoded["train"][0]
        self.compact_eval_questions = encoded["eval"][0] if "eval" in encoded else None
        self.compact_truncation = encoded["train"][1]
        if len(self.compact_questions) < self._q_step:
            raise ConfigError(f"{len(self.compact_questions)} training questions are fewer than "
                              f"questions_per_step={self._q_step}")
        check_model(self.model, objective)
        self.data_collator = CompactCollator(tok.pad_token_id, thinking_token_ids(tok))
        self._compact_stats: dict[str, Any] = {}
        self._compact_records: list[dict[str, Any]] = []
        self._compact_micro = 0
        del self._compact_rows

    # ---- data
    def get_total_train_batch_size(self, args) -> int:
        return self._q_step  # questions per optimizer step (the Trainer's speed metrics count samples with it)

    def _question_lengths(self) -> list[int]:
        return [max(len(b) for b in q.branches) for q in self.compact_questions]

    def get_train_dataloader(self) -> DataLoader:
        args = self.args
        seed = args.data_seed if getattr(args, "data_seed", None) is not None else args.seed
        sampler = QuestionStepSampler(self._question_lengths(), questions_per_step=self._q_step,
                                      micro_batch=int(args.per_device_train_batch_size), seed=seed,
                                      rank=args.process_index if self._world > 1 else 0, world_size=self._world)
        loader = DataLoader(self.compact_questions, batch_sampler=sampler, collate_fn=self.data_collator,
                            num_workers=args.dataloader_num_workers,
                            pin_memory=args.dataloader_pin_memory and args.device.type != "cpu")
        prepared = self.accelerator.prepare(loader)
        # the sampler is already sharded by process: make accelerate's shard wrapper pass its batches through
        wrapper = getattr(prepared, "batch_sampler", None)
        if wrapper is not None and getattr(wrapper, "batch_sampler", None) is sampler:
            wrapper.num_processes, wrapper.process_index = 1, 0
        return prepared

    def get_eval_dataloader(self, eval_dataset=None) -> DataLoader:
        if eval_dataset is not None and not isinstance(eval_dataset, str):
            method = _setting(self.args, "method", "compact")
            rows, _ = _rows(eval_dataset, "eval_dataset")
            insts, prompts = rows_to_instances(rows, where="eval_dataset", method=method)
            chosen = list(_setting(self.args, "teachers") or [])
            if chosen:
                insts = [_select_teachers(i, chosen, "eval_dataset") for i in insts]
            questions, _ = encode_instances(insts, self._compact_tokenizer(), teachers=self.compact_teachers,
                                            max_length=_setting(self.args, "max_length") or 10**9,
                                            branch_teacher=self._compact_branch,
                                            keep_branch=oracle_keep(method), prompts=prompts)
        elif self.compact_eval_questions is not None:
            questions = self.compact_eval_questions
        else:
            raise ConfigError("evaluation needs an eval_dataset")
        loader = DataLoader(questions, batch_size=self.args.eval_batch_size, sampler=SequentialSampler(questions),
                            collate_fn=self.data_collator, num_workers=self.args.dataloader_num_workers)
        return self.accelerator.prepare(loader)

    # ---- loss
    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        ids = list(inputs.get("ids", []))
        batch = Batch(**{name: inputs[name] for name in BATCH_FIELDS})
        res = compact_objective(model, batch, self.compact_objective_config)
        n = batch.n_questions
        total = res.loss_sum if res.loss_sum is not None else res.loss * n
        if self.model.training:
            loss = micro_batch_share(total, n, self._q_local)
            self._check_finite(loss, ids)
            self._record(res, batch, ids)
        else:
            loss = total / n
        return (loss, res) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def _check_finite(self, loss: torch.Tensor, ids: list[str]) -> None:
        bad = torch.tensor([0.0 if torch.isfinite(loss.detach()).all() else 1.0], device=loss.device)
        if self._world > 1:
            bad_all = self.accelerator.reduce(bad, "sum")
        else:
            bad_all = bad
        if bad_all.item() > 0:
            from transformers.trainer_utils import get_last_checkpoint

            step = self.state.global_step + 1
            good = get_last_checkpoint(self.args.output_dir) if Path(self.args.output_dir).is_dir() else None
            raise TrainingError(f"non-finite loss at optimizer step {step}"
                                + (f" on questions {ids}" if bad.item() else " on another process")
                                + (f"; the last good checkpoint is {good}" if good else "; no checkpoint was written"))

    # ---- logging
    def _record(self, res, batch: Batch, ids: list[str]) -> None:
        """Accumulate what :meth:`log` reports (and ``alpha.jsonl`` lines) from one training micro-batch."""
        k = len(self.compact_teachers)
        st = self._compact_stats
        if not st:
            st.update(q=torch.zeros(3, dtype=torch.float64),  # questions, loss_sft sum, loss_consistency sum
                      sums=torch.zeros(len(SCORES) + 1, k, dtype=torch.float64),  # + alpha^2
                      counts=torch.zeros(len(SCORES), k, dtype=torch.float64))
        n = batch.n_questions
        st["q"] += torch.tensor([n, float(res.loss_sft.detach()) * n, float(res.loss_consistency.detach()) * n],
                                dtype=torch.float64)
        teacher = batch.teacher.detach().cpu().long()
        values = {key: getattr(res, key) for key in SCORES}
        for j, key in enumerate(SCORES):
            v = values[key]
            if v is None:
                continue
            v = v.detach().double().cpu().reshape(-1)
            st["sums"][j].index_add_(0, teacher, v)
            st["counts"][j].index_add_(0, teacher, torch.ones_like(v))
            if key == "alpha":
                st["sums"][len(SCORES)].index_add_(0, teacher, v * v)
        if _setting(self.args, "alpha_log", False):
            vec = {key: (None if values[key] is None else values[key].detach().float().reshape(-1).tolist())
                   for key in SCORES}
            lk = res.per_branch_loss.detach().float().reshape(-1).tolist()
            grp, tch = batch.group.tolist(), batch.teacher.tolist()
            step = self.state.global_step + 1
            for i in range(len(grp)):
                self._compact_records.append({
                    "step": step, "id": ids[grp[i]], "teacher": self.compact_teachers[tch[i]], "teacher_index": tch[i],
                    **{key: (vec[key][i] if vec[key] is not None else None) for key in SCORES}, "loss": lk[i]})
        self._compact_micro += 1
        if self._compact_micro % int(self.args.gradient_accumulation_steps) == 0 and _setting(
                self.args, "alpha_log", False):
            self._flush_records()

    def _flush_records(self) -> None:
        from accelerate.utils import gather_object

        from ..provenance import append_jsonl, read_jsonl_tail, rewrite_jsonl

        records, self._compact_records = self._compact_records, []
        if self._world > 1:
            records = gather_object(records)
        if self.accelerator.is_main_process and records:
            path = Path(self.args.output_dir) / "alpha.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            if not getattr(self, "_compact_alpha_started", False):
                # the first write of this run: lines an earlier (or interrupted, now resumed) run left for this step
                # and later ones go (a resumed run repeats them)
                self._compact_alpha_started = True
                if path.is_file():
                    first = records[0]["step"]
                    old, _ = read_jsonl_tail(path)
                    rewrite_jsonl(path, [r for r in old if isinstance(r.get("step"), int) and r["step"] < first])
            append_jsonl(path, records)

    def _compact_logs(self) -> dict[str, float]:
        st = self._compact_stats
        k = len(self.compact_teachers)
        if st:
            packed = torch.cat([st["q"], st["sums"].reshape(-1), st["counts"].reshape(-1)])
        else:
            packed = torch.zeros(3 + (len(SCORES) + 1) * k + len(SCORES) * k, dtype=torch.float64)
        if self._world > 1:  # every process logs at the same steps (the Trainer gathers the loss there too)
            packed = self.accelerator.reduce(packed.to(self.accelerator.device), "sum").cpu().double()
        self._compact_stats = {}
        q = packed[:3]
        sums = packed[3:3 + (len(SCORES) + 1) * k].reshape(len(SCORES) + 1, k)
        counts = packed[3 + (len(SCORES) + 1) * k:].reshape(len(SCORES), k)
        if q[0] == 0:
            return {}
        out = {"compact/loss_sft": float(q[1] / q[0]), "compact/loss_consistency": float(q[2] / q[0])}
        for j, key in enumerate(SCORES):
            for t, name in enumerate(self.compact_teachers):
                c = float(counts[j, t])
                if c > 0:
                    mean = float(sums[j, t]) / c
                    out[f"compact/{key}/{name}"] = mean
                    if key == "alpha":
                        out[f"compact/alpha_std/{name}"] = math.sqrt(max(float(sums[len(SCORES), t]) / c - mean ** 2,
                                                                         0.0))
        return out

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and not any(key.startswith("eval_") for key in logs):  # a training log
            logs.update(self._compact_logs())
        super().log(logs, *args, **kwargs)


class CompactTrainer(CompactTrainerMixin, Trainer):
    """``transformers.Trainer`` training with COMPACT on multi-teacher rows (see the module docstring).

    ``model``: a causal LM (or a PEFT model wrapping one); ``processing_class``: its tokenizer (the chat template
    formats each branch); ``train_dataset``: rows of :mod:`compact.hf.dataset` (a ``datasets.Dataset``, a
    ``DatasetDict`` whose ``train`` split is used, or a list of rows); ``args``: :class:`CompactTrainingArguments`.
    """


__all__ = ["BATCH_FIELDS", "CompactCollator", "CompactFields", "CompactTrainer", "CompactTrainerMixin",
           "CompactTrainingArguments", "QuestionStepSampler", "micro_batch_share"]
