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
# # Latent space and forgetting
#
# Distillation on arithmetic should not erase what the student knew before: the facts behind the
# out-of-distribution (OOD) tasks. Two views of the same question:
#
# **Representations.** For every OOD question we take the student's last hidden state, mean-pooled over the
# prompt tokens. PCA is fitted on the *base* student's representations $X_0$ and every method's $X_m$ is
# projected into that plane, $Z_m = (X_m - \mu_0) V_{:2}$. We measure the centroid distance
# $\lVert \bar Z_m - \bar Z_0\rVert$, the mean paired displacement
# $\frac1n\sum_i \lVert Z_{m,i} - Z_{0,i}\rVert$, and linear CKA in the full space
# $\mathrm{CKA}(X_0, X_m) = \lVert X_m^\top X_0\rVert_F^2 / (\lVert X_0^\top X_0\rVert_F \lVert X_m^\top X_m\rVert_F)$
# (centred; 1 = same geometry).
#
# **Behaviour.** OOD accuracy before and after distillation, per method.
#
# The claim under test: COMPACT keeps OOD representations closer to the base student than "Direct Avg.",
# the parameter average of single-teacher students.

# %% tags=["parameters"]
profile = "smoke"
results = "artifacts/smoke/results"
world_config = "configs/world/smoke.yaml"
generate_config = "configs/generate/smoke.yaml"

# %%
import pandas as pd
from IPython.display import display

from compact.paths import resolve
from compact.publish.results import figure, read_table

root = resolve(results)

# %% [markdown]
# ## PCA shift of OOD representations

# %%
shift = pd.DataFrame(read_table("latent/pca_shift", root))
shift.sort_values("centroid_distance").style.hide(axis="index").format(precision=3)

# %%
display(figure("latent/pca_shift", root))  # the PNG; the SVG beside it is the vector copy

# %% [markdown]
# ## Forgetting: OOD accuracy before and after

# %% tags=["hide-input"]
forget = pd.DataFrame(read_table("forgetting/forgetting", root))
display(forget.style.hide(axis="index").format(precision=3))
display(figure("forgetting/forgetting", root))

# %% [markdown]
# ## What we measured

# %%
key = "method" if "method" in shift else shift.columns[0]
by = shift.set_index(key)
order = by.sort_values("centroid_distance")
print("closest to the base student (centroid distance in the base PCA plane): "
      + ", ".join(f"{m} {v:.3f}" for m, v in order["centroid_distance"].items()))
if "compact" in by.index and "direct-avg" in by.index:
    c, d = by.loc["compact"], by.loc["direct-avg"]
    closer = c["centroid_distance"] < d["centroid_distance"]
    print(f"COMPACT's centroid shift {c['centroid_distance']:.3f} vs Direct Avg. {d['centroid_distance']:.3f}: "
          f"COMPACT is {'closer to' if closer else 'farther from'} the base student; CKA {c['cka']:.3f} vs {d['cka']:.3f}.")
fkey = "method" if "method" in forget else forget.columns[0]
for _, r in forget.iterrows():
    cols = [c for c in forget.columns if c.startswith("delta")]
    print(f"{r[fkey]}: " + ", ".join(f"{c} {r[c]:+.3f}" for c in cols))

# %% [markdown]
# ## Exercises
#
# 1. Switch the pooling to the last prompt token (`compact analyze --config configs/eval/analyze_latent.yaml
#    --set pooling=last --set models.<method>=<its folder>`): does the ranking of methods by shift stay the same?
# 2. Train COMPACT with a ten times larger learning rate. How do the PCA shift and OOD accuracy move together?
# 3. CKA and centroid distance can disagree. Construct (in a cell) a transformation of the base representations
#    that leaves CKA at 1 but moves the centroid far away.
# 4. Does a larger shift always mean lower OOD accuracy? Plot one against the other across methods.

# %% [markdown]
# ## Solutions
#
# Each solution runs with the notebook (on the smoke profile in the tests, on the default profile in the book);
# open a cell to see its code. Where an exercise asks for new representations or a new training run, the
# solution answers from what the profile already published (the shift table, the forgetting table, the trained
# parameters) and prints the command that measures the rest.
#
# ### Exercise 1
#
# The published table has mean pooling only; last-token representations need a forward pass of every model,
# which is what the printed command does (it writes its own table under another results root, so the book's
# table is not overwritten). What the table can show is how much the ranking depends on *how* the shift is
# measured: the cell ranks the methods by each of its measures and gives their rank correlations. If the
# ranking already moves between measures of the same representations, a different pooling can move it too.
# The command at the end uses this profile's model folders (the first seed of each method, as in the table).

