r"""The COMPACT objective: alpha-weighted branch losses plus a pairwise consistency term.

For one question with K branches (scores from :mod:`compact.method.difficulty`, :mod:`compact.method.consensus`,
:mod:`compact.method.adaptability`, fused into :math:`\alpha` by :mod:`compact.method.fusion`, all detached):

.. math::

    \mathcal L_{\text{total}} = \sum_k \alpha_k L_k
        + \lambda \sum_{i<j,\ \alpha_i\alpha_j \ge 10^{-4}} \alpha_i \alpha_j D_{ij}

- ``consistency="sequence"`` (reference): position by position over the whole padded row,
  :math:`D_{ij} = \sum_t m_{ij,t}\,[\mathrm{KL}(p_{i,t}\|p_{j,t}) + \mathrm{KL}(p_{j,t}\|p_{i,t})]
  / \max(1, \sum_t m_{ij,t})`, :math:`m_{ij} = \text{mask}_i \cdot \text{mask}_j`,
  :math:`p_{k,t} = \operatorname{softmax}(z_{k,t})` over the full vocabulary.
- ``consistency="answer_span"`` (variant, MCC-KD style): only the distributions that predict the final
  answer's tokens, aligned by answer-token index (branch i's a-th answer token against branch j's a-th),
  :math:`D_{ij} = \frac{1}{n}\sum_{a<n} \tfrac12[\mathrm{KL}(p_{i,a}\|p_{j,a}) + \mathrm{KL}(p_{j,a}\|p_{i,a})]`,
  :math:`n = \min(|\text{span}_i|, |\text{span}_j|)`. Spans come from ``batch.answer_span`` or are located
  automatically (:func:`locate_answer_spans`); a pair with an empty span is skipped and counted.
- ``consistency="none"``: no consistency term.

Batches hold B questions x K branches. ``loss`` is the MEAN over questions of each question's total
(B = 1 is exactly the released per-question loss); ``loss_sum`` is the sum. For gradient accumulation
over micro-batches of one batch of Q questions, call ``backward()`` on ``out.loss_sum / Q`` in every
micro-batch (equivalently ``out.loss * n_micro_questions / Q``): alpha is per question, so the summed
gradient equals the full batch's, however the batch is split (across processes too, with DDP averaging
when every rank scales by its own share of the global question count).

Two implementations, same numbers (``path``):

- ``"reference"``: a loop over questions and pairs, literally as released: log-softmax recomputed for
  every pair (memory grows with K^2 L V).
- ``"fast"``: vectorised over questions and pairs; log-softmax computed once per branch and chunk inside
  one fused autograd function that also gives the cross-entropy, with an analytic backward that
  recomputes each chunk instead of storing V-sized intermediates. Chunks hold at most ``chunk_tokens``
  (row, position) entries of the widest V-sized work tensor (branches or pairs).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import CompactError
from .adaptability import mi_proxy
from .batch import Batch
from .consensus import (
    AttentionProjections,
    consensus_scores,
    find_attention_projections,
)
from .difficulty import IGNORE_INDEX, branch_loss, last_nonpad, shifted_labels
from .fusion import check_static_weights, fuse
from .shards import full, is_sharded

#: weightings whose alpha is computed from the three scores (shuffled permutes COMPACT's alpha afterwards)
SCORED = ("compact", "shuffled")


@dataclass
class ObjectiveConfig:
    """How the objective is computed; defaults are the released implementation's (reference mode)."""

    path: Literal["reference", "fast"] = "fast"  # implementation; same numbers
    beta: tuple[float, float, float] = (1.0, 1.0, 0.5)  # (MI, consensus, difficulty) weights in S
    temperature: float = 1.0  # alpha = softmax(S / temperature)
    lambda_consistency: float = 0.1  # weight of the pairwise consistency term
    pair_threshold: float = 1e-4  # pairs with alpha_i * alpha_j below this are skipped
    weighting: Literal["compact", "uniform", "static", "random", "shuffled"] = "compact"
    static_weights: list[float] | None = None  # per teacher, for weighting="static"
    use_mi: bool = True  # ablations: drop a score's term from S
    use_consensus: bool = True
    use_difficulty: bool = True
    mi_variant: Literal["reference", "masked_mean"] = "reference"
    gqa_widening: Literal["element", "head_block"] = "element"
    consistency: Literal["sequence", "answer_span", "none"] = "sequence"
    chunk_tokens: int = 256  # fast path: rows (branches or pairs) x positions per chunk of V-sized work
    forward_buckets: int = 4  # the forward runs on this many groups of similar-length rows (1 = one padded batch)
    share_prompts: bool = True  # fast path: each question's prompt runs once for its K branches (same numbers)

    # added later: at these values (same numbers) earlier configs hash as before
    HASH_DEFAULTS: ClassVar[dict[str, Any]] = {"share_prompts": True}

    def validate(self) -> None:
        if len(self.beta) != 3:
            raise ValueError(f"beta must have 3 entries (MI, consensus, difficulty), got {len(self.beta)}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.lambda_consistency < 0:
            raise ValueError(f"lambda_consistency must be >= 0, got {self.lambda_consistency}")
        if self.pair_threshold < 0:
            raise ValueError(f"pair_threshold must be >= 0, got {self.pair_threshold}")
        if self.chunk_tokens < 1:
            raise ValueError(f"chunk_tokens must be >= 1, got {self.chunk_tokens}")
        if self.forward_buckets < 1:
            raise ValueError(f"forward_buckets must be >= 1, got {self.forward_buckets}")
        if self.weighting == "static" or self.static_weights is not None:
            check_static_weights(self.static_weights)
        for name, allowed in (("path", ("reference", "fast")),
                              ("weighting", ("compact", "uniform", "static", "random", "shuffled")),
                              ("mi_variant", ("reference", "masked_mean")),
                              ("gqa_widening", ("element", "head_block")),
                              ("consistency", ("sequence", "answer_span", "none"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {list(allowed)}, got {getattr(self, name)!r}")


@dataclass
class ObjectiveOutput:
    """Everything one objective evaluation produces; only ``loss``/``loss_sum`` carry gradients."""

    loss: Tensor  # scalar: mean over questions of each question's total; what backward() is called on
    loss_sft: Tensor  # sum_k alpha_k L_k, mean over questions
    loss_consistency: Tensor  # pair sum before lambda, mean over questions
    per_branch_loss: Tensor  # (N,) L_k, detached
    alpha: Tensor  # (N,) detached
    mi: Tensor | None  # (N,) raw adaptability M_k (None: not computed, see compact_objective)
    consensus: Tensor  # (N,) raw consensus C_k (zeros when not computed)
    difficulty: Tensor  # (N,) raw difficulty (= per_branch_loss)
    fused: Tensor | None  # (N,) S_k (None with mi)
    loss_sum: Tensor | None = None  # scalar: sum over questions of each question's total (differentiable)
    n_questions: int = 1
    per_question_loss: Tensor | None = None  # (B,) each question's total, detached
    n_pairs: int = 0  # pairs that entered the consistency term
    n_pairs_skipped: int = 0  # pairs below pair_threshold
    n_pairs_no_span: int = 0  # answer_span pairs skipped because a branch has no located answer span
    stats: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- spans
def locate_answer_spans(input_ids: Tensor, attention_mask: Tensor, gold_ids: Tensor, gold_mask: Tensor,
                        group: Tensor, assistant_start: Tensor | None = None) -> Tensor:
    """(N, L) bool: the LAST occurrence of the question's gold token sequence in each branch.

    The search runs over the non-pad part of the row from ``assistant_start`` on (whole row when None).
    Fallback when the gold sequence does not occur (e.g. the answer was tokenized differently in context,
    or the teacher answered wrongly): an empty span; the objective skips such pairs and counts them in
    ``n_pairs_no_span``. Pass ``batch.answer_span`` to override the automatic search.
    """
    n, length = input_ids.shape
    spans = torch.zeros(n, length, dtype=torch.bool, device=input_ids.device)
    last = last_nonpad(attention_mask)
    start = (torch.zeros(n, dtype=torch.long, device=input_ids.device) if assistant_start is None
             else assistant_start.to(input_ids.device).long())
    for row in range(n):
        gold = gold_ids[int(group[row])][gold_mask[int(group[row])].bool()].to(input_ids.device).long()
        g = len(gold)
        lo, hi = int(start[row]), int(last[row]) + 1  # search input_ids[row, lo:hi]
        if g == 0 or hi - lo < g:
            continue
        windows = input_ids[row, lo:hi].long().unfold(0, g, 1)  # (hi-lo-g+1, g)
        hits = (windows == gold).all(dim=1).nonzero()
        if len(hits):
            s = lo + int(hits[-1])
            spans[row, s:s + g] = True
    return spans


def _span_positions(spans: Tensor) -> tuple[Tensor, Tensor]:
    """Positions whose logits PREDICT the span tokens (span position - 1), left-aligned: (N, A) and valid (N, A)."""
    pred = torch.zeros_like(spans)
    pred[:, :-1] = spans[:, 1:]  # logits at t-1 predict the token at t
    count = pred.sum(dim=1)
    width = max(int(count.max()) if len(count) else 0, 1)
    valid = torch.arange(width, device=spans.device)[None, :] < count[:, None]  # (N, A)
    # stable sort puts the span positions first, in order
    order = torch.sort((~pred).to(torch.int8), dim=1, stable=True).indices[:, :width]  # (N, A)
    return torch.where(valid, order, torch.zeros_like(order)), valid


# -------------------------------------------------------------------------------------- fused kernel
class _FusedCESymKL(torch.autograd.Function):
    """Per-row CE sums and per-pair symmetric-KL sums from logits, chunked over positions.

    Forward: ``ce[n] = sum_t -log_softmax(z[n,t])[y[n,t]]`` (t with y != ignore) and
    ``pair[p] = sum_t w[p,t] * sum_v (p_I - p_J)(l_I - l_J)`` where ``l = log_softmax(z)``, ``p = exp(l)``
    (the sum of both KL directions). Backward (recomputing l, p per chunk):
    ``d/dz_I = w (p_I (d - KL(I||J)) + p_I - p_J)`` with ``d = l_I - l_J``, symmetric for J;
    ``d/dz_n (CE) = p_n - onehot(y)``.
    """

    @staticmethod
    def forward(ctx, z: Tensor, targets: Tensor, pi: Tensor, pj: Tensor, pmask: Tensor, chunk: int):
        n, length, _ = z.shape
        acc = _compute_dtype(z)
        # float64 accumulators across chunks: alpha z-scores amplify tiny differences between branch losses
        ce = torch.zeros(n, dtype=torch.float64, device=z.device)
        pair = torch.zeros(len(pi), dtype=torch.float64, device=z.device)
        step = _chunk_len(chunk, n, len(pi))
        for s in range(0, length, step):
            e = min(length, s + step)
            lc = torch.log_softmax(z[:, s:e].to(acc), dim=-1)  # (N, c, V)
            y = targets[:, s:e]
            keep = y != IGNORE_INDEX
            picked = lc.gather(-1, y.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (N, c)
            ce -= (picked * keep).sum(dim=1, dtype=torch.float64)
            if len(pi):
                d = lc.index_select(0, pi).sub_(lc.index_select(0, pj))  # (P, c, V) l_I - l_J
                pc = lc.exp()
                dp = pc.index_select(0, pi).sub_(pc.index_select(0, pj))  # (P, c, V) p_I - p_J
                pair += (torch.linalg.vecdot(dp, d) * pmask[:, s:e]).sum(dim=1, dtype=torch.float64)
                del d, dp, pc
            del lc
        ctx.save_for_backward(z, targets, pi, pj, pmask)
        ctx.chunk = chunk
        return ce.to(acc), pair.to(acc)

    @staticmethod
    def backward(ctx, g_ce: Tensor, g_pair: Tensor):
        z, targets, pi, pj, pmask = ctx.saved_tensors
        n, length, _ = z.shape
        grad = torch.zeros_like(z)
        live = g_pair != 0  # pairs below the threshold carry no gradient: skip their work
        pi, pj, pmask, g_pair = pi[live], pj[live], pmask[live], g_pair[live]
        step = _chunk_len(ctx.chunk, n, len(pi))
        acc = _compute_dtype(z)
        g_ce, g_pair = g_ce.to(acc), g_pair.to(acc)
        for s in range(0, length, step):
            e = min(length, s + step)
            lc = torch.log_softmax(z[:, s:e].to(acc), dim=-1)  # (N, c, V)
            pc = lc.exp()
            y = targets[:, s:e]
            wce = (g_ce[:, None] * (y != IGNORE_INDEX)).unsqueeze(-1)  # (N, c, 1)
            gz = pc * wce  # (N, c, V)
            # one-hot part of the CE gradient: N*c scattered entries (index_put_ is far cheaper than scatter_add_)
            flat = gz.view(-1)
            rows = torch.arange(y.numel(), device=z.device) * gz.shape[-1]
            flat.index_put_((rows + y.reshape(-1).clamp(min=0),), -wce.reshape(-1), accumulate=True)
            if len(pi):
                w = (g_pair[:, None] * pmask[:, s:e]).unsqueeze(-1)  # (P, c, 1)
                p_i, p_j = pc.index_select(0, pi), pc.index_select(0, pj)  # (P, c, V)
                d = lc.index_select(0, pi).sub_(lc.index_select(0, pj))  # (P, c, V) l_I - l_J
                kl_ij = torch.linalg.vecdot(p_i, d).unsqueeze(-1)  # (P, c, 1)
                kl_ji = -torch.linalg.vecdot(p_j, d).unsqueeze(-1)
                dp = p_i - p_j
                gz.index_add_(0, pi, torch.addcmul(dp, p_i, d - kl_ij).mul_(w))
                del p_i
                gz.index_add_(0, pj, torch.addcmul(dp.neg_(), p_j, d.neg_().sub_(kl_ji)).mul_(w))  # symmetric
                del d, dp, p_j
            grad[:, s:e] = gz.to(grad.dtype)
            del lc, pc, gz
        return grad, None, None, None, None, None


def _compute_dtype(z: Tensor) -> torch.dtype:
    """float32 at least (bf16/fp16 logits are upcast per chunk); float64 stays float64."""
    return torch.promote_types(z.dtype, torch.float32)


def _chunk_len(chunk_tokens: int, n_rows: int, n_pairs: int) -> int:
    return max(1, chunk_tokens // max(n_rows, n_pairs, 1))


def _fused(z: Tensor, targets: Tensor, pi: Tensor, pj: Tensor, pmask: Tensor, chunk: int) -> tuple[Tensor, Tensor]:
    return _FusedCESymKL.apply(z, targets, pi, pj, pmask.float(), chunk)


# --------------------------------------------------------------------------------------------- core
def _resolve_projections(last_layer_attn) -> AttentionProjections | None:
    if last_layer_attn is None or isinstance(last_layer_attn, AttentionProjections):
        return last_layer_attn
    if isinstance(last_layer_attn, nn.Module):
        return find_attention_projections(last_layer_attn)
    raise CompactError(f"last_layer_attn: expected AttentionProjections, a model or None, "
                       f"got {type(last_layer_attn).__name__}")


def _scores(hidden: Tensor, lm_head_weight: Tensor, proj: AttentionProjections | None, batch: Batch,
            group: Tensor, gold_ids: Tensor, gold_mask: Tensor, rows: Tensor | slice,
            cfg: ObjectiveConfig) -> tuple[Tensor, Tensor]:
    """(MI, consensus) for ``rows`` (detached); consensus is zeros when no projections are given."""
    ids, am = batch.input_ids[rows], batch.attention_mask[rows]
    mi = mi_proxy(hidden[rows], lm_head_weight, gold_ids, gold_mask, group, ids, am,
                  batch.assistant_start[rows], batch.thinking_ids, cfg.mi_variant)
    h = hidden[rows].detach()
    if proj is None:
        return mi, torch.zeros(len(h), device=h.device)
    emb = h[torch.arange(len(h), device=h.device), last_nonpad(am)]  # (K, H) last non-pad state
    return mi, consensus_scores(emb, proj.q_proj, proj.k_proj, proj.n_heads, proj.n_kv_heads, group,
                                cfg.gqa_widening)


def _fuse(mi, cons, diff, group, teacher, cfg: ObjectiveConfig):
    return fuse(mi, cons, diff, group, beta=cfg.beta, temperature=cfg.temperature, use_mi=cfg.use_mi,
                use_consensus=cfg.use_consensus, use_difficulty=cfg.use_difficulty, weighting=cfg.weighting,
                static_weights=cfg.static_weights, teacher=teacher)


def _kl_rows(lp_i: Tensor, lp_j: Tensor) -> Tensor:
    """KL(p_i || p_j) per position from log-probabilities (the released code's ``F.kl_div`` form)."""
    return F.kl_div(lp_j, lp_i, reduction="none", log_target=True).sum(dim=-1)


def _reference(logits, hidden, lm_head_weight, proj, batch: Batch, cfg: ObjectiveConfig,
               spans: Tensor | None) -> ObjectiveOutput:
    n = len(batch.input_ids)
    dev = logits.device
    per_branch = torch.zeros(n, device=dev)
    alpha_all, mi_all, cons_all, s_all = (torch.zeros(n, device=dev) for _ in range(4))
    totals, sfts, conss = [], [], []
    n_pairs = n_skip = n_nospan = 0
    for b in range(batch.n_questions):
        rows = (batch.group == b).nonzero().squeeze(1)
        k = len(rows)
        z = logits[rows]  # (K, L, V)
        am = batch.attention_mask[rows]
        zero_group = torch.zeros(k, dtype=torch.long, device=dev)
        losses = branch_loss(z, batch.input_ids[rows], am, batch.assistant_start[rows])  # (K,) with grad
        mi, cons = _scores(hidden, lm_head_weight, proj, batch, zero_group, batch.gold_ids[b:b + 1],
                           batch.gold_mask[b:b + 1], rows, cfg)
        s, alpha = _fuse(mi, cons, losses.detach(), zero_group, batch.teacher[rows], cfg)
        sft = (alpha * losses).sum()
        consistency = torch.zeros((), device=dev)
        if cfg.consistency != "none":
            for i in range(k):
                for j in range(i + 1, k):
                    w = alpha[i] * alpha[j]
                    if w < cfg.pair_threshold:
                        n_skip += 1
                        continue
                    if cfg.consistency == "sequence":
                        lp_i = torch.log_softmax(z[i].float(), dim=-1)  # (L, V), recomputed per pair
                        lp_j = torch.log_softmax(z[j].float(), dim=-1)
                        m = (am[i] * am[j]).float()  # (L,)
                        sym = _kl_rows(lp_i, lp_j) + _kl_rows(lp_j, lp_i)  # (L,)
                        d_ij = (m * sym).sum() / torch.clamp(m.sum(), min=1.0)
                    else:
                        pos_i = spans[rows[i]].nonzero().squeeze(1) - 1  # predicting positions
                        pos_j = spans[rows[j]].nonzero().squeeze(1) - 1
                        length = min(len(pos_i), len(pos_j))
                        if length == 0:
                            n_nospan += 1
                            continue
                        lp_i = torch.log_softmax(z[i, pos_i[:length]].float(), dim=-1)  # (n, V)
                        lp_j = torch.log_softmax(z[j, pos_j[:length]].float(), dim=-1)
                        d_ij = (0.5 * (_kl_rows(lp_i, lp_j) + _kl_rows(lp_j, lp_i))).mean()
                    consistency = consistency + w * d_ij
                    n_pairs += 1
        total = sft + cfg.lambda_consistency * consistency
        totals.append(total)
        sfts.append(sft)
        conss.append(consistency)
        per_branch[rows] = losses.detach()
        alpha_all[rows], mi_all[rows], cons_all[rows], s_all[rows] = alpha, mi, cons, s
    total_q = torch.stack(totals)  # (B,)
    return _output(total_q, torch.stack(sfts), torch.stack(conss), per_branch, alpha_all, mi_all, cons_all,
                   s_all, n_pairs, n_skip, n_nospan)


def _output(total_q, sft_q, cons_q, per_branch, alpha, mi, cons, s, n_pairs, n_skip, n_nospan) -> ObjectiveOutput:
    b = len(total_q)
    loss_sum = total_q.sum()
    return ObjectiveOutput(
        loss=loss_sum / b, loss_sft=sft_q.detach().mean(), loss_consistency=cons_q.detach().mean(),
        per_branch_loss=per_branch.detach(), alpha=alpha, mi=mi, consensus=cons, difficulty=per_branch.detach(),
        fused=s, loss_sum=loss_sum, n_questions=b, per_question_loss=total_q.detach(), n_pairs=n_pairs,
        n_pairs_skipped=n_skip, n_pairs_no_span=n_nospan)


def _combine(ce_sum: Tensor, pair_sum: Tensor, denom: Tensor, has_span: Tensor, count: Tensor, mi, cons,
             group: Tensor, pi: Tensor, pj: Tensor, batch: Batch, cfg: ObjectiveConfig) -> ObjectiveOutput:
    """Both fast paths' last step: branch losses, fused alpha, thresholded pair terms, per-question totals."""
    b, dev = batch.n_questions, ce_sum.device
    losses = ce_sum / count  # (N,) L_k with grad
    s, alpha = _fuse(mi, cons, losses.detach(), group, batch.teacher, cfg)
    w = alpha[pi] * alpha[pj]  # (P,) detached pair weights
    above = w >= cfg.pair_threshold
    used = above & has_span
    d = pair_sum / denom  # (P,)
    pair_term = torch.where(used, w * d, torch.zeros_like(d))
    cons_q = torch.zeros(b, device=dev).index_add(0, group[pi], pair_term)  # (B,)
    sft_q = torch.zeros(b, device=dev).index_add(0, group, alpha * losses)  # (B,)
    total_q = sft_q + cfg.lambda_consistency * cons_q
    return _output(total_q, sft_q, cons_q, losses, alpha, mi, cons, s, int(used.sum()), int((~above).sum()),
                   int((above & ~has_span).sum()))


def _pairs(group: Tensor) -> tuple[Tensor, Tensor]:
    """All (i, j), i < j, of rows in the same question: (P,), (P,)."""
    same = (group[:, None] == group[None, :]).triu(diagonal=1)
    pi, pj = same.nonzero(as_tuple=True)
    return pi, pj


def _fast(logits, hidden, lm_head_weight, proj, batch: Batch, cfg: ObjectiveConfig,
          spans: Tensor | None) -> ObjectiveOutput:
    n, length, _ = logits.shape
    dev = logits.device
    group = batch.group.to(dev).long()
    mi, cons = _scores(hidden, lm_head_weight, proj, batch, group, batch.gold_ids, batch.gold_mask,
                       slice(None), cfg)
    targets = shifted_labels(batch.input_ids, batch.attention_mask, batch.assistant_start)  # (N, L)
    count = (targets != IGNORE_INDEX).sum(dim=1).clamp(min=1)
    pi, pj = _pairs(group) if cfg.consistency != "none" else (group.new_zeros(0), group.new_zeros(0))
    no_pairs = group.new_zeros(0)
    if cfg.consistency == "sequence":
        am = batch.attention_mask.to(dev).float()
        pmask = am[pi] * am[pj]  # (P, L)
        ce_sum, pair_sum = _fused(logits, targets, pi, pj, pmask, cfg.chunk_tokens)
        denom = pmask.sum(dim=1).clamp(min=1.0)
        has_span = torch.ones(len(pi), dtype=torch.bool, device=dev)
    else:
        ce_sum, _ = _fused(logits, targets, no_pairs, no_pairs, logits.new_zeros(0, length), cfg.chunk_tokens)
        if cfg.consistency == "answer_span":
            pos, valid = _span_positions(spans.to(dev))  # (N, A)
            z_ans = logits[torch.arange(n, device=dev)[:, None], pos]  # (N, A, V), differentiable gather
            pmask = (valid[pi] & valid[pj]).float()  # (P, A): aligned by answer-token index
            no_target = torch.full(pos.shape, IGNORE_INDEX, dtype=torch.long, device=dev)
            _, pair_sum = _fused(z_ans, no_target, pi, pj, pmask, cfg.chunk_tokens)
            pair_sum = 0.5 * pair_sum
            denom = pmask.sum(dim=1).clamp(min=1.0)
            has_span = pmask.sum(dim=1) > 0
        else:
            pair_sum = denom = torch.zeros(0, device=dev)
            has_span = torch.zeros(0, dtype=torch.bool, device=dev)
    return _combine(ce_sum, pair_sum, denom, has_span, count, mi, cons, group, pi, pj, batch, cfg)



# ----------------------------------------------------------------------------------- flat (head-split) path
#: the flat path materialises log-probabilities of the positions it needs, (M, V): above this many entries the
#: chunked dense kernel runs instead (a paper-scale student on long rationales)
FLAT_MAX_ELEMENTS = 1 << 26


class _FlatCESymKL(torch.autograd.Function):
    """CE sums per row and symmetric-KL sums per pair from the logits of the needed positions only.

    ``z`` (M, V): one row per (branch, position) the objective reads; ``targets`` (M,) the token each predicts
    (``IGNORE_INDEX``: none); ``row`` (M,) its branch; pair entries ``ei``/``ej`` (E,) index two rows of ``z`` at
    the same position of a pair of branches, ``pid`` (E,) the pair. Same sums and the same analytic backward as
    :class:`_FusedCESymKL`, on M rows instead of every (branch, position) of the padded batch.
    """

    @staticmethod
    def forward(ctx, z: Tensor, targets: Tensor, row: Tensor, ei: Tensor, ej: Tensor, pid: Tensor,
                n_rows: int, n_pairs: int, chunk: int):
        acc = _compute_dtype(z)
        lz = torch.log_softmax(z.to(acc), dim=-1)  # (M, V)
        keep = targets != IGNORE_INDEX
        picked = lz.gather(-1, targets.clamp(min=0)[:, None]).squeeze(-1)  # (M,)
        ce = torch.zeros(n_rows, dtype=torch.float64, device=z.device).index_add_(
            0, row, (picked * keep).to(torch.float64)).neg_()
        pair = torch.zeros(n_pairs, dtype=torch.float64, device=z.device)
        step = max(1, chunk)
        for s in range(0, len(ei), step):
            a, b = ei[s:s + step], ej[s:s + step]
            li, lj = lz.index_select(0, a), lz.index_select(0, b)
            d = li - lj
            dp = li.exp_().sub_(lj.exp_())  # p_I - p_J
            pair.index_add_(0, pid[s:s + step], torch.linalg.vecdot(dp, d).to(torch.float64))
            del li, lj, d, dp
        ctx.save_for_backward(z, targets, row, ei, ej, pid)
        ctx.chunk = step
        return ce.to(acc), pair.to(acc)

    @staticmethod
    def backward(ctx, g_ce: Tensor, g_pair: Tensor):
        z, targets, row, ei, ej, pid = ctx.saved_tensors
        acc = _compute_dtype(z)
        lz = torch.log_softmax(z.to(acc), dim=-1)  # (M, V) recomputed
        pz = lz.exp()
        g_ce, g_pair = g_ce.to(acc), g_pair.to(acc)
        wce = g_ce[row] * (targets != IGNORE_INDEX)  # (M,)
        grad = pz * wce[:, None]
        flat = grad.view(-1)
        idx = torch.arange(len(targets), device=z.device) * grad.shape[-1] + targets.clamp(min=0)
        flat.index_put_((idx,), -wce, accumulate=True)
        live = g_pair[pid] != 0  # pairs below the threshold carry no gradient: skip their entries
        ei, ej, pid = ei[live], ej[live], pid[live]
        step = ctx.chunk
        for s in range(0, len(ei), step):
            a, b = ei[s:s + step], ej[s:s + step]
            w = g_pair[pid[s:s + step]][:, None]  # (e, 1)
            p_i, p_j = pz.index_select(0, a), pz.index_select(0, b)
            d = lz.index_select(0, a).sub_(lz.index_select(0, b))  # l_I - l_J
            kl_ij = torch.linalg.vecdot(p_i, d)[:, None]
            kl_ji = -torch.linalg.vecdot(p_j, d)[:, None]
            dp = p_i - p_j
            grad.index_add_(0, a, torch.addcmul(dp, p_i, d - kl_ij).mul_(w))
            del p_i
            grad.index_add_(0, b, torch.addcmul(dp.neg_(), p_j, d.neg_().sub_(kl_ji)).mul_(w))
            del d, dp, p_j
        return grad.to(z.dtype), None, None, None, None, None, None, None, None


def _flat(z: Tensor, targets: Tensor, row: Tensor, ei: Tensor, ej: Tensor, pid: Tensor, n_rows: int, n_pairs: int,
          chunk: int) -> tuple[Tensor, Tensor]:
    return _FlatCESymKL.apply(z, targets, row, ei, ej, pid, n_rows, n_pairs, chunk)


def split_head(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """(decoder, LM head) when the fast path may run the decoder and apply the head only where the objective reads
    logits: an unwrapped (or peft-wrapped) Hugging Face causal LM whose logits are ``lm_head(last hidden state)``
    (no logit scaling or soft-capping), neither DDP-wrapped nor sharded, its forward not wrapped for mixed
    precision by accelerate (whose autocast a direct decoder call would bypass). Else None: the whole forward runs.
    """
    if isinstance(getattr(model, "module", None), nn.Module) or hasattr(model, "_original_forward"):
        return None
    get_decoder = getattr(model, "get_decoder", None)
    get_head = getattr(model, "get_output_embeddings", None)
    cfg = getattr(model, "config", None)
    if get_decoder is None or get_head is None or cfg is None:
        return None
    if type(getattr(model, "base_model", model)).__name__.startswith("Lora"):  # peft: the causal LM it wraps
        name = type(model.base_model.model).__name__
    else:
        name = type(model).__name__
    if not name.endswith("ForCausalLM") or name.startswith(("Gemma", "Cohere", "Granite", "Olmo")):
        return None  # models whose logits are scaled or soft-capped after the head
    if getattr(cfg, "final_logit_softcapping", None) or getattr(cfg, "logit_scale", None) not in (None, 1, 1.0):
        return None
    try:
        decoder, head = get_decoder(), get_head()
    except (AttributeError, NotImplementedError):
        return None
    if not isinstance(decoder, nn.Module) or not isinstance(head, nn.Linear):
        return None
    if any(is_sharded(p) for p in model.parameters()):
        return None
    return decoder, head


def bucketed_hidden(decoder: nn.Module, input_ids: Tensor, attention_mask: Tensor, buckets: int = 4,
                    group: Tensor | None = None) -> tuple[Tensor, bool]:
    """(last hidden state, bucketed): :func:`bucketed_forward` without the LM head (zeros where no bucket ran)."""
    n, width = input_ids.shape
    if buckets <= 1 or n < 2:
        return decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state, False
    hidden = None
    for chunk_rows, w in length_buckets(attention_mask, buckets, group):
        rows = torch.tensor(chunk_rows, device=input_ids.device)
        h = decoder(input_ids=input_ids[rows, :w], attention_mask=attention_mask[rows, :w]).last_hidden_state
        if hidden is None:
            hidden = h.new_zeros(n, width, h.shape[-1])
        hidden[rows, :w] = h
    return hidden, True


def _shared_prompts(input_ids: Tensor, attention_mask: Tensor, assistant_start: Tensor, group: Tensor
                    ) -> tuple[Tensor, list[list[int]]] | None:
    """(prompt length per question (B,), the rows of each question) when every question's rows share their prompt
    (the same tokens before the first assistant token) and each row has a token after it; else None."""
    starts = assistant_start.tolist()
    lengths = attention_mask.sum(dim=1).tolist()
    rows_of: dict[int, list[int]] = {}
    for i, g in enumerate(group.tolist()):
        rows_of.setdefault(int(g), []).append(i)
    if sorted(rows_of) != list(range(len(rows_of))):
        return None
    plen = []
    for g in range(len(rows_of)):
        rows = rows_of[g]
        p = min(starts[i] for i in rows)
        if p < 1 or any(lengths[i] <= p for i in rows) or any(
                not bool(attention_mask[i, :p].all()) for i in rows):
            return None
        first = input_ids[rows[0], :p]
        if any(not torch.equal(input_ids[i, :p], first) for i in rows[1:]):
            return None
        plen.append(p)
    return torch.tensor(plen, dtype=torch.long), [rows_of[g] for g in range(len(rows_of))]


def _continuation(input_ids: Tensor, attention_mask: Tensor, ridx: Tensor, start: Tensor, w: int
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """Rows ``ridx`` from their ``start`` on, ``w`` wide: (token ids, mask, absolute positions), (R, w) each; past
    the batch's width, masked zeros."""
    width = input_ids.shape[1]
    pos = start[:, None] + torch.arange(w, device=input_ids.device)[None, :]
    inside = pos < width
    safe = pos.clamp(max=width - 1)
    ids = torch.where(inside, input_ids[ridx].gather(1, safe), torch.zeros_like(safe))
    return ids, attention_mask[ridx].gather(1, safe) * inside, pos


def _pad_token(input_ids: Tensor, attention_mask: Tensor) -> int:
    """The token the batch pads with (the reference MI reads the states of padding positions): the id at the
    first masked position."""
    where = (attention_mask == 0).nonzero()
    if len(where) == 0:
        raise CompactError("no padding in the batch, yet a row needs padding states")
    r, t = where[0].tolist()
    return int(input_ids[r, t])


def shared_prompt_hidden(decoder: nn.Module, input_ids: Tensor, attention_mask: Tensor, assistant_start: Tensor,
                         group: Tensor, buckets: int = 4, by_question: bool = False) -> tuple[Tensor, bool] | None:
    """(last hidden state (N, L, H), bucketed) with each question's prompt computed once for its K branches.

    The prompts run as one batch (B rows) that keeps its keys and values; each branch then runs from its first
    assistant token on, attending to its question's cached prompt, at its own positions (``position_ids``), in
    up to ``buckets`` groups of similar length (rows, or whole questions padded to their longest branch when
    ``by_question``, as :func:`bucketed_forward`). Causally every position sees what it sees in the one-row
    forward, so the hidden states are the same up to floating-point reassociation, and the prompt's forward and
    backward run once per question instead of K times. Positions after a row's last token hold its padding
    states up to its question's width when ``by_question`` (the reference MI reads them), else whatever its
    bucket computed (nothing reads them). None when the rows do not share their prompts (the caller falls back).
    """
    from transformers import DynamicCache

    found = _shared_prompts(input_ids, attention_mask, assistant_start, group)
    if found is None:
        return None
    plen, rows_of = found
    n, width = input_ids.shape
    dev = input_ids.device
    b = len(rows_of)
    pmax = int(plen.max())
    prompt_ids = torch.stack([input_ids[rows[0], :pmax] for rows in rows_of])  # (B, Pmax)
    prompt_mask = (torch.arange(pmax, device=dev)[None, :] < plen.to(dev)[:, None]).to(attention_mask.dtype)
    out = decoder(input_ids=prompt_ids, attention_mask=prompt_mask, use_cache=True)
    h_prompt = out.last_hidden_state
    cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)  # the name since transformers 5.25
    cache_arg = "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"
    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer).__name__ != "DynamicLayer" for layer in layers):
        return None  # sliding-window or other cache layouts: not shared
    kv = [(layer.keys, layer.values) for layer in layers]
    grp = group.to(dev).long()
    p_row = plen.to(dev)[grp]  # (N,) prompt length of each row
    lengths = attention_mask.sum(dim=1).to(dev)
    cont_len = (lengths - p_row).tolist()
    # by_question: each row's padding states up to its question's longest branch (the reference MI reads them)
    qwidth = torch.zeros(b, dtype=lengths.dtype, device=dev).scatter_reduce(0, grp, lengths, reduce="amax")
    # one bucket asks for one padded forward: every row's padding states up to the batch's width, as it computes
    ends = torch.full_like(lengths, width) if buckets <= 1 else qwidth[grp] if by_question else lengths
    need_len = (ends - p_row).tolist()
    order = sorted(range(n), key=lambda i: (cont_len[i], i))
    size = -(-n // max(1, min(buckets, n)))
    hidden = h_prompt.new_zeros(n, width, h_prompt.shape[-1])
    for r in range(n):  # the shared prompt states, in every row of the question
        p = int(p_row[r])
        hidden[r, :p] = h_prompt[int(grp[r]), :p]
    for s in range(0, n, size):
        rows = order[s:s + size]
        w = max(cont_len[i] for i in rows)
        ridx = torch.tensor(rows, device=dev)
        start = p_row[ridx]
        ids_c, mask_c, pos = _continuation(input_ids, attention_mask, ridx, start, w)
        sub = DynamicCache(ddp_cache_data=[(k.index_select(0, grp[ridx]), v.index_select(0, grp[ridx]))
                                           for k, v in kv])
        mask = torch.cat([prompt_mask[grp[ridx]], mask_c], dim=1)
        h = decoder(input_ids=ids_c, attention_mask=mask, position_ids=pos, use_cache=True,
                    **{cache_arg: sub}).last_hidden_state
        for j, r in enumerate(rows):
            p = int(p_row[r])
            wr = min(w, width - p)
            hidden[r, p:p + wr] = h[j, :wr]
        extra = max(need_len[i] for i in rows) - w
        if extra > 0:  # padding states past this bucket's width: no gradient reaches them (nothing trains on them)
            with torch.no_grad():
                pad_id = _pad_token(input_ids, attention_mask)
                grown = DynamicCache(ddp_cache_data=[(layer.keys.detach(), layer.values.detach())
                                                     for layer in sub.layers])
                ids_p = torch.full((len(rows), extra), pad_id, dtype=input_ids.dtype, device=dev)
                pos_p = (start + w)[:, None] + torch.arange(extra, device=dev)[None, :]
                mask_p = torch.cat([mask, torch.zeros_like(ids_p, dtype=mask.dtype)], dim=1)
                h_p = decoder(input_ids=ids_p, attention_mask=mask_p, position_ids=pos_p, use_cache=True,
                              **{cache_arg: grown}).last_hidden_state
            for j, r in enumerate(rows):
                p = int(p_row[r])
                lo, hi = p + w, min(p + need_len[r], width)
                if hi > lo:
                    hidden[r, lo:hi] = h_p[j, :hi - lo]
    return hidden, buckets > 1


def _first_difference(ids_i: Tensor, ids_j: Tensor) -> Tensor:
    """(P,) the first position where two rows' tokens differ (the row width when they never do)."""
    neq = ids_i != ids_j
    width = ids_i.shape[1]
    return torch.where(neq.any(dim=1), neq.to(torch.int8).argmax(dim=1), torch.full_like(neq[:, 0], width,
                                                                                        dtype=torch.long))


def _fast_flat(hidden: Tensor, head: nn.Linear, proj, batch: Batch, cfg: ObjectiveConfig,
               spans: Tensor | None) -> ObjectiveOutput | None:
    """The fast path with the LM head applied only at the positions the objective reads; None when those
    positions' log-probabilities would not fit :data:`FLAT_MAX_ELEMENTS` (the dense path runs instead).

    Positions: each branch's label-predicting positions (the cross-entropy), and for each pair of branches the
    positions from the first token where their rows differ up to the end of the shorter one: before it both rows
    hold the same tokens, so (causally) the same logits and a KL of exactly 0; the sequence term's denominator
    still counts every position both rows have (``mask_i * mask_j``). Same sums as :func:`_fast`.
    """
    n, length, _ = hidden.shape
    dev = hidden.device
    group = batch.group.to(dev).long()
    ids, am = batch.input_ids.to(dev), batch.attention_mask.to(dev)
    targets = shifted_labels(ids, am, batch.assistant_start)  # (N, L)
    count = (targets != IGNORE_INDEX).sum(dim=1).clamp(min=1)
    need = targets != IGNORE_INDEX  # (N, L)
    pos = torch.arange(length, device=dev)
    pi, pj = _pairs(group) if cfg.consistency != "none" else (group.new_zeros(0), group.new_zeros(0))
    if cfg.consistency == "sequence":
        if not bool((am[:, 1:] <= am[:, :-1]).all()):
            return None  # not right-padded: the dense path handles any mask
        both = (am[pi] * am[pj]).float()  # (P, L)
        denom = both.sum(dim=1).clamp(min=1.0)
        end = both.sum(dim=1).long()  # right padding: the positions both rows have are [0, end)
        start = torch.minimum(_first_difference(ids[pi], ids[pj]), end)
        live = (pos[None, :] >= start[:, None]) & (pos[None, :] < end[:, None])  # (P, L)
        p_idx, t_idx = live.nonzero(as_tuple=True)
        ent_i, ent_j = pi[p_idx], pj[p_idx]
        need.index_put_((ent_i, t_idx), torch.ones_like(t_idx, dtype=torch.bool))
        need.index_put_((ent_j, t_idx), torch.ones_like(t_idx, dtype=torch.bool))
        has_span = torch.ones(len(pi), dtype=torch.bool, device=dev)
        scale = 1.0
    elif cfg.consistency == "answer_span":
        sp, valid = _span_positions(spans.to(dev))  # (N, A) positions predicting the answer tokens
        both = (valid[pi] & valid[pj])  # (P, A): aligned by answer-token index
        denom = both.float().sum(dim=1).clamp(min=1.0)
        has_span = both.any(dim=1)
        p_idx, a_idx = both.nonzero(as_tuple=True)
        ent_i, ent_j = pi[p_idx], pj[p_idx]
        ti, tj = sp[ent_i, a_idx], sp[ent_j, a_idx]
        need.index_put_((ent_i, ti), torch.ones_like(ti, dtype=torch.bool))
        need.index_put_((ent_j, tj), torch.ones_like(tj, dtype=torch.bool))
        t_idx = None
        scale = 0.5
    else:
        p_idx = ent_i = ent_j = group.new_zeros(0)
        denom = torch.zeros(0, device=dev)
        has_span = torch.zeros(0, dtype=torch.bool, device=dev)
        t_idx = None
        scale = 1.0
    rows_f, pos_f = need.nonzero(as_tuple=True)  # (M,) row-major
    m = len(rows_f)
    if m * head.weight.shape[0] > FLAT_MAX_ELEMENTS:
        return None
    flat_of = torch.full((n, length), -1, dtype=torch.long, device=dev)
    flat_of[rows_f, pos_f] = torch.arange(m, device=dev)
    if cfg.consistency == "sequence":
        ei, ej = flat_of[ent_i, t_idx], flat_of[ent_j, t_idx]
    elif cfg.consistency == "answer_span":
        ei, ej = flat_of[ent_i, ti], flat_of[ent_j, tj]
    else:
        ei = ej = group.new_zeros(0)
    mi, cons = _scores(hidden, head.weight, proj, batch, group, batch.gold_ids, batch.gold_mask, slice(None), cfg)
    z = head(hidden[rows_f, pos_f])  # (M, V): the LM head on the needed positions only
    rows_per_chunk = max(1, cfg.chunk_tokens // 4)
    ce_sum, pair_sum = _flat(z, targets[rows_f, pos_f], rows_f, ei, ej, p_idx, n, len(pi), rows_per_chunk)
    pair_sum = scale * pair_sum
    return _combine(ce_sum, pair_sum, denom, has_span, count, mi, cons, group, pi, pj, batch, cfg)


def _check(cfg: ObjectiveConfig, batch: Batch, proj: AttentionProjections | None) -> None:
    cfg.validate()
    batch.validate()
    if proj is None and cfg.use_consensus and cfg.weighting in SCORED:
        raise CompactError("consensus needs the last decoder layer's attention projections; pass them "
                           "(consensus.find_attention_projections) or set use_consensus=false")


def objective_from_outputs(logits: Tensor, hidden: Tensor, lm_head_weight: Tensor, last_layer_attn,
                           batch: Batch, cfg: ObjectiveConfig) -> ObjectiveOutput:
    """The pure tensor core: scores, fusion and objective from one forward pass's outputs.

    ``logits`` (N, L, V) with grad; ``hidden`` (N, L, H) the last hidden state; ``lm_head_weight`` (V, H);
    ``last_layer_attn``: :class:`AttentionProjections`, a model to find them in, or None (consensus then
    zeros; an error if ``cfg.use_consensus`` with compact weighting needs it).
    """
    proj = _resolve_projections(last_layer_attn)
    _check(cfg, batch, proj)
    impl = _reference if cfg.path == "reference" else _fast
    return impl(logits, hidden, lm_head_weight, proj, batch, cfg, _spans(batch, cfg))


def _spans(batch: Batch, cfg: ObjectiveConfig) -> Tensor | None:
    """The answer spans answer-span consistency aligns (given, or located), else None."""
    if cfg.consistency != "answer_span":
        return None
    spans = batch.answer_span
    if spans is None:
        spans = locate_answer_spans(batch.input_ids, batch.attention_mask, batch.gold_ids, batch.gold_mask,
                                    batch.group, batch.assistant_start)
    return spans.bool()


def projections_for(model: nn.Module, cfg: ObjectiveConfig) -> AttentionProjections | None:
    """The last attention layer's q/k projections that consensus reads; None (consensus reported as zeros) when the
    model has none and ``cfg`` does not use consensus. :class:`CompactError` when ``cfg`` needs them and there are none.
    """
    try:
        return find_attention_projections(model)
    except CompactError:
        if cfg.use_consensus and cfg.weighting in SCORED:
            raise
        return None


def lm_head_weight(model: nn.Module) -> Tensor:
    """The LM-head (unembedding) weight, through peft/DDP wrappers; whole (gathered) when FSDP2 or ZeRO-3 shards
    it (:func:`compact.method.shards.full`)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    inner = model
    while head is None and isinstance(getattr(inner, "module", None), nn.Module):
        inner = inner.module
        head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
    if head is None or not isinstance(getattr(head, "weight", None), Tensor):
        raise CompactError(f"model {type(model).__name__} has no output embeddings (the MI proxy needs W_U)")
    return full(head.weight)


def compact_objective(model: nn.Module, batch: Batch, cfg: ObjectiveConfig) -> ObjectiveOutput:
    """Run the forward pass of ``model`` (an HF causal LM) on ``batch`` (:func:`bucketed_forward`) and evaluate
    the objective."""
    proj = projections_for(model, cfg)
    # rows bucket freely unless the weights read padding (then whole questions: see bucketed_forward)
    by_question = reads_padding(cfg)
    grouping = batch.group if by_question else None
    out = None
    parts = split_head(model) if cfg.path == "fast" else None
    if parts is not None:  # the LM head only where the objective reads logits (_fast_flat)
        decoder, head = parts
        shared = (shared_prompt_hidden(decoder, batch.input_ids, batch.attention_mask, batch.assistant_start,
                                       batch.group, cfg.forward_buckets, by_question=by_question)
                  if cfg.share_prompts else None)
        if shared is not None:
            hidden, bucketed = shared
        else:
            hidden, bucketed = bucketed_hidden(decoder, batch.input_ids, batch.attention_mask, cfg.forward_buckets,
                                               group=grouping)
        _check(cfg, batch, proj)
        spans = _spans(batch, cfg)
        out = _fast_flat(hidden, head, proj, batch, cfg, spans)
        if out is None:  # too many positions for the flat kernel: the dense one on the same hidden states
            logits = head(hidden)
            out = _fast(logits, hidden, head.weight, proj, batch, cfg, spans)
    if out is None:
        logits, hidden, bucketed = bucketed_forward(model, batch.input_ids, batch.attention_mask,
                                                    cfg.forward_buckets, group=grouping)
        out = objective_from_outputs(logits, hidden, lm_head_weight(model), proj, batch, cfg)
    if bucketed and not by_question and cfg.mi_variant == "reference":
        # the reference MI proxy sums over padding that row buckets did not compute; these weights do not read
        # it, so it is not reported rather than reported wrong (nor is S when it contains it)
        out.mi = None
        if cfg.use_mi:
            out.fused = None
    return out


def bucketed_forward(model: nn.Module, input_ids: Tensor, attention_mask: Tensor, buckets: int = 4,
                     group: Tensor | None = None) -> tuple[Tensor, Tensor, bool]:
    """(logits, last hidden state, bucketed) of right-padded rows, computed on up to ``buckets`` groups of
    similar length.

    A question's K branches differ in length (a concise rationale is a fifth of an over-thinking one), so
    one padded batch spends much of its compute on padding. Units (rows, or whole questions when ``group``
    gives each row's question) are sorted by length and cut into groups of ``ceil(units / buckets)``; each
    group runs trimmed to its own longest row and is written into one output tensor (zeros at positions no
    group computed, which every consumer masks). Under a causal mask a position never sees the padding to its
    right, so every position a group computes equals the one-batch forward's up to floating-point
    reassociation. With ``group``, each question keeps its whole padded width ``[K, L_question]``: the
    reference MI proxy reads the hidden states of padding positions up to the question's longest branch
    (book/specification.md), and those are computed exactly as in one forward per question. ``bucketed``
    is False when one padded forward ran (one bucket, one row, or a DistributedDataParallel wrapper, which
    expects one forward per backward).
    """
    n, width = input_ids.shape
    if buckets <= 1 or n < 2 or isinstance(getattr(model, "module", None), nn.Module):
        out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        return out.logits, out.hidden_states[-1], False
    logits = hidden = None
    for chunk_rows, w in length_buckets(attention_mask, buckets, group):
        rows = torch.tensor(chunk_rows, device=input_ids.device)
        out = model(input_ids=input_ids[rows, :w], attention_mask=attention_mask[rows, :w], output_hidden_states=True)
        h = out.hidden_states[-1]
        if logits is None:  # one (N, L, V) output, written bucket by bucket (no concatenated copies)
            logits = out.logits.new_zeros(n, width, out.logits.shape[-1])
            hidden = h.new_zeros(n, width, h.shape[-1])
        logits[rows, :w] = out.logits
        hidden[rows, :w] = h
    return logits, hidden, True


def length_buckets(attention_mask: Tensor, buckets: int, group: Tensor | None = None) -> list[tuple[list[int], int]]:
    """:func:`bucketed_forward`'s groups: (row indices, width) per group. Units (rows, or whole questions when
    ``group`` gives each row's question) sorted by length, cut into groups of ``ceil(units / buckets)``."""
    n = attention_mask.shape[0]
    lengths = attention_mask.sum(dim=1).tolist()  # one device sync
    owners = group.tolist() if group is not None else list(range(n))
    units: dict[int, list[int]] = {}
    for i, u in enumerate(owners):
        units.setdefault(int(u), []).append(i)
    unit_len = {u: max(lengths[i] for i in rows) for u, rows in units.items()}
    order_units = sorted(units, key=lambda u: (unit_len[u], u))
    size = -(-len(order_units) // max(1, min(buckets, len(order_units))))
    return [([i for u in order_units[s:s + size] for i in units[u]], max(1, max(unit_len[u] for u in order_units[s:s + size])))
            for s in range(0, len(order_units), size)]


def reads_padding(cfg: ObjectiveConfig) -> bool:
    """Whether ``cfg``'s teacher weights read padding positions (the reference MI proxy sums over them)."""
    return cfg.weighting in SCORED and cfg.use_mi and cfg.mi_variant == "reference"


