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
# # The embedded world

# %% [markdown]
# COMPACT distils several teachers' chain-of-thought rationales into one small student. To study it on a
# laptop we need a world small enough to train in minutes, yet rich enough that reasoning, teacher errors and
# forgetting are real. `compact.world` builds one from a config, cached by the config's hash:
#
# - **in-distribution tasks** (what distillation trains on): `arith` (2-4 step word problems), `variation`
#   (the same with an irrelevant distractor sentence) and `symbolic` (bracketed expressions). Every record
#   carries its gold computation as `meta["steps"]`, which the simulated teachers of
#   [the next chapter](02_teachers.ipynb) render and corrupt;
# - **out-of-distribution tasks** (what the student may forget): `mcq` and `yesno` questions about a fixed
#   knowledge base of animals;
# - a **byte-level BPE tokenizer** trained on the world's own text, digits split one by one, with a chat
#   template, in which every thinking word ("So", "Wait", "Therefore", ...) is a single token;
# - a **base student**: a tiny Qwen2 (grouped-query attention, tied embeddings) pretrained by next-token
#   prediction on a base corpus of stories, arithmetic facts and the knowledge base,
#
# $$\mathcal L_{\text{pretrain}} = -\frac1N \sum_t \log p_\theta(x_t \mid x_{<t}).$$
#
# The base corpus holds no in-distribution question and no step-by-step rationale: the base student knows
# the language and the answer format (`The answer is X.`), and distillation has reasoning left to teach.

# %% tags=["parameters"]
profile = "smoke"
results = "artifacts/smoke/results"
world_config = "configs/world/smoke.yaml"
generate_config = "configs/generate/smoke.yaml"
n_examples = 2  # records shown per task
seed = 0

# %%
import json

import matplotlib.pyplot as plt
import pandas as pd

from compact.config import load
from compact.log import quiet_progress_bars, seed_everything
from compact.paths import resolve
from compact.world.build import WorldConfig, build_world
from compact.method.adaptability import THINKING_WORDS, thinking_token_ids

quiet_progress_bars()  # no widget progress bars in the book
seed_everything(seed)
world = build_world(load(WorldConfig, resolve(world_config)))  # cached: built once per config hash
summary = world.summary()
print("world:", world.path.relative_to(resolve(".")))

# %% [markdown]
# ## Tasks and splits
#
# Sizes per task and split (the smoke world is tiny; `configs/world/default.yaml` is the one the book's
# results use).

# %%
sizes = pd.DataFrame(summary["sizes"]).T[["train", "dev", "test"]]
sizes["kind"] = ["in-distribution" if t in world.id_tasks else "out-of-distribution" for t in sizes.index]
sizes

# %% [markdown]
# A few records. In-distribution records carry the gold computation: `op`, `args`, the `refs` that say
# which earlier step feeds an argument, and the `value` of each step; the last step's value is the answer.

# %%
for task in world.tasks:
    for ex in world.examples(task, "dev")[:n_examples]:
        print(f"[{task}] {ex.question!r}\n   gold answer: {ex.answer} ({ex.answer_type})")
        for st in ex.meta.get("steps", []):
            print(f"     step: {st['args'][0]} {st['op']} {st['args'][1]} = {st['value']:<5} refs={st['refs']}  "
                  f"({st['desc']})")
        for fact in ex.meta.get("facts", []):
            print(f"     fact: {fact}")
    print()

# %% [markdown]
# ## The tokenizer
#
# Numbers are spelled digit by digit, so arithmetic is a sequence of single-digit predictions, and the chat
# template wraps a question as the student will always see it. The thinking-token rule of the
# [specification](../specification.md) (each word
# encoded bare and with a leading space; only single-token encodings count) is the same function for the
# world tokenizer and for a real one.

# %%
tok = world.tokenizer
ex = world.examples("arith", "dev")[0]
chat = tok.apply_chat_template([{"role": "user", "content": ex.question},
                                {"role": "assistant", "content": f"So, 3 + 4 = 7.\nThe answer is {ex.answer}."}],
                               tokenize=False)
