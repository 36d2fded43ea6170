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
# only the models, the data and the launcher change. This chapter runs the three
# steps **end to end on this machine**: tiny random Qwen2 models stand in for the teachers and the student,
# and small local files in each benchmark's real schema stand in for the hub datasets (nothing is
# downloaded). The configs are the paper configs with only model ids and file paths swapped.

# %% tags=["parameters"]
profile = "smoke"
results = "artifacts/smoke/results"
world_config = "configs/world/smoke.yaml"
generate_config = "configs/generate/smoke.yaml"
paper_generate = "configs/generate/paper_gsm8k.yaml"
paper_train = "configs/paper/compact_qwen2.5-1.5b_gsm8k.yaml"
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
# ## The paper-scale configs
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
# ## Benchmarks: local files in the real schemas
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
# ## Step 1: teachers write rationales (`compact generate`)
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
# ## Step 2: train with the paper config (`python -m compact.trainer`)
#
# The paper config as is (LoRA on every projection, constant lr, one question per micro-step, bf16 on GPU,
# TensorBoard), with the student path, the store and the step count overridden. On GPUs the same command runs
# under `accelerate launch --config_file configs/accelerate/ddp.yaml` (or `fsdp.yaml`, `zero2.yaml`,
# `zero3.yaml`).

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
# ## Step 3: evaluate on the five benchmarks (`compact.eval.evaluate`)
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
