r"""Evaluation: batched greedy decoding, strict and lenient accuracy, per-sample logs, bootstrap CIs.

    compact eval --config configs/eval/world.yaml --set model=artifacts/runs/<run>
    compact eval --config configs/eval/gsm8k.yaml --set model=<hf folder> --set data.benchmark.path=gsm8k.jsonl

Every question is put in the student's chat template (user turn + generation prompt), prompts are sorted
by token length and left-padded into batches, and the student decodes greedily with a KV cache until it
emits eos, or finishes the answer line (``The answer is X.`` followed by a newline), or reaches
``max_new_tokens``; the batch stops as soon as every row has stopped. Accuracy per task:

.. math:: \mathrm{acc} = \frac1n \sum_i [\,\mathrm{extract}(g_i) \equiv a^*_i\,],

with the strict extractor (the final answer line only) and the lenient one (last number / letter / yes-no
anywhere), each with a seeded percentile-bootstrap 95% interval. World tasks and real benchmarks go
through the same code: both are lists of :class:`compact.data.records.Example`.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any, ClassVar, Literal, Sequence

import torch

from ..config import add_config_arguments, config_hash, load, save_yaml
from ..data.answers import CHOICE_LETTERS, extract_lenient, extract_strict, is_correct
from ..data.benchmarks import BenchmarkSpec, load_benchmark
from ..data.records import Example, iter_jsonl, read_jsonl
from ..errors import ArtifactError, ConfigError
from ..inputs.model import load_model, load_tokenizer
from ..inputs.packaged import resolve_model_path
from ..log import get_logger, progress
from ..paths import artifacts_dir, resolve
from ..provenance import atomic_dir, is_complete, manifest, read_manifest, write_json
from ..world.build import world_from
from ..world.tasks import probe_verdict
from .decode import AnswerLineStop, eos_token_ids, format_prompt, greedy_generate
from .loglik import probe_beliefs
from .stats import bootstrap_ci
from .vllm_decode import make_engine, resolve_backend, vllm_greedy

log = get_logger("evaluation")


# ---------------------------------------------------------------------------------------------------------
# configs

@dataclasses.dataclass
class EvalData:
    """Which questions: world tasks, a real benchmark (hub id or local file), or a jsonl of Example records."""
    source: Literal["world", "benchmark", "jsonl"] = "world"
    world: str = "configs/world/default.yaml"   # world config (source=world)
    tasks: list[str] = dataclasses.field(default_factory=list)  # [] = the world's ID + OOD tasks
    split: str = "test"                          # world split
    benchmark: BenchmarkSpec = dataclasses.field(default_factory=BenchmarkSpec)
    path: str = ""                               # jsonl of Example rows (source=jsonl)
    limit: int = 0                               # first N questions per task (0 = all)

    def validate(self) -> None:
        if self.source == "jsonl" and not self.path:
            raise ValueError("data.source=jsonl needs data.path")
        if self.limit < 0:
            raise ValueError("data.limit must be >= 0")


@dataclasses.dataclass
class EvalConfig:
    """One evaluation: a model, a question set, decoding and statistics settings."""
    model: str = ""                  # HF model folder (a trained run's model/ folder, or a local model id path)
    tokenizer: str = ""              # "" = the model's folder
    data: EvalData = dataclasses.field(default_factory=EvalData)
    batch_size: int = 64             # prompts per generate batch (sorted by length, so little padding)
    max_new_tokens: int = 256
    stop_at_answer_line: bool = True  # stop a row once its "The answer is X." line is complete
    sort_by_length: bool = True
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    device: str = "auto"             # auto = cuda when available, else cpu
    n_bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0
    system_prompt: str = ""          # optional system turn before the question
    # questions that carry knowledge probes (world OOD tasks): "loglik" scores them by the log-likelihood
    # of their options (compact.eval.loglik; blind to a changed answer style), "generate" by generation + extraction
    probe_scoring: Literal["generate", "loglik"] = "generate"
    # CPU threads while decoding; 0 = auto: 1 for models under 20M parameters (a tiny model's per-op work
    # is too small to pay for thread synchronisation, and with busy cores OpenMP spin-waits made decoding
    # 10x slower: 0.41 s vs 5.2 s for 64 questions), torch's setting otherwise
    cpu_threads: int = 0
    # greedy decoder: "hf" (compact.eval.decode), "vllm" (compact.eval.vllm_decode; optional extra, GPUs) or
    # "auto" (vLLM when installed and a GPU is visible, else hf); an artifact is named by the backend that ran
    backend: Literal["hf", "vllm", "auto"] = "hf"
    tensor_parallel_size: int = 1    # vllm: GPUs per engine
    # hf: once the rows still decoding fall to this fraction of a batch, finished rows leave it and its KV cache
    # (compact.eval.decode.greedy_generate; 1.45x on a verbose world student, same outputs there); 0 = never
    prune_finished: float = 0.0

    # fields added after artifacts were named: at these values they leave every earlier name unchanged
    HASH_DEFAULTS: ClassVar[dict[str, Any]] = {"backend": "hf", "tensor_parallel_size": 1, "prune_finished": 0.0}

    def validate(self) -> None:
        if self.backend not in ("hf", "vllm", "auto"):
            raise ValueError(f"backend must be hf, vllm or auto, got {self.backend!r}")
        if not 0.0 <= self.prune_finished < 1.0:
            raise ValueError(f"prune_finished must be in [0, 1), got {self.prune_finished}")
        if self.tensor_parallel_size < 1:
            raise ValueError("tensor_parallel_size must be >= 1")
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ValueError("batch_size and max_new_tokens must be >= 1")
        if not 0 < self.confidence < 1:
            raise ValueError("confidence must be in (0, 1)")
        if self.cpu_threads < 0:
            raise ValueError("cpu_threads must be >= 0 (0 = auto)")


# ---------------------------------------------------------------------------------------------------------
# results

SAMPLE_FIELDS = ("id", "task", "prompt", "generation", "extracted_strict", "extracted_lenient", "gold",
                 "correct_strict", "correct_lenient")


@dataclasses.dataclass
class EvalResult:
    """Per-sample records (input order) and per-task metrics (``"all"`` pools every sample)."""
    samples: list[dict[str, Any]]
    metrics: dict[str, dict[str, Any]]
    seconds: float = 0.0

    def accuracy(self, task: str = "all", mode: Literal["strict", "lenient"] = "strict") -> float:
        return self.metrics[task][mode]

    def pooled(self, tasks: Sequence[str], *, mode: str = "strict", n_bootstrap: int = 1000,
               seed: int = 0) -> dict[str, Any]:
        """Accuracy and CI over the samples of several tasks together (e.g. all OOD tasks)."""
        vals = [float(s[f"correct_{mode}"]) for s in self.samples if s["task"] in set(tasks)]
        iv = bootstrap_ci(vals, n_resamples=n_bootstrap, seed=seed)
        return {"n": len(vals), "accuracy": iv.estimate, "ci_low": iv.low, "ci_high": iv.high}

    def table(self) -> list[dict[str, Any]]:
        """One row per task: n, strict/lenient accuracy with their intervals."""
        return [{"task": t, **m} for t, m in self.metrics.items()]

    def write(self, out_dir: str | Path) -> None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "samples.jsonl", "w") as fh:
            for s in self.samples:
                fh.write(json.dumps(s, ensure_ascii=False) + "\n")
        write_json(out / "metrics.json", {"metrics": self.metrics, "seconds": self.seconds})

    @classmethod
    def read(cls, out_dir: str | Path) -> "EvalResult":
        out = Path(out_dir)
        if not (out / "metrics.json").is_file() or not (out / "samples.jsonl").is_file():
            raise ArtifactError(f"{out}: not an evaluation folder (metrics.json + samples.jsonl expected)")
        m = json.loads((out / "metrics.json").read_text())
        samples = [row for _, row in iter_jsonl(out / "samples.jsonl", allow_empty=True)]
        return cls(samples=samples, metrics=m["metrics"], seconds=m.get("seconds", 0.0))


def task_of(ex: Example) -> str:
    """World records carry ``meta['task']``; benchmarks are their own task (``source``)."""
    return str(ex.meta.get("task") or ex.source)


def compute_metrics(samples: Sequence[dict[str, Any]], *, n_bootstrap: int = 1000, confidence: float = 0.95,
                    seed: int = 0) -> dict[str, dict[str, Any]]:
    """Strict/lenient accuracy and bootstrap intervals per task, plus ``"all"``."""
    tasks: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        tasks.setdefault(s["task"], []).append(s)
    groups = dict(sorted(tasks.items()))
    groups["all"] = list(samples)
    out = {}
    for t, ss in groups.items():
        rec: dict[str, Any] = {"n": len(ss)}
        for mode in ("strict", "lenient"):
            iv = bootstrap_ci([float(s[f"correct_{mode}"]) for s in ss], n_resamples=n_bootstrap,
                              confidence=confidence, seed=seed)
            rec[mode], rec[f"{mode}_ci_low"], rec[f"{mode}_ci_high"] = iv.estimate, iv.low, iv.high
        rec["no_answer"] = sum(s["extracted_strict"] is None for s in ss) / max(1, len(ss))
        out[t] = rec
    return out


# ---------------------------------------------------------------------------------------------------------
# loading


def load_examples(data: EvalData) -> list[Example]:
    """The questions ``data`` names (world tasks, a benchmark, or a jsonl of Example rows)."""
    if data.source == "benchmark":
        exs = load_benchmark(data.benchmark)
    elif data.source == "jsonl":
        exs = read_jsonl(resolve(data.path))
    else:
        world = world_from(data.world)
        tasks = data.tasks or [*world.id_tasks, *world.ood_tasks]
        exs = []
        for t in tasks:
            got = list(world.examples(t, data.split))
            exs.extend(got[:data.limit] if data.limit else got)
        return exs
    if data.tasks:
        exs = [e for e in exs if task_of(e) in set(data.tasks)]
    if data.limit:
        per: dict[str, int] = {}
        kept = []
        for e in exs:
            t = task_of(e)
            if per.get(t, 0) < data.limit:
                kept.append(e)
                per[t] = per.get(t, 0) + 1
        exs = kept
    return exs


# ---------------------------------------------------------------------------------------------------------
# prompts and decoding


def _probe_sample(ex: Example, prompt: str, beliefs: list[int]) -> dict[str, Any]:
    """A log-likelihood-scored question as a sample row: the answer the student's beliefs imply."""
    probe = ex.meta["probe"]
    verdict = probe_verdict(probe, beliefs)
    answer = CHOICE_LETTERS[verdict] if probe["rule"] == "choice" else ("yes" if verdict else "no")
    believed = "; ".join(f"{q['query']} {q['options'][b]}" for q, b in zip(probe["queries"], beliefs))
    ok = is_correct(answer, ex.answer, ex.answer_type)
    return {"id": ex.id, "task": task_of(ex), "prompt": prompt, "generation": f"[log-likelihood] {believed}",
            "extracted_strict": answer, "extracted_lenient": answer, "gold": ex.answer, "correct_strict": ok,
            "correct_lenient": ok, "answer_type": ex.answer_type, "n_new_tokens": 0, "stop": "loglik"}


