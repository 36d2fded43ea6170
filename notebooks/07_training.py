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
# # Training COMPACT and the baselines

# %% [markdown]
# Training is one loop for every method (`compact.trainer.run`): COMPACT and its ablations, uniform multi-teacher
# SFT ($\alpha_k = 1/K$), single-teacher SFT, static per-teacher weights and MCC-KD, all selected by a config.
# One optimizer step consumes $Q$ questions (all their branches); with $P$ processes each takes $Q/P$ of them
# in micro-batches, and because $\alpha$ is computed per question, the accumulated gradient is the gradient of
# the mean over the $Q$ questions whatever $P$ and the micro-batch size:
#
# $$\nabla_\theta \frac1Q \sum_{q=1}^{Q} \Big(\sum_k \alpha_{q,k} L_{q,k} + \lambda \sum_{i<j} \alpha_{q,i}\alpha_{q,j} D_{q,ij}\Big)
# = \frac1P \sum_{r=1}^{P} \nabla_\theta \frac{P}{Q} \sum_{q \in \text{rank } r} \mathcal L_q .$$
#
# A notebook never trains on its own: it calls the package. This chapter runs a **small demo**: a few steps
# of the smoke config through `python -m compact.trainer` as a subprocess (the same command a terminal would
# run), the same run on two processes with `torchrun`, and a tiny `accelerate.notebook_launcher` demo of the
# gradient identity above. The full grid, and the weight dynamics of full-length runs, are in
# [chapter 9](09_ablations.ipynb) and [chapter 10](10_latent_space.ipynb), read from the committed results.

# %% tags=["parameters"]
profile = "smoke"
results = "artifacts/smoke/results"
world_config = "configs/world/smoke.yaml"
generate_config = "configs/generate/smoke.yaml"
train_config = "configs/train/smoke.yaml"
demo_steps = 4  # optimizer steps of the demo run
questions_per_step = 4
micro_batch_questions = 2
max_length = 256  # tokens per branch (longer rationales are cut from the right and counted)
two_processes = True  # also run the demo under torchrun --nproc_per_node 2 and compare parameters
seed = 0

# %%
import json
import os
import socket
import tempfile
import time

import matplotlib.pyplot as plt
import pandas as pd
import torch
from safetensors.torch import load_file

from compact.method.objective import ObjectiveConfig, compact_objective
from compact.paths import repo_root
from compact.workbench import open_workbench, run_module

wb = open_workbench(world_config, generate_config, seed=seed)  # world, store, base student (cached)
world, teachers = wb.world, wb.teachers
overrides = [f"data.world={world_config}", f"data.generate={generate_config}", f"optim.max_steps={demo_steps}",
             f"optim.questions_per_step={questions_per_step}", f"optim.micro_batch_questions={micro_batch_questions}",
             f"data.max_length={max_length}", f"data.max_instances={demo_steps * questions_per_step}",
             "checkpoint.every=0", f"seed={seed}"]


def free_port() -> str:
    """A free local TCP port: the default 29500 may be taken by another distributed job on this machine."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def train_cli(extra: list[str], launcher: list[str] | tuple[str, ...] = ()) -> str:
    """Run the trainer's CLI as a subprocess (from the repo root) and return the run directory it prints."""
    sets = [a for o in overrides + extra for a in ("--set", o)]
    t0 = time.time()
    run_dir = run_module("compact.trainer", "--config", train_config, "--log-level", "WARNING", *sets,
                         launcher=launcher)[-1]  # the trainer prints its run directory last
    print(f"  -> {os.path.relpath(run_dir, repo_root())}  ({time.time() - t0:.0f} s)")
    return run_dir


# %% [markdown]
# ## A demo run: `python -m compact.trainer`
#
# The smoke train config (COMPACT in reference mode), overridden to `demo_steps` steps of
# `questions_per_step` questions. The run directory is named by the hash of the resolved config, so
# re-executing this cell reuses the finished run.