ids = tok.apply_chat_template([{"role": "user", "content": ex.question},
                               {"role": "assistant", "content": f"So, 3 + 4 = 7.\nThe answer is {ex.answer}."}],
                              tokenize=True, return_dict=False)
print(chat)
print(len(ids), "tokens; the last 16:", [tok.decode([i]) for i in ids[-16:]])
think = thinking_token_ids(tok)
print(f"{len(think)} thinking-token ids, e.g.", [tok.decode([i]) for i in think[:10]])
missing = [w for w in THINKING_WORDS if " " not in w and len(tok.encode(" " + w, add_special_tokens=False)) != 1]
print("single-word thinking words that are NOT one token with a leading space:", missing or "none")

# %% [markdown]
# ## The base student
#
# A Qwen2 with fewer key/value heads than query heads: the grouped-query widening quirk of the consensus
# score ([chapter 3](03_consensus.ipynb)) matters for it.

# %%
student = world.load_student()
cfg = student.config
arch = {"parameters": sum(p.numel() for p in student.parameters()), "layers": cfg.num_hidden_layers,
        "hidden": cfg.hidden_size, "query heads": cfg.num_attention_heads,
        "key/value heads": cfg.num_key_value_heads, "vocabulary": cfg.vocab_size}
pd.Series(arch, name="base student").to_frame()

# %% tags=["hide-input"]
log_rows = [json.loads(line) for line in (world.path / "pretrain_log.jsonl").read_text().splitlines() if line]
steps = [r["step"] for r in log_rows]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
axes[0].plot(steps, [r["loss"] for r in log_rows], alpha=0.5, label="batch loss")
axes[0].plot(steps, [r["loss_ema"] for r in log_rows], label="moving average")
axes[0].set(xlabel="pretraining step", ylabel="next-token loss (nats)", title="Pretraining the base student")
axes[0].legend()
# the calibration table (test split): facts, knowledge (log-likelihood, as the OOD tasks are scored), and
# direct answers to the in-distribution questions
calib = json.loads((world.path / "calibration.json").read_text())
acc = {r["gate"]: r["value"] for r in calib["rows"]}
chance = {r["gate"]: r["baseline"] for r in calib["rows"]}
axes[1].bar(list(acc), [acc[t] for t in acc], color=["C1" if t in ("yesno", "mcq") else "C0" for t in acc])
for i, t in enumerate(acc):
    axes[1].hlines(chance[t], i - 0.4, i + 0.4, colors="k", linestyles="--")
