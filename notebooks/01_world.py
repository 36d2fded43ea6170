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
# 2. Set `n_examples = 5` and read the `variation` records: which sentence is the distractor, and is it ever
#    needed for the answer?
# 3. Build a world with `student.num_kv_heads` equal to `student.num_heads` (copy the smoke config and edit
#    it): the GQA widening quirk of chapter 3 then disappears. Check `arch` to confirm.
# 4. Encode `"In summary"` with the world tokenizer: why is it not a thinking token under the specification's rule?