# %%
run_1 = train_cli(["name=notebook-demo"])
summary = json.loads(open(os.path.join(run_1, "summary.json")).read())
steps = [json.loads(line) for line in open(os.path.join(run_1, "log.jsonl")) if line.strip()]
alpha_rows = pd.DataFrame([json.loads(line) for line in open(os.path.join(run_1, "alpha.jsonl")) if line.strip()])
pd.DataFrame(steps)[["step", "loss", "loss_sft", "loss_consistency", "grad_norm", "lr"]].set_index("step").round(4)

# %% [markdown]
# ## The weights the run gave each teacher
#
# `alpha.jsonl` holds, for every branch of every step, $\alpha$ and the raw scores $M$, $C$, $L$. Per step, the
# mean $\alpha$ of each teacher (uniform is $1/K$), and every branch's $\alpha$ against its $M_k$.

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
mean_alpha = alpha_rows.pivot_table(index="step", columns="teacher", values="alpha", aggfunc="mean")[teachers]
mean_alpha.plot(ax=axes[0], marker="o")
axes[0].axhline(1 / len(teachers), color="k", ls="--", lw=1, label="uniform")
axes[0].set(ylabel=r"mean $\alpha$", title="Teacher weights per step (demo run)")
axes[0].legend(fontsize=9)
for i, t in enumerate(teachers):
    sub = alpha_rows[alpha_rows.teacher == t]
    axes[1].scatter(sub.mi, sub.alpha, s=14, label=t, color=f"C{i}")