def _hf_generate(model, tokenizer, examples, encoded, order, probed, cfg: EvalConfig, *, pad_id: int,
                 eos_ids: set[int], stopper) -> tuple[dict[int, tuple[list[int], str]], dict[int, list[int]]]:
    """(generations by example index, probe beliefs by example index) with the Hugging Face greedy decoder."""
    was_training = model.training
    model.eval()
    gens: dict[int, tuple[list[int], str]] = {}
    batches = [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    threads_before = torch.get_num_threads()
    on_cpu = next(model.parameters()).device.type == "cpu"
    threads = cfg.cpu_threads or (1 if sum(p.numel() for p in model.parameters()) < 20_000_000 else 0)
    if on_cpu and threads:
        torch.set_num_threads(threads)
    try:
        beliefs = dict(zip(sorted(probed), probe_beliefs(model, tokenizer, [examples[i].meta["probe"]
                                                                             for i in sorted(probed)])))
        for batch in progress(batches, desc="eval"):
            new, reasons = greedy_generate(model, [encoded[i] for i in batch], pad_id=pad_id, eos_ids=eos_ids,
                                           max_new_tokens=cfg.max_new_tokens, stopper=stopper,
                                           prune=cfg.prune_finished)
            for i, g, r in zip(batch, new, reasons):
                gens[i] = (g, r)
    finally:
        model.train(was_training)
        torch.set_num_threads(threads_before)
    return gens, beliefs


def evaluate(model_or_path: Any, tokenizer: Any, examples: Sequence[Example], cfg: EvalConfig | None = None,
             *, engine: Any = None, sampling_params_cls: Any = None) -> EvalResult:
    """Generate an answer for every example and score it (strict + lenient, per task, bootstrap CIs).

    ``model_or_path`` is a loaded causal LM or an HF folder; ``tokenizer`` a tokenizer, a folder, or None
    (the model's folder). Deterministic: the same model, examples and config give the same samples. With
    ``cfg.backend`` vllm (or ``engine``: a vLLM-like engine, as the tests inject) the answers are decoded by vLLM
    from the same token ids; the HF model is then loaded only when knowledge probes need log-likelihoods.
    """
    cfg = cfg or EvalConfig()
    cfg.validate()
    backend = "vllm" if engine is not None else resolve_backend(cfg.backend)
    if isinstance(model_or_path, (str, Path)):
        tokenizer = tokenizer if tokenizer is not None else model_or_path
    elif backend == "vllm" and engine is None:
        raise ConfigError("evaluate: the vllm backend needs a model folder, not a loaded model")
    if isinstance(tokenizer, (str, Path)):
        tokenizer = load_tokenizer(tokenizer, pad_to_eos=True)
    if tokenizer is None:
        raise ConfigError("evaluate: a tokenizer (or a model folder holding one) is needed")
    probed = {i for i, e in enumerate(examples)
              if cfg.probe_scoring == "loglik" and isinstance(e.meta, dict) and "probe" in e.meta}
    model = model_or_path
    if isinstance(model_or_path, (str, Path)) and (backend == "hf" or probed):
        model = load_model(model_or_path, dtype=cfg.dtype, device=cfg.device)
    t0 = time.perf_counter()
    prompts = [format_prompt(tokenizer, e.question, cfg.system_prompt) for e in examples]
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    order = [i for i in range(len(examples)) if i not in probed]
    if cfg.sort_by_length:
        order.sort(key=lambda i: (len(encoded[i]), i))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos_ids = eos_token_ids(tokenizer, model if isinstance(model, torch.nn.Module) else None,
                            model_or_path if isinstance(model_or_path, (str, Path)) else None)
    if not eos_ids:
        raise ConfigError("evaluate: neither the tokenizer nor the model defines an eos token")
    stopper = AnswerLineStop(tokenizer) if cfg.stop_at_answer_line else None
    if backend == "vllm":
        if engine is None:
            engine, sampling_params_cls = make_engine(str(resolve(model_or_path)), dtype=cfg.dtype, seed=cfg.seed,
                                                      tensor_parallel_size=cfg.tensor_parallel_size)
        beliefs = (dict(zip(sorted(probed), probe_beliefs(model, tokenizer, [examples[i].meta["probe"]
                                                                             for i in sorted(probed)])))
                   if probed else {})
        new, reasons = vllm_greedy(engine, sampling_params_cls, [encoded[i] for i in order], eos_ids=eos_ids,
                                   max_new_tokens=cfg.max_new_tokens, seed=cfg.seed, stopper=stopper)
        gens = {i: (g, r) for i, g, r in zip(order, new, reasons)}
    else:
        gens, beliefs = _hf_generate(model, tokenizer, examples, encoded, order, probed, cfg, pad_id=pad_id,
                                     eos_ids=eos_ids, stopper=stopper)
    samples = []
    for i, ex in enumerate(examples):
        if i in probed:
            samples.append(_probe_sample(ex, prompts[i], beliefs[i]))
            continue
        g, reason = gens[i]
        text = tokenizer.decode(g, skip_special_tokens=True)
        strict, lenient = extract_strict(text, ex.answer_type), extract_lenient(text, ex.answer_type)
        samples.append({
            "id": ex.id, "task": task_of(ex), "prompt": prompts[i], "generation": text,
            "extracted_strict": strict, "extracted_lenient": lenient, "gold": ex.answer,
            "correct_strict": is_correct(strict, ex.answer, ex.answer_type),
            "correct_lenient": is_correct(lenient, ex.answer, ex.answer_type),
            "answer_type": ex.answer_type, "n_new_tokens": len(g), "stop": reason,
        })
    metrics = compute_metrics(samples, n_bootstrap=cfg.n_bootstrap, confidence=cfg.confidence, seed=cfg.seed)
    return EvalResult(samples=samples, metrics=metrics, seconds=time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------------------
# artifacts and CLI

def model_fingerprint(path: str | Path) -> str:
    """What identifies a model folder: its manifest (trained runs) or else the bytes of its config and weights."""
    p = resolve(path)
    if not p.is_dir():
        raise ArtifactError(f"model not found: {p} (an HF model folder is expected)")
    h = hashlib.sha256()
    if (p / "manifest.json").is_file():
        h.update((p / "manifest.json").read_bytes())
    elif (p.parent / "manifest.json").is_file() and p.name == "model":
        h.update((p.parent / "manifest.json").read_bytes())
    else:
        for f in sorted(p.iterdir()):
            if f.is_file() and f.suffix in (".json", ".safetensors"):
                h.update(f.name.encode())
                with open(f, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 24), b""):
                        h.update(chunk)
    return h.hexdigest()[:12]


def eval_dir(cfg: EvalConfig) -> Path:
    """``artifacts/eval/<model name>-<hash of config + model fingerprint>``."""
    key = {"config": config_hash(cfg), "model": model_fingerprint(cfg.model)}
    name = resolve(cfg.model).name
    if name == "model":  # a trained run's model/ folder: name it after the run
        name = resolve(cfg.model).parent.name
    return artifacts_dir() / "eval" / f"{name}-{config_hash(key)}"


def run_eval(cfg: EvalConfig, *, force: bool = False) -> tuple[EvalResult, Path]:
    """Evaluate ``cfg.model`` (cached by config + model fingerprint) and write the artifact folder."""
    if not cfg.model:
        raise ConfigError("config key 'model' is empty: pass --set model=<HF model folder>")
    # a packaged model (packaged:<name>) is evaluated, cached and named as its de-quantised folder
    cfg = dataclasses.replace(cfg, model=resolve_model_path(cfg.model),
                              tokenizer=resolve_model_path(cfg.tokenizer) if cfg.tokenizer else cfg.tokenizer)
    # the backend that will run names the artifact (auto -> hf or vllm; hf leaves earlier names unchanged)
    cfg = dataclasses.replace(cfg, backend=resolve_backend(cfg.backend))
    out = eval_dir(cfg)
    if is_complete(out) and not force:
        log.info("reusing %s", out)
        return EvalResult.read(out), out
    examples = load_examples(cfg.data)
    if not examples:
        raise ConfigError("the evaluation data selects no questions (check data.tasks / data.limit)")
    log.info("evaluating %s on %d questions", cfg.model, len(examples))
    result = evaluate(cfg.model, cfg.tokenizer or cfg.model, examples, cfg)
    with atomic_dir(out, overwrite=force) as tmp:
        result.write(tmp)
        save_yaml(cfg, tmp / "config.yaml")
        model_manifest = None
        for cand in (resolve(cfg.model) / "manifest.json", resolve(cfg.model).parent / "manifest.json"):
            if cand.is_file():
                model_manifest = read_manifest(cand)
                break
        write_json(tmp / "manifest.json", manifest(cfg, kind="eval", extra={
            "model_fingerprint": model_fingerprint(cfg.model), "n_examples": len(examples),
            "model_manifest": {k: model_manifest.get(k) for k in ("kind", "config_hash", "git")}
            if model_manifest else None}))
    return result, out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--force", action="store_true", help="re-evaluate even when a cached result exists")


def _format_table(metrics: dict[str, dict[str, Any]]) -> str:
    lines = [f"{'task':<16} {'n':>6} {'strict':>22} {'lenient':>22}"]
    for t, m in metrics.items():
        cells = [f"{100 * m[k]:5.1f} [{100 * m[k + '_ci_low']:5.1f}, {100 * m[k + '_ci_high']:5.1f}]"
                 for k in ("strict", "lenient")]
        lines.append(f"{t:<16} {m['n']:>6} {cells[0]:>22} {cells[1]:>22}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    cfg = load(EvalConfig, args.config, args.overrides)
    result, out = run_eval(cfg, force=args.force)
    print(_format_table(result.metrics))
    print(f"wrote {out}")
    return 0


__all__ = ["EvalConfig", "EvalData", "EvalResult", "evaluate", "greedy_generate", "format_prompt",
           "compute_metrics", "load_examples", "run_eval", "eval_dir",
           "model_fingerprint", "task_of", "SAMPLE_FIELDS"]