# %% tags=["solution", "hide-input"]
from compact.analysis.validation import spearman
from compact.publish.registry import read_registry

reg10 = read_registry(root)
ranks10 = pd.DataFrame({"centroid distance": shift.set_index("method")["centroid_distance"],
                        "mean displacement": shift.set_index("method")["mean_displacement"],
                        "full-space displacement": shift.set_index("method")["full_mean_displacement"],
                        "1 - CKA": 1 - shift.set_index("method")["cka"]}).rank(ascending=True).astype(int)
print("rank of each method by each measure of the mean-pooled shift (1 = closest to the base student):")
print(ranks10.sort_values("centroid distance").head(20).to_string())
print("\nSpearman correlation between the rankings:")
print(pd.DataFrame({a: {b: round(spearman(ranks10[a], ranks10[b]), 2) for b in ranks10} for a in ranks10}).to_string())
first10 = {}
for mid10, m10 in sorted({**reg10.runs, **reg10.merges}.items(), key=lambda kv: kv[1].seed):
    first10.setdefault(m10.name, m10.path)
pick10 = [n for n in ("compact", "uniform", "direct-avg") if n in first10] or list(first10)[:3]
print("\nto measure it (last-token pooling, written under artifacts/pooling-last, not into the book's results):")
print(f"  compact analyze --config configs/eval/analyze_latent.yaml --set pooling=last --set name=latent-last \\\n"
      f"    --set world={reg10.config.get('world')} --set limit={reg10.config.get('latent_limit')} "
      f"--set results_root=artifacts/pooling-last \\\n"
      + " \\\n".join(f"    --set models.{n}={first10[n]}" for n in pick10))

# %% [markdown]
# ### Exercise 2
#
# No run of this profile used another learning rate, so the answer needs a new run (the cell prints its
# command). What the published runs do show is the axis a larger learning rate moves a run along: how far
# training carried the parameters from the base student. The cell measures, for every method's first seed,
# the relative parameter change $\lVert\theta_m - \theta_0\rVert / \lVert\theta_0\rVert$ from the saved weights,
# and sets it beside the PCA shift and the OOD accuracy after distillation. If the shift grows and OOD accuracy
# falls with the parameter change across methods, a ten times larger step should push COMPACT the same way
# (or destabilise it, which the curve of its loss in `log.jsonl` would show first).

# %% tags=["solution", "hide-input"]
import numpy as np

from compact.baselines.merging import load_state_dict
from compact.config import read_yaml

base_sd10 = load_state_dict(resolve(reg10.world["path"]) / "student")
norm10 = float(np.sqrt(sum(float((v.double() ** 2).sum()) for v in base_sd10.values())))
move10 = {}
for n10, path10 in first10.items():
    if not (resolve(path10) / "model.safetensors").is_file():
        continue
    sd10 = load_state_dict(path10)
    common10 = [k for k in base_sd10 if k in sd10 and sd10[k].shape == base_sd10[k].shape]
    move10[n10] = float(np.sqrt(sum(float(((sd10[k].double() - base_sd10[k].double()) ** 2).sum())
                                    for k in common10))) / norm10
lr10 = {m.name: read_yaml(resolve(m.path) / "config.yaml").get("optim", {}).get("lr")
        for m in reg10.runs.values() if (resolve(m.path) / "config.yaml").is_file()}
both10 = shift.set_index("method")[["centroid_distance", "cka"]].join(
    forget.set_index("method")[["ood_after", "delta"]], how="inner")
both10["parameter change"] = pd.Series(move10)
both10["lr"] = pd.Series(lr10)
print(both10.sort_values("parameter change").round(3).head(20).to_string())
ok10 = both10.dropna(subset=["parameter change"])
if len(ok10) > 2:
    print(f"\nSpearman across {len(ok10)} methods: parameter change vs centroid distance "
          f"{spearman(ok10['parameter change'], ok10['centroid_distance']):+.2f}, parameter change vs OOD after "
          f"{spearman(ok10['parameter change'], ok10['ood_after']):+.2f}, centroid distance vs OOD after "
          f"{spearman(ok10['centroid_distance'], ok10['ood_after']):+.2f}")
if "compact" in lr10:
    print(f"\nto measure it: add `- {{name: compact-lr10, config: configs/train/compact.yaml, overrides: "
          f"[optim.lr={10 * lr10['compact']:g}], group: variant}}` to runs: in configs/pipeline/{reg10.profile}.yaml "
          f"and run `compact pipeline --profile {reg10.profile}` (the other runs are reused)")