axes[1].set(ylim=(0, 1), ylabel="accuracy (test split)",
            title="Base student before distillation\n(dashed: chance / majority)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## What we saw

# %%
first, last = log_rows[0]["loss_ema"], log_rows[-1]["loss_ema"]
id_acc = calib["id_direct"]
ood_acc = {t: calib["ood"][t]["accuracy"] for t in world.ood_tasks}
print(f"The {profile} world has {sum(sizes['train'])} training questions over {len(sizes)} tasks and a "
      f"{arch['parameters']:,}-parameter student ({arch['query heads']} query heads sharing "
      f"{arch['key/value heads']} key/value heads).")
print(f"Pretraining took the loss from {first:.2f} to {last:.2f} nats in {summary['pretrain']['steps']} steps.")
print(f"Facts: {100 * calib['facts']['mean']:.1f}% of every single-operation fact (worst operation "
      f"{100 * calib['facts']['worst']:.1f}%).")
print("Test accuracy answering directly, in-distribution:", {k: round(v, 2) for k, v in id_acc.items()},
      "| out-of-distribution (log-likelihood):", {k: round(v, 2) for k, v in ood_acc.items()})
print("The student starts with little in-distribution skill: the rationales of the teachers are what it "
      "will learn from." if max(id_acc.values(), default=0) < 0.5 else
      "The base student already solves many in-distribution questions in this world.")

# %% [markdown]
# ## Exercises
#
# 1. Set `world_config = "configs/world/default.yaml"` and `generate_config = "configs/generate/world.yaml"`, and rerun: how do the pretraining curve and the base
#    accuracies change with 1,500 pretraining steps instead of the smoke world's 30?
# 2. Set `n_examples = 5` and read the `variation` records: which sentences are distractors
#    (`meta["distractors"]`), and is one ever needed for the answer?
# 3. Build a world with `student.num_kv_heads` equal to `student.num_heads` (copy the smoke config and edit
#    it): the GQA widening quirk of chapter 3 then disappears. Check `arch` to confirm.
# 4. Encode `"In summary"` with the world tokenizer: why is it not a thinking token under the specification's rule?

# %% [markdown]
# ## Solutions
#
# Each solution runs with the notebook (on the smoke world in the tests, on the default world in the book);
# open a cell to see its code. Where an exercise asks for another world, the solution reads what the default
# profile published instead of building that world here.
#
# ### Exercise 1
#
# The cell sets this notebook's world beside the default one: the two configs' student and corpus (read with
# the package's config loader), the base student's calibration on this world and the one the default profile
# published (`results/tables/calibration/calibration`), and the pretraining curves of every world of the two
# configs already built on this machine (it builds none).

# %% tags=["solution", "hide-input"]
from compact.config import config_hash
from compact.paths import results_dir
from compact.provenance import is_complete
from compact.publish.results import read_table
from compact.world.build import world_path

world_cfgs = {name: load(WorldConfig, resolve(f"configs/world/{name}.yaml")) for name in ("smoke", "default")}
published_gates = {r["gate"]: r["value"] for r in read_table("calibration/calibration", root=results_dir())}


def world_facts(cfg):
    s = cfg.student
    return {"pretraining steps": s.steps, "batch size": s.batch_size, "hidden size": s.hidden_size,
            "layers": s.num_layers, "one-step question docs": cfg.corpus.single_step_docs,
            "fact sweeps": cfg.corpus.fact_sweeps}


ex1 = pd.DataFrame({
    f"this notebook ({world_config})": {**world_facts(world.cfg),
                                        **{f"accuracy: {g}": f"{v:.2f}" for g, v in acc.items()}},
    "default world (published)": {**world_facts(world_cfgs["default"]),
                                  **{f"accuracy: {g}": f"{v:.2f}" for g, v in published_gates.items()}}})
if world.path == world_path(world_cfgs["default"]):
    print("This notebook already runs on the default world: both columns describe the same world.")
print(ex1.to_string())
fig, ax = plt.subplots(figsize=(6, 3.2))
for name, wcfg in world_cfgs.items():
    log_path = world_path(wcfg) / "pretrain_log.jsonl"
    if not (is_complete(world_path(wcfg)) and log_path.is_file()):
        print(f"the {name} world is not built on this machine: its curve is not drawn")
        continue
    rows1 = [json.loads(line) for line in log_path.read_text().splitlines() if line]
    ax.plot([r["step"] for r in rows1], [r["loss_ema"] for r in rows1], label=f"{name} world")
    print(f"{name} world: moving-average loss {rows1[0]['loss_ema']:.2f} -> {rows1[-1]['loss_ema']:.2f} nats "
          f"in {wcfg.student.steps} steps")
ax.set(xscale="log", xlabel="pretraining step (log scale)", ylabel="next-token loss (nats)",
       title="Pretraining, smoke versus default world")
ax.legend(fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Exercise 2
#
# The cell prints the first five `variation` records with their distractor sentences and the operands of the
# gold steps, then deletes the distractors from every dev question and checks that each operand the gold
# steps read from the question (a step argument without a `ref`) is still there.

# %% tags=["solution", "hide-input"]
import re

variation_dev = world.examples("variation", "dev")
for ex2 in variation_dev[:5]:
    operands = [a for st in ex2.meta["steps"] for a, r in zip(st["args"], st["refs"]) if r is None]
    print(f"{ex2.question}\n   distractors: {ex2.meta['distractors']}\n   operands read from the question: "
          f"{operands}; gold answer {ex2.answer}\n")


def needs_distractor(ex):
    """True if an operand the gold steps read from the question appears only in a distractor sentence."""
    rest = ex.question
    for d in ex.meta["distractors"]:
        rest = rest.replace(d, "")
    numbers = set(re.findall(r"\d+", rest))
    return any(str(a) not in numbers for st in ex.meta["steps"] for a, r in zip(st["args"], st["refs"])
               if r is None)


n_need = sum(needs_distractor(e) for e in variation_dev)
n_distr = sum(len(e.meta["distractors"]) for e in variation_dev)
print(f"{len(variation_dev)} variation dev records, {n_distr} distractor sentences: {n_need} record(s) need a "
      "distractor's number to reach the gold answer.")

# %% [markdown]
# ### Exercise 3
#
# Building a world takes minutes, so the cell does not: it changes the field in the loaded config
# (`compact.config.replace`), shows that the changed config is another world (another hash, another cache
# folder), and instantiates that world's *untrained* student with the package's own constructor
# (`compact.world.student.build_model`), which is enough to read its architecture. With as many key/value heads
# as query heads, `widen_keys` has nothing to widen, and the two widenings of chapter 3 give the same
# consensus scores (here on random embeddings; with the GQA student they differ).

# %% tags=["solution", "hide-input"]
import torch

from compact.config import replace
from compact.method.consensus import consensus_scores, find_attention_projections
from compact.world.student import build_model

mha_cfg = replace(world.cfg, **{"student.num_kv_heads": world.cfg.student.num_heads})
print(f"num_kv_heads {world.cfg.student.num_kv_heads} -> {mha_cfg.student.num_kv_heads}: config hash "
      f"{config_hash(world.cfg)} -> {config_hash(mha_cfg)} (would be built at "
      f"{world_path(mha_cfg).relative_to(resolve('.'))})")
mha_student = build_model(mha_cfg.student, tok, seed=mha_cfg.seed)  # untrained: the architecture only
rows3, gen3 = {}, torch.Generator().manual_seed(seed)
for name, model in (("base student (GQA)", student), ("num_kv_heads = num_heads", mha_student)):
    c = model.config
    proj3 = find_attention_projections(model)
    emb3 = torch.randn(4, c.hidden_size, generator=gen3)  # 4 random "branch embeddings" of one question
    with torch.no_grad():
        gap = (consensus_scores(emb3, proj3.q_proj, proj3.k_proj, proj3.n_heads, proj3.n_kv_heads,
                                torch.zeros(4, dtype=torch.long), "element")
               - consensus_scores(emb3, proj3.q_proj, proj3.k_proj, proj3.n_heads, proj3.n_kv_heads,
                                  torch.zeros(4, dtype=torch.long), "head_block")).abs().max()
    rows3[name] = {"parameters": sum(p.numel() for p in model.parameters()), "query heads": c.num_attention_heads,
                   "key/value heads": c.num_key_value_heads, "k_proj width": proj3.k_proj.out_features,
                   "q_proj width": proj3.q_proj.out_features, "max |C element - C head_block|": float(gap)}
pd.DataFrame.from_dict(rows3, orient="index").round(4)

# %% [markdown]
# ### Exercise 4
#
# The rule encodes each thinking word bare and with a leading space and keeps an encoding only if it is
# exactly one token. The tokenizer's pre-tokenizer cuts text into words *before* any BPE merge (a word keeps at
# most one leading space or mark), so no token can span two words: "In summary" is always at least two tokens,
# and neither piece is a thinking word on its own: the phrase is in `THINKING_WORDS` and adds no id. The cell
# shows the cuts and the encodings.

# %% tags=["solution", "hide-input"]
phrase = "In summary"
print("pre-tokenizer cuts:", [w.replace("\u0120", " ")  # byte-level BPE writes a space as "\u0120"
                              for w, _ in tok.backend_tokenizer.pre_tokenizer.pre_tokenize_str(phrase)])
for text in (phrase, " " + phrase):
    ids4 = tok.encode(text, add_special_tokens=False)
    print(f"{text!r}: {len(ids4)} tokens {[tok.decode([i]) for i in ids4]}, thinking ids among them: "
          f"{[tok.decode([i]) for i in ids4 if i in think] or 'none'}")
print(f"'{phrase}' in THINKING_WORDS: {phrase in THINKING_WORDS}; ids it adds to thinking_token_ids: "
      f"{thinking_token_ids(tok, [phrase]) or 'none'}")