axes[1].set(xlabel="$M_k$ (reference MI proxy)", ylabel=r"$\alpha_k$", title=r"$\alpha$ against the MI proxy")
axes[1].legend(fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The same run on two processes: `torchrun --nproc_per_node 2`
#
# Two CPU processes over gloo (`accelerator.cpu=true`), each taking half of every step's questions. The final
# parameters should equal the one-process run's up to floating-point summation order.

# %%
param_diff = None
if two_processes:
    run_2 = train_cli(["name=notebook-demo", "accelerator.cpu=true"],
                      launcher=["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", free_port()])
    w1, w2 = load_file(os.path.join(run_1, "model.safetensors")), load_file(os.path.join(run_2, "model.safetensors"))
    base = world.load_student().state_dict()
    param_diff = max(float((w1[k] - w2[k]).abs().max()) for k in w1)
    moved = max(float((w1[k] - base[k]).abs().max()) for k in w1 if k in base)
    print(f"processes: {json.load(open(os.path.join(run_2, 'summary.json')))['num_processes']}; "
          f"max |theta_1proc - theta_2proc| = {param_diff:.2e}, while training moved parameters by up to {moved:.2e}")

# %% [markdown]
# ## The gradient identity, in the notebook: `accelerate.notebook_launcher`
#
# A didactic demo (no optimizer): two processes each take half of a batch of questions, scale their summed
# per-question losses by $P/Q$, and let DDP average the gradients; rank 0 saves the result, which we compare
# with the gradient of the mean loss computed in one process on the whole batch. (The launcher's own banner,
# which names the processes "CUDAs" even when it forks CPU processes, is kept off the page.)

# %%
import contextlib
import io
import shutil
import warnings

from accelerate import Accelerator, notebook_launcher

demo_batch = wb.batch(wb.instances("arith-train", limit=4), max_length=max_length)  # 4 questions x K branches
out_dir = tempfile.mkdtemp(prefix="compact-nb07-")


def flat_grad(model):
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def ddp_gradient(batch, out_dir):
    acc = Accelerator(cpu=True)
    model = acc.prepare(world.load_student().train())
    part = batch.split(acc.num_processes)[acc.process_index]  # this rank's questions
    out = compact_objective(model, part, ObjectiveConfig())
    (out.loss_sum * acc.num_processes / batch.n_questions).backward()  # DDP then averages over ranks
    if acc.is_main_process:
        torch.save(flat_grad(acc.unwrap_model(model)), os.path.join(out_dir, "grad.pt"))


# accelerate's forked processes set one thread each when OMP_NUM_THREADS is unset (forking a multi-threaded
# OpenMP pool deadlocks) and warn that they did; the filter, inherited through fork, keeps the warning off the page
warnings.filterwarnings("ignore", message="OMP_NUM_THREADS/MKL_NUM_THREADS unset")
with contextlib.redirect_stdout(io.StringIO()):
    notebook_launcher(ddp_gradient, args=(demo_batch, out_dir), num_processes=2, use_port=free_port())
single = world.load_student().train()
compact_objective(single, demo_batch, ObjectiveConfig()).loss.backward()  # mean over the 4 questions
g_ddp, g_one = torch.load(os.path.join(out_dir, "grad.pt"), weights_only=True), flat_grad(single)
grad_rel = float((g_ddp - g_one).abs().max() / g_one.abs().max())
shutil.rmtree(out_dir, ignore_errors=True)  # the gradient file was only for this comparison
print(f"max relative difference between the 2-process and 1-process gradients: {grad_rel:.2e}")

# %% [markdown]
# ## What we saw

# %%
final = mean_alpha.iloc[-1]
print(f"The demo run trained {summary['steps']} steps on {summary['questions']} questions "
      f"({summary['truncation']['branches_truncated']} of {summary['truncation']['branches']} branches cut at "
      f"{max_length} tokens); loss {steps[0]['loss']:.3f} -> {steps[-1]['loss']:.3f}.")
print(f"Highest mean alpha at the last step: {final.idxmax()} ({final.max():.2f}); lowest: {final.idxmin()} "
      f"({final.min():.2f}); uniform would be {1 / len(teachers):.2f}.")
rho = alpha_rows[["mi", "alpha"]].corr(method="spearman").iloc[0, 1]
print(f"Spearman correlation of alpha with the reference MI proxy over all branches: {rho:.2f}"
      + (" -- the longest rationales' MI dominates the weights (chapter 4's length bias)." if rho > 0.5 else "."))
if param_diff is not None:
    print(f"One process versus two: parameters agree to {param_diff:.1e}.")
print(f"notebook_launcher gradient check: relative difference {grad_rel:.1e}.")

# %% [markdown]
# ## Exercises
#
# 1. Add `"method=uniform"` to the `extra` list of the first run: the weights become exactly $1/K$; how do the
#    losses compare after `demo_steps` steps?
# 2. Add `"objective.mi_variant=masked_mean"`: does the longest teacher still dominate $\alpha$?
# 3. Set `micro_batch_questions = 1` (the released code's one question per pass): same parameters, slower.
# 4. Set `demo_steps = 8` and look at the trajectories: do the weights move as the student learns?
# 5. On a machine with GPUs: `accelerate launch --config_file configs/accelerate/ddp.yaml -m compact.trainer
#    --config configs/train/compact.yaml` (see [chapter 12](12_real_models.ipynb)).

# %% [markdown]
# ## Solutions
#
# Each solution runs with the notebook (on the smoke world in the tests, on the default world in the book);
# open a cell to see its code. Every run is the demo's: `train_cli` with one more override, `demo_steps`-sized
# (reused when it already exists). Where an exercise asks for GPUs, the solution runs the same launcher on
# this machine's CPUs.
#
# ### Exercise 1
#
# The two runs optimise different objectives (COMPACT's logged loss is $\sum_k \alpha_k L_k$ plus the
# consistency term, uniform's is the plain mean of the $L_k$), so their logged losses are not the same
# measurement. The cell also scores both trained students, and the base student, with one measure on held-out
# dev questions: the mean branch loss, uniform weights, no consistency.

# %% tags=["solution", "hide-input"]
from compact.inputs.model import load_model


def read_jsonl(run_dir, name):
    return pd.DataFrame([json.loads(line) for line in open(os.path.join(run_dir, name)) if line.strip()])


def heldout_loss(model, batch):
    """Mean over questions of the mean branch loss: alpha = 1/K, no consistency term."""
    with torch.no_grad():
        return float(compact_objective(model, batch, ObjectiveConfig(weighting="uniform", consistency="none")).loss)


heldout = wb.batch([i for key in ("arith-dev", "variation-dev", "symbolic-dev") for i in wb.instances(key, limit=3)],
                   max_length=max_length)
run_uniform = train_cli(["name=notebook-demo", "method=uniform"])
uniform_log, uniform_alpha = read_jsonl(run_uniform, "log.jsonl"), read_jsonl(run_uniform, "alpha.jsonl")
print(f"uniform run: alpha takes the values {', '.join(f'{a:.6f}' for a in sorted(uniform_alpha.alpha.unique()))} "
      f"(1/K = {1 / len(teachers):.6f})")
print(pd.DataFrame({"COMPACT loss": pd.DataFrame(steps).set_index("step").loss,
                    "COMPACT sum_k alpha_k L_k": pd.DataFrame(steps).set_index("step").loss_sft,
                    "uniform loss (mean L_k)": uniform_log.set_index("step").loss}).round(4), "\n")
pd.Series({"base student": heldout_loss(world.load_student(), heldout),
           f"COMPACT, {demo_steps} steps": heldout_loss(load_model(run_1, device="cpu"), heldout),
           f"uniform, {demo_steps} steps": heldout_loss(load_model(run_uniform, device="cpu"), heldout)}).round(4).to_frame(
    f"held-out mean branch loss, {heldout.n_questions} dev questions (lower is better)")

# %% [markdown]
# ### Exercise 2

# %% tags=["solution", "hide-input"]
from compact.config import read_yaml

run_masked = train_cli(["name=notebook-demo", "objective.mi_variant=masked_mean"])
masked_alpha = read_jsonl(run_masked, "alpha.jsonl")
trained = {inst.id: inst for inst in wb.instances(read_yaml(os.path.join(run_1, "config.yaml"))["data"]["split"])
           if inst.id in set(alpha_rows.id)}  # the demo run's questions
n_tokens = {(i.id, t): len(wb.tokenizer(r)["input_ids"]) for i in trained.values() for t, r in zip(i.teachers, i.rationales)}
length_of = lambda frame: pd.Series([n_tokens[i, t] for i, t in zip(frame.id, frame.teacher)], index=frame.index)
by_teacher = pd.DataFrame({"rationale tokens": length_of(alpha_rows).groupby(alpha_rows.teacher).mean(),
                           "alpha (reference MI)": alpha_rows.groupby("teacher").alpha.mean(),
                           "alpha (masked_mean MI)": masked_alpha.groupby("teacher").alpha.mean()}).reindex(teachers)
longest = by_teacher["rationale tokens"].idxmax()
for col in ("alpha (reference MI)", "alpha (masked_mean MI)"):
    run_alpha = alpha_rows if "reference" in col else masked_alpha
    rho_len = pd.DataFrame({"alpha": run_alpha.alpha, "n": length_of(run_alpha)}).corr(method="spearman").iloc[0, 1]
    print(f"{col}: highest mean alpha {by_teacher[col].idxmax()}; the longest writer {longest} gets "
          f"{by_teacher.loc[longest, col]:.2f} (rank {int(by_teacher[col].rank(ascending=False)[longest])} of "
          f"{len(teachers)}); Spearman(alpha, rationale length) = {rho_len:.2f}")
by_teacher.round(3)

# %% [markdown]
# ### Exercise 3

# %% tags=["solution", "hide-input"]
run_mb1 = train_cli(["name=notebook-demo", "optim.micro_batch_questions=1"])
w_mb = {n: load_file(os.path.join(r, "model.safetensors")) for n, r in (("mb", run_1), ("mb1", run_mb1))}
base_sd = world.load_student().state_dict()
diff_mb = max(float((w_mb["mb"][k] - w_mb["mb1"][k]).abs().max()) for k in w_mb["mb"])
moved_mb = max(float((w_mb["mb"][k] - base_sd[k]).abs().max()) for k in w_mb["mb"] if k in base_sd)
summaries = {n: json.load(open(os.path.join(r, "summary.json"))) for n, r in (("mb", run_1), ("mb1", run_mb1))}
print(f"max |theta(micro_batch_questions={micro_batch_questions}) - theta(micro_batch_questions=1)| = {diff_mb:.2e} "
      f"(training moved parameters by up to {moved_mb:.2e})")
pd.DataFrame({f"{micro_batch_questions} questions per pass": summaries["mb"],
              "1 question per pass": summaries["mb1"]}).loc[["steps", "questions", "time_s", "questions_per_s"]]

# %% [markdown]
# ### Exercise 4
#
# The per-step means mix two things: each step sees other questions, and the student changes. The cell
# plots the trajectories of a run of twice `demo_steps`, then separates the second effect: the same held-out
# questions (those of exercise 1) weighted by the base student, by the demo run's and by the longer run's.

# %% tags=["solution", "hide-input"]
long_steps = 2 * demo_steps
run_long = train_cli(["name=notebook-demo", f"optim.max_steps={long_steps}",
                      f"data.max_instances={long_steps * questions_per_step}"])
long_alpha, long_log = read_jsonl(run_long, "alpha.jsonl"), read_jsonl(run_long, "log.jsonl")
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
long_alpha.pivot_table(index="step", columns="teacher", values="alpha", aggfunc="mean")[teachers].plot(
    ax=axes[0], marker="o")
axes[0].axhline(1 / len(teachers), color="k", ls="--", lw=1)
axes[0].set(ylabel=r"mean $\alpha$", title=f"Teacher weights per step ({long_steps} steps)")
axes[0].legend(fontsize=9, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.15))
long_log.set_index("step")[["loss", "loss_sft"]].plot(ax=axes[1], marker="o")
axes[1].set(title="Loss per step")
fig.tight_layout()
plt.show()
fixed = {}
for label, model in (("base student", world.load_student()), (f"after {demo_steps} steps", load_model(run_1, device="cpu")),
                     (f"after {long_steps} steps", load_model(run_long, device="cpu"))):
    with torch.no_grad():
        a = compact_objective(model, heldout, ObjectiveConfig(consistency="none")).alpha  # alpha needs no pair term
    fixed[label] = pd.Series(a.tolist()).groupby([teachers[int(t)] for t in heldout.teacher]).mean()