# %% [markdown]
# ### Exercise 3
#
# Linear CKA is invariant to a translation, to a rotation and to a uniform scaling of the representations
# (it centres both sides and normalises), while the centroid distance is exactly the size of the translation
# seen in the base PCA plane. So $X_1 = s\,X_0 Q + t$, with $Q$ orthogonal, leaves CKA at 1 and moves the
# centroid as far as $t$ says; conversely, noise added to every point lowers CKA without moving the centroid.
# The cell builds both on synthetic "base representations" and measures them with the package's
# `shift_metrics` (the functions behind the table above).

# %% tags=["solution", "hide-input"]
import matplotlib.pyplot as plt

from compact.analysis.latent import fit_pca, linear_cka, shift_metrics

rng10 = np.random.default_rng(0)
X0_10 = rng10.normal(size=(200, 64)) * np.linspace(3.0, 0.2, 64)  # anisotropic, like hidden states
pca10 = fit_pca(X0_10)
Q10, _ = np.linalg.qr(rng10.normal(size=(64, 64)))  # a random orthogonal matrix
t10 = 10 * X0_10.std(0).max() * pca10.components[0]  # far along the base's first principal axis
cases10 = {
    "translate by t": X0_10 + t10,
    "rotate Q, scale 2, translate": 2.0 * (X0_10 - X0_10.mean(0)) @ Q10 + X0_10.mean(0) + t10,
    "noise, same centroid": X0_10 + rng10.normal(scale=2.0, size=X0_10.shape),
}
cases10["noise, same centroid"] -= cases10["noise, same centroid"].mean(0) - X0_10.mean(0)
print(pd.DataFrame({k: shift_metrics(X0_10, v, pca10) for k, v in cases10.items()}).T[
    ["cka", "centroid_distance", "centroid_distance_rel", "mean_displacement"]].round(3).to_string())
print(f"check: linear_cka(X0, X0 @ Q) = {linear_cka(X0_10, X0_10 @ Q10):.6f}")
fig10, ax10 = plt.subplots(figsize=(6.5, 3.8))
for lab10, X10 in {"base": X0_10, "translate by t": cases10["translate by t"],
                   "noise, same centroid": cases10["noise, same centroid"]}.items():
    Z10 = pca10.transform(X10)
    ax10.scatter(Z10[:, 0], Z10[:, 1], s=8, alpha=0.6, label=lab10)
ax10.set_xlabel("base PC 1", fontsize=10)
ax10.set_ylabel("base PC 2", fontsize=10)
ax10.legend(fontsize=9)
fig10.tight_layout()
plt.show()

# %% [markdown]
# ### Exercise 4
#
# One point per method (its first seed): the centroid shift of its OOD representations against its OOD accuracy
# after distillation, with the rank correlation across methods. A negative correlation says "more shift, less
# kept", but a single method off the trend is enough to answer "always": the cell lists the pairs of methods
# where the one that moved farther nonetheless kept more.

# %% tags=["solution", "hide-input"]
pts10 = both10.dropna(subset=["centroid_distance", "ood_after"])
fig10b, ax10b = plt.subplots(figsize=(7.5, 4.5))
ax10b.scatter(pts10["centroid_distance"], 100 * pts10["ood_after"], s=30)
for m10, row10 in pts10.iterrows():
    ax10b.annotate(m10, (row10["centroid_distance"], 100 * row10["ood_after"]), fontsize=9,
                   xytext=(3, 3), textcoords="offset points")
ax10b.set_xlabel("centroid distance from the base student (base PCA plane)", fontsize=10)
ax10b.set_ylabel("OOD accuracy after distillation (%)", fontsize=10)
ax10b.grid(alpha=0.3)
fig10b.tight_layout()
plt.show()
if len(pts10) > 2:
    print(f"Spearman(centroid distance, OOD after) across {len(pts10)} methods: "
          f"{spearman(pts10['centroid_distance'], pts10['ood_after']):+.2f}; "
          f"Spearman(CKA, OOD after): {spearman(pts10['cka'], pts10['ood_after']):+.2f}")
names10 = list(pts10.index)
against10 = [(a, b) for a in names10 for b in names10
             if pts10.loc[a, "centroid_distance"] > pts10.loc[b, "centroid_distance"]
             and pts10.loc[a, "ood_after"] > pts10.loc[b, "ood_after"]]
print(f"{len(against10)} of {len(names10) * (len(names10) - 1) // 2} pairs go against 'more shift, lower OOD'"
      + (", e.g. " + "; ".join(f"{a} moved farther than {b} and kept more" for a, b in against10[:3])
         if against10 else ""))
