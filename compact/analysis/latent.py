r"""Latent-space shift: how far each method moves OOD representations away from the base student's.

Representation of a question: the student's last hidden state over the chat-formatted prompt, mean-pooled
over its (attention-masked) tokens, or the last prompt token's state. PCA is fitted on the BASE student's
representations :math:`X_0 \in \mathbb{R}^{n\times d}` (centred SVD :math:`X_0 - \mu = U S V^\top`, components =
first rows of :math:`V^\top`) and every method's :math:`X_m` is projected into that same plane:
:math:`Z_m = (X_m - \mu) V_{:k}`. Shift measures:

* centroid distance :math:`\lVert \bar Z_m - \bar Z_0 \rVert_2`;
* mean displacement :math:`\frac1n \sum_i \lVert Z_{m,i} - Z_{0,i} \rVert_2` (same questions, paired);
* both also divided by the base spread :math:`\frac1n\sum_i \lVert Z_{0,i} - \bar Z_0\rVert_2` (scale-free);
* linear CKA (Kornblith et al. 2019) in the full space, a second, basis-free measure:
  :math:`\mathrm{CKA}(X, Y) = \lVert Y_c^\top X_c\rVert_F^2 / (\lVert X_c^\top X_c\rVert_F\,\lVert Y_c^\top Y_c\rVert_F)`
  with column-centred :math:`X_c, Y_c`; 1 means the same geometry up to rotation and isotropic scale.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import torch

from ..data.records import Example
from ..eval.decode import format_prompt


@torch.inference_mode()
def hidden_representations(model, tokenizer, questions: Sequence[str | Example], *,
                           pooling: Literal["mean", "last"] = "mean", batch_size: int = 64) -> np.ndarray:
    """(N, H) float64 representations of chat-formatted questions (last hidden state, mean or last token)."""
    texts = [q.question if isinstance(q, Example) else str(q) for q in questions]
    enc = [tokenizer(format_prompt(tokenizer, t), add_special_tokens=False)["input_ids"] for t in texts]
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    was_training = model.training
    model.eval()
    out = []
    try:
        for s in range(0, len(enc), batch_size):
            chunk = enc[s:s + batch_size]
            L = max(len(e) for e in chunk)
            ids = torch.full((len(chunk), L), pad, dtype=torch.long)  # (B, L) right-padded
            mask = torch.zeros((len(chunk), L), dtype=torch.long)
            for i, e in enumerate(chunk):
                ids[i, :len(e)] = torch.tensor(e)
                mask[i, :len(e)] = 1
            ids, mask = ids.to(device), mask.to(device)
            h = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]  # (B, L, H)
            h = h.to(torch.float64)
            if pooling == "mean":
                m = mask.to(h.dtype)[:, :, None]  # (B, L, 1)
                rep = (h * m).sum(1) / m.sum(1)  # (B, H)
            elif pooling == "last":
                last = mask.sum(1) - 1  # (B,)
                rep = h[torch.arange(h.shape[0], device=device), last]  # (B, H)
            else:
                raise ValueError(f"pooling must be 'mean' or 'last', got {pooling!r}")
            out.append(rep.cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out, axis=0)


@dataclasses.dataclass
class PCA:
    """A PCA basis: ``mean`` (H,), ``components`` (k, H) orthonormal rows, ``explained`` variance ratios (k,)."""
    mean: np.ndarray
    components: np.ndarray
    explained: np.ndarray

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) - self.mean) @ self.components.T  # (N, k)


def fit_pca(X: np.ndarray, n_components: int = 2) -> PCA:
    """PCA by SVD of the centred data; signs fixed so each component's largest loading is positive."""
    X = np.asarray(X, dtype=np.float64)
    mu = X.mean(axis=0)
    _, s, vt = np.linalg.svd(X - mu, full_matrices=False)
    k = min(n_components, vt.shape[0])
    comps = vt[:k].copy()
    flip = np.sign(comps[np.arange(k), np.abs(comps).argmax(axis=1)])
    comps *= np.where(flip == 0, 1.0, flip)[:, None]
    var = s ** 2
    return PCA(mean=mu, components=comps, explained=var[:k] / var.sum() if var.sum() > 0 else np.zeros(k))


def linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Linear CKA between two (N, d1), (N, d2) representations of the same N inputs."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"CKA needs the same inputs: {X.shape[0]} vs {Y.shape[0]} rows")
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    num = np.linalg.norm(Yc.T @ Xc) ** 2
    den = np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc)
    return float(num / den) if den > 0 else float("nan")


def shift_metrics(base: np.ndarray, other: np.ndarray, pca: PCA) -> dict[str, float]:
    """Centroid distance, paired mean displacement (PCA plane, raw and relative to base spread), CKA."""
    if base.shape != other.shape:
        raise ValueError(f"representations differ in shape: {base.shape} vs {other.shape}")
    z0, z1 = pca.transform(base), pca.transform(other)
    spread = float(np.linalg.norm(z0 - z0.mean(0), axis=1).mean())
    centroid = float(np.linalg.norm(z1.mean(0) - z0.mean(0)))
    disp = float(np.linalg.norm(z1 - z0, axis=1).mean())
    return {
        "centroid_distance": centroid,
        "mean_displacement": disp,
        "centroid_distance_rel": centroid / spread if spread > 0 else float("nan"),
        "mean_displacement_rel": disp / spread if spread > 0 else float("nan"),
        "full_mean_displacement": float(np.linalg.norm(other - base, axis=1).mean()),
        "cka": linear_cka(base, other),
    }


def pca_shift(base: np.ndarray, methods: Mapping[str, np.ndarray], *, n_components: int = 2
              ) -> tuple[list[dict[str, Any]], PCA]:
    """One row per method with :func:`shift_metrics` in the PCA basis fitted on ``base``."""
    pca = fit_pca(base, n_components)
    rows = [{"method": name, **shift_metrics(base, X, pca)} for name, X in methods.items()]
    return rows, pca


def plot_pca_shift(base: np.ndarray, methods: Mapping[str, np.ndarray], pca: PCA, *, title: str = ""):
    """Scatter of base vs each method in the base PCA plane (one panel per method, centroids marked)."""
    import matplotlib.pyplot as plt  # no backend switch: a notebook kernel must keep its inline one

    n = max(1, len(methods))
    cols = min(n, 4)  # four panels a row: legible at a book page's width (a row of 14 is not)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False, sharex=True, sharey=True)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    z0 = pca.transform(base)
    for ax, (name, X) in zip(axes.flat, methods.items()):
        z1 = pca.transform(X)
        # points rasterized (the SVG would otherwise hold ~40k vector markers, ~1.8 MB); axes and text stay vector
        ax.scatter(z0[:, 0], z0[:, 1], s=6, c="0.65", label="base", rasterized=True)
        ax.scatter(z1[:, 0], z1[:, 1], s=6, c="tab:red", alpha=0.7, label=name, rasterized=True)
        c0, c1 = z0.mean(0), z1.mean(0)
        ax.annotate("", xy=(c1[0], c1[1]), xytext=(c0[0], c0[1]),
                    arrowprops={"arrowstyle": "->", "color": "black", "lw": 1.2})
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(f"PC1 ({100 * pca.explained[0]:.0f}%)", fontsize=9)
        ax.legend(fontsize=9, loc="best")
    for row in axes:
        row[0].set_ylabel(f"PC2 ({100 * pca.explained[1]:.0f}%)" if len(pca.explained) > 1 else "PC2", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


__all__ = ["hidden_representations", "PCA", "fit_pca", "linear_cka", "shift_metrics", "pca_shift",
           "plot_pca_shift"]