fixed = pd.DataFrame(fixed).reindex(teachers)
print(f"mean alpha per teacher on the same {heldout.n_questions} held-out questions "
      f"(largest change from the base student: {float(fixed.sub(fixed['base student'], axis=0).abs().max().max()):.3f}):")
fixed.round(3)

# %% [markdown]
# ### Exercise 5
#
# There is no GPU here. The command below is the same launcher, `accelerate launch` (spelled
# `python -m accelerate.commands.launch`), with the checked-in CPU config `configs/accelerate/cpu_ddp.yaml`:
# two processes over gloo, `accelerator.cpu=true`, and 2 steps of the demo run. On GPUs, swap in
# `configs/accelerate/ddp.yaml` (one process per GPU; `optim.questions_per_step` must be a multiple of its
# `num_processes`) and `configs/train/compact.yaml`, and drop `accelerator.cpu=true` and the demo overrides.

# %% tags=["solution", "hide-input"]
from compact.paths import resolve

run_acc = train_cli(["name=notebook-demo", "accelerator.cpu=true", "optim.max_steps=2"],
                    launcher=["-m", "accelerate.commands.launch", "--config_file", "configs/accelerate/cpu_ddp.yaml",
                              "--main_process_port", free_port()])
acc_log = read_jsonl(run_acc, "log.jsonl")
print(f"processes: {json.load(open(os.path.join(run_acc, 'summary.json')))['num_processes']}; step-1 loss "
      f"{acc_log.loss.iloc[0]:.5f} (one-process demo run: {steps[0]['loss']:.5f})")
gpu_acc = read_yaml(resolve("configs/accelerate/ddp.yaml"))
gpu_train = read_yaml(resolve("configs/train/compact.yaml"))
print(f"on GPUs: configs/accelerate/ddp.yaml starts {gpu_acc['num_processes']} processes "
      f"({gpu_acc['mixed_precision']}); configs/train/compact.yaml takes {gpu_train['optim']['questions_per_step']} "
      f"questions per step, {gpu_train['optim']['questions_per_step'] // gpu_acc['num_processes']} per process")
print("$ accelerate launch --config_file configs/accelerate/ddp.yaml -m compact.trainer --config configs/train/compact.yaml")
