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
