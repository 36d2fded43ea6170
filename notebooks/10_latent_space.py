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
# 1. Switch the pooling to the last prompt token (`compact analyze --set analysis=latent --set pooling=last`):
#    does the ranking of methods by shift stay the same?
# 2. Train COMPACT with a ten times larger learning rate. How do the PCA shift and OOD accuracy move together?
# 3. CKA and centroid distance can disagree. Construct (in a cell) a transformation of the base representations
#    that leaves CKA at 1 but moves the centroid far away.
# 4. Does a larger shift always mean lower OOD accuracy? Plot one against the other across methods.
