"""The controls that separate which teacher, how concentrated alpha is, and the consistency term: shuffled alpha,
static weights from a COMPACT run (static_from), uniform + consistency, the two oracles; and the analyses of
alpha's concentration (effective number of teachers) and of what moved it (score contributions)."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from compact.analysis.dynamics import (
    accuracy_vs_effective_teachers,
    effective_teachers,
    mean_alpha_per_teacher,
    plot_accuracy_vs_effective_teachers,
    plot_seed_dynamics,
    score_contributions,
    static_weights_from_run,
    what_moved_first,
)
from compact.config import load
from compact.errors import ConfigError
from compact.method.batch import synthetic_batch
from compact.method.fusion import fuse, permute_per_group
from compact.method.objective import (
    AttentionProjections,
    ObjectiveConfig,
    objective_from_outputs,
)
from compact.paths import configs_dir
from compact.provenance import MANIFEST
from compact.trainer.config import TrainConfig
from compact.trainer.methods import oracle_keep, resolve_objective
from compact.trainer.run import load_config, train
from compact.trainer.tiny import tiny_student, toy_instances


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ---------------------------------------------------------------------------------------------- shuffled
def test_shuffled_alpha_permutes_compacts_within_each_question_and_changes_with_the_draw():
    gen = torch.Generator().manual_seed(0)
    mi, cons, diff = (torch.rand(8, generator=gen) for _ in range(3))
    group = torch.tensor([3, 3, 3, 3, 7, 7, 7, 9])  # any question ids, K = 4, 3, 1
    s, compact = fuse(mi, cons, diff, group)
    torch.manual_seed(1)
    s2, a = fuse(mi, cons, diff, group, weighting="shuffled")
    assert torch.equal(s, s2)  # S is COMPACT's
    for q in (3, 7, 9):
        rows = group == q
        assert torch.equal(torch.sort(a[rows]).values, torch.sort(compact[rows]).values)
    torch.manual_seed(1)
    assert torch.equal(fuse(mi, cons, diff, group, weighting="shuffled")[1], a)  # torch's generator: seeded
    draws = torch.stack([fuse(mi, cons, diff, group, weighting="shuffled")[1] for _ in range(2000)])
    assert len({tuple(d.tolist()) for d in draws}) > 20  # another permutation at (almost) every step
    # uniform over permutations: each branch gets each of its question's weights 1/K of the time
    top = compact[:4].argmax()
    share = (draws[:, :4] == compact[top]).float().mean(0)
    assert torch.allclose(share, torch.full((4,), 0.25), atol=0.04)
    assert (draws[:, 7] == 1.0).all()  # a single branch keeps alpha = 1


def test_permute_per_group_moves_values_only_within_their_question():
    torch.manual_seed(0)
    group = torch.tensor([2, 0, 2, 1, 0, 2])
    v = torch.arange(6.0)
    for _ in range(50):
        p = permute_per_group(v, group)
        for q in (0, 1, 2):
            assert sorted(p[group == q].tolist()) == sorted(v[group == q].tolist())


@pytest.mark.parametrize("path", ["reference", "fast"])
def test_shuffled_objective_weights_losses_and_pairs_by_the_permuted_alpha(path):
    batch = synthetic_batch(2, 3, 10, 20, seed=0)
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 10, 20, generator=gen)
    hidden, w = torch.randn(6, 10, 8, generator=gen), torch.randn(20, 8, generator=gen)
    proj = AttentionProjections(torch.nn.Linear(8, 8), torch.nn.Linear(8, 4), 4, 2)
    outs = {}
    for weighting in ("compact", "shuffled"):
        torch.manual_seed(5)
        outs[weighting] = objective_from_outputs(logits, hidden, w, proj, batch,
                                                 ObjectiveConfig(path=path, weighting=weighting))
    c, s = outs["compact"], outs["shuffled"]
    for q in (0, 1):
        rows = batch.group == q
        assert torch.allclose(torch.sort(s.alpha[rows]).values, torch.sort(c.alpha[rows]).values)
    assert not torch.allclose(s.alpha, c.alpha)  # this draw moved the weights
    sft = torch.stack([(s.alpha * s.per_branch_loss)[batch.group == q].sum() for q in (0, 1)]).mean()
    assert s.loss_sft.item() == pytest.approx(sft.item(), rel=1e-5)
    assert s.n_pairs == 6 and s.loss_consistency > 0  # COMPACT's consistency term, pairs weighted by the shuffled alpha


def test_shuffled_needs_the_attention_projections_wherever_compact_does():
    from compact.errors import TrainingError
    from compact.inputs.model import check_model

    plain = torch.nn.Sequential(torch.nn.Linear(2, 2))  # no q_proj/k_proj: no consensus
    for weighting in ("compact", "shuffled"):
        with pytest.raises(TrainingError, match="use_consensus=false"):
            check_model(plain, ObjectiveConfig(weighting=weighting))
        check_model(plain, ObjectiveConfig(weighting=weighting, use_consensus=False))
    check_model(plain, ObjectiveConfig(weighting="uniform"))


# ---------------------------------------------------------------------------------------------- configs
@pytest.mark.parametrize("name,method,want", [
    ("shuffled", "shuffled", {"weighting": "shuffled", "consistency": "sequence"}),
    ("uniform_consistency", "uniform_consistency", {"weighting": "uniform", "consistency": "sequence"}),
    ("oracle_answer", "oracle_answer", {"weighting": "uniform", "consistency": "none"}),
    ("oracle_steps", "oracle_steps", {"weighting": "uniform", "consistency": "none"}),
    ("static_compact", "static", {"weighting": "static", "consistency": "none", "static_weights": None}),
])
def test_new_configs_resolve_to_their_objective(name, method, want):
    cfg = load_config(configs_dir() / "train" / f"{name}.yaml")
    assert cfg.method == method
    assert {k: getattr(cfg.objective, k) for k in want} == want
    base = load_config(configs_dir() / "train" / "compact.yaml").objective
    changed = {f.name for f in dataclasses.fields(base) if getattr(base, f.name) != getattr(cfg.objective, f.name)}
    assert changed <= set(want)  # everything else is COMPACT's


def test_oracle_is_oracle_steps_under_its_first_name():
    a = load_config(configs_dir() / "train" / "oracle.yaml")
    b = load_config(configs_dir() / "train" / "oracle_steps.yaml")
    assert a.method == "oracle" and a.objective == b.objective and a.data == b.data and a.optim == b.optim
    with pytest.raises(ConfigError, match="objective.consistency='sequence', but method 'oracle_answer'"):
        load_config(configs_dir() / "train" / "oracle_answer.yaml", ["objective.consistency=sequence"])
    with pytest.raises(ConfigError, match="static_from: <run>"):
        resolve_objective("static", load_config(configs_dir() / "train" / "static_compact.yaml").objective,
                          ["a", "b"])


def _labelled(n: int = 8):
    """toy instances with ground-truth labels: t0 right throughout, t1 a right answer through a wrong step, t2
    wrong; every fourth question's t2 has no step labels and a right answer (as from a real teacher)."""
    insts = toy_instances(n)
    for i, inst in enumerate(insts):
        inst.labels = [{"final_correct": True, "steps_correct": True},
                       {"final_correct": True, "steps_correct": False},
                       ({"final_correct": True, "steps_correct": None} if i % 4 == 0
                        else {"final_correct": False, "steps_correct": False})]
    return insts


def test_oracle_answer_and_oracle_steps_keep_the_right_branches():
    from compact.inputs.encode import encode_instances
    from compact.trainer.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    insts = _labelled(4)
    kept = {}
    for method in ("oracle_answer", "oracle_steps", "oracle"):
        qs, _ = encode_instances(insts, tok, teachers=["t0", "t1", "t2"], max_length=128,
                                 keep_branch=oracle_keep(method))
        kept[method] = {q.id: q.teachers for q in qs}
    assert kept["oracle_answer"] == {"toy-0": [0, 1, 2], "toy-1": [0, 1], "toy-2": [0, 1], "toy-3": [0, 1]}
    assert kept["oracle_steps"] == {"toy-0": [0, 2], "toy-1": [0], "toy-2": [0], "toy-3": [0]}
    assert kept["oracle"] == kept["oracle_steps"]
    assert oracle_keep("uniform") is None and oracle_keep("shuffled") is None


# ---------------------------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def student(tmp_path_factory) -> Path:
    return tiny_student(tmp_path_factory.mktemp("student") / "s")


def make_cfg(student: Path, *overrides: str) -> TrainConfig:
    base = [f"model.path={student}", "optim.questions_per_step=4", "optim.micro_batch_questions=2",
            "optim.lr=0.001", "optim.max_steps=2", "data.max_length=128"]
    return load(TrainConfig, None, base + list(overrides))


def _by_question(rows, step):
    out = {}
    for r in rows:
        if r["step"] == step:
            out.setdefault(r["id"], []).append(r)
    return out


def test_shuffled_run_trains_with_a_permutation_of_compacts_alpha(student, tmp_path):
    insts = toy_instances(8)
    runs = {m: train(make_cfg(student, f"method={m}"), root=tmp_path, instances=insts) for m in ("compact", "shuffled")}
    logs = {m: jsonl(out / "alpha.jsonl") for m, out in runs.items()}
    assert all(r["mi"] is not None and r["consensus"] is not None for r in logs["shuffled"])  # scores as COMPACT's
    a, b = _by_question(logs["compact"], 1), _by_question(logs["shuffled"], 1)  # same student at step 1
    assert a.keys() == b.keys()
    moved = False
    for q in a:
        ca, sb = [r["alpha"] for r in a[q]], [r["alpha"] for r in b[q]]
        assert sorted(sb) == pytest.approx(sorted(ca), abs=1e-4)
        moved |= any(abs(x - y) > 1e-3 for x, y in zip(ca, sb))
    assert moved
    assert all(r["loss_consistency"] > 0 for r in jsonl(runs["shuffled"] / "log.jsonl"))
    assert json.loads((runs["shuffled"] / "summary.json").read_text())["objective"]["weighting"] == "shuffled"


def test_uniform_consistency_run(student, tmp_path):
    out = train(make_cfg(student, "method=uniform_consistency"), root=tmp_path, instances=toy_instances(8))
    assert all(abs(r["alpha"] - 1 / 3) < 1e-6 for r in jsonl(out / "alpha.jsonl"))
    assert effective_teachers(out)["overall"]["exp_entropy"] == pytest.approx(3.0, abs=1e-5)  # uniform: K
    assert effective_teachers(out)["overall"]["inverse_simpson"] == pytest.approx(3.0, abs=1e-5)
    assert all(r["loss_consistency"] > 0 for r in jsonl(out / "log.jsonl"))


def test_oracle_runs_train_on_the_branches_they_keep(student, tmp_path):
    insts = _labelled(8)
    teachers = {}
    for method in ("oracle_answer", "oracle_steps"):
        out = train(make_cfg(student, f"method={method}"), root=tmp_path, instances=insts)
        rows = jsonl(out / "alpha.jsonl")
        for recs in _by_question(rows, 1).values():
            assert all(abs(r["alpha"] - 1 / len(recs)) < 1e-6 for r in recs)
        teachers[method] = {r["teacher"] for r in rows}
        n_eff = effective_teachers(out)["per_step"][0]
        assert n_eff["exp_entropy"] == pytest.approx(np.mean([len(v) for v in _by_question(rows, 1).values()]))
    assert teachers["oracle_answer"] == {"t0", "t1", "t2"} and "t1" not in teachers["oracle_steps"]


def test_static_from_a_compact_run_trains_with_its_mean_alpha(student, tmp_path):
    insts = toy_instances(8)
    src = train(make_cfg(student, "method=compact"), root=tmp_path, instances=insts)
    means = mean_alpha_per_teacher(src)
    rows = jsonl(src / "alpha.jsonl")
    assert means["t1"] == pytest.approx(np.mean([r["alpha"] for r in rows if r["teacher"] == "t1"]))
    assert sum(means.values()) == pytest.approx(1.0, abs=1e-5)  # every question has all three teachers
    teachers, weights = static_weights_from_run(src)
    assert teachers == ["t0", "t1", "t2"] and weights == [round(means[t], 6) for t in teachers]
    cfg = make_cfg(student, "method=static", f"objective.static_weights={json.dumps(weights)}")
    out = train(cfg, root=tmp_path, instances=insts)
    for recs in _by_question(jsonl(out / "alpha.jsonl"), 1).values():
        assert [r["alpha"] for r in recs] == pytest.approx([w / sum(weights) for w in weights], abs=1e-6)
    assert json.loads((out / "summary.json").read_text())["objective"]["static_weights"] == weights


# ---------------------------------------------------------------------------------------------- pipeline
def _fake_run(path: Path, teachers=("sim-a", "sim-b"), alphas=((0.7, 0.3), (0.5, 0.5))) -> Path:
    path.mkdir(parents=True)
    write_jsonl(path / "alpha.jsonl", [{"step": s + 1, "id": f"q{s}", "teacher": t, "alpha": a}
                                       for s, row in enumerate(alphas) for t, a in zip(teachers, row)])
    (path / "summary.json").write_text(json.dumps({"teachers": list(teachers)}))
    (path / MANIFEST).write_text("{}")
    return path


def test_static_from_plans_a_second_wave_with_the_sources_weights(tmp_path, monkeypatch):
    from compact.publish import pipeline as P
    from compact.publish.plan import RunSpec, resolve_run

    plain = P.make_plan(P.load_pipeline("smoke"))
    cfg = P.load_pipeline("smoke", ["workers=1"])
    cfg.runs.append(RunSpec(name="static-compact", config="configs/train/static_compact.yaml", static_from="compact",
                            seeds=[0, 1], group="baseline"))
    cfg.validate()
    plan = P.make_plan(cfg)
    assert plan.static_from == {"static-compact-s0": "compact-s0", "static-compact-s1": "compact-s1"}
    assert {k: v for k, v in plan.keys["runs"].items() if k in plain.keys["runs"]} == plain.keys["runs"]
    assert P.make_plan(cfg).keys == plan.keys  # known from the configs alone, before any training
    with pytest.raises(ConfigError, match="static-compact-s0 takes its static weights from run compact-s0, which is "
                                          "not finished"):
        resolve_run(plan, "static-compact-s0", tmp_path / "missing")
    tcfg = resolve_run(plan, "static-compact-s1", _fake_run(tmp_path / "src"))
    assert tcfg.method == "static" and tcfg.objective.static_weights == [0.6, 0.4]
    assert tcfg.objective.consistency == "none" and tcfg.name == "static-compact-s1" and tcfg.seed == 1
    assert tcfg.identity() != plan.runs["static-compact-s1"].identity()  # the weights name the run
    # the training stage: the sources first, then the dependent runs with their sources' weights
    order = []

    def fake_train(tcfg, force=False):
        order.append((tcfg.name, tcfg.objective.static_weights))
        out = tmp_path / "runs" / tcfg.name
        if tcfg.method != "static":
            _fake_run(out, alphas=((0.9, 0.1),) if tcfg.seed == 0 else ((0.2, 0.8),))
        return str(out)

    monkeypatch.setattr(P, "_train_worker", fake_train)
    monkeypatch.setattr(P.Runner, "store", lambda self: None)
    dirs = P.Runner(plan).train_all()
    assert set(dirs) == set(plan.runs)
    names = [n for n, _ in order]
    assert names.index("static-compact-s0") > max(names.index(r) for r in plan.runs if r not in plan.static_from)
    assert dict(order)["static-compact-s0"] == [0.9, 0.1] and dict(order)["static-compact-s1"] == [0.2, 0.8]
    assert plan.runs["static-compact-s0"].objective.static_weights == [0.9, 0.1]


@pytest.mark.parametrize("spec,match", [
    ("{name: s, config: configs/train/static_compact.yaml, static_from: ghost}", "static_from names an unknown run"),
    ("{name: s, config: configs/train/static_compact.yaml, static_from: s}", "static_from names itself"),
    ("{name: s, config: configs/train/static_compact.yaml, static_from: compact, seeds: [5]}", "has no seeds"),
])
def test_static_from_must_name_a_seed_matched_run(spec, match):
    from compact.publish import pipeline as P

    runs = "[{name: compact, config: configs/train/compact.yaml, seeds: [0, 1]}, " + spec + "]"
    with pytest.raises(ConfigError, match=match):
        P.load_pipeline("smoke", [f"runs={runs}", "merges=[]", "curves=[]"])
    with pytest.raises(ConfigError, match="static_from needs method 'static'"):
        runs = ("runs=[{name: compact, config: configs/train/compact.yaml}, "
                "{name: u, config: configs/train/uniform.yaml, static_from: compact}]")
        P.make_plan(P.load_pipeline("smoke", [runs, "merges=[]", "curves=[]"]))


# ---------------------------------------------------------------------------------------------- analyses
def _log(tmp_path: Path, alphas: dict[tuple[int, str], list[float]]) -> Path:
    rows = [{"step": s, "id": q, "teacher": f"t{k}", "alpha": a}
            for (s, q), vals in alphas.items() for k, a in enumerate(vals)]
    return write_jsonl(tmp_path / "alpha.jsonl", rows)


def test_effective_teachers_by_hand(tmp_path):
    path = _log(tmp_path, {
        (1, "a"): [0.25] * 4,                 # uniform over 4: both 4
        (1, "b"): [1.0, 0.0, 0.0, 0.0],       # one teacher: both 1
        (2, "a"): [0.5, 0.5],                 # an oracle question with 2 kept branches: 2
        (2, "b"): [0.7, 0.2, 0.1],
        (2, "c"): [1.0],                      # single teacher
    })
    out = effective_teachers(tmp_path)  # a run folder, or the file
    assert out == effective_teachers(path)
    h = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))
    step1, step2 = out["per_step"]
    assert (step1["step"], step1["n_questions"]) == (1, 2)
    assert step1["exp_entropy"] == pytest.approx(2.5) and step1["inverse_simpson"] == pytest.approx(2.5)
    assert step2["exp_entropy"] == pytest.approx((2 + math.exp(h) + 1) / 3)
    assert step2["inverse_simpson"] == pytest.approx((2 + 1 / (0.49 + 0.04 + 0.01) + 1) / 3)
    assert out["overall"]["n_questions"] == 5
    assert out["overall"]["exp_entropy"] == pytest.approx((4 + 1 + 2 + math.exp(h) + 1) / 5)


def test_accuracy_vs_effective_teachers(tmp_path):
    rows = [{"name": n, "method": m, "seed": s, "effective_teachers": e + 0.01 * s, "id_accuracy": acc + 0.001 * s}
            for n, m, e, acc in (("single-a", "single", 1.0, 0.3), ("compact", "compact", 2.6, 0.5),
                                 ("uniform", "uniform", 4.0, 0.7)) for s in (0, 1)]
    stats = accuracy_vs_effective_teachers(rows)
    assert stats["spearman"] == pytest.approx(1.0) and stats["n"] == 6 and stats["n_runs"] == 3
    assert stats["spearman_run_means"] == pytest.approx(1.0)
    rows[0]["id_accuracy"], rows[1]["id_accuracy"] = 0.9, 0.91  # the single-teacher runs now best
    assert accuracy_vs_effective_teachers(rows)["spearman"] < 0.5
    fig, st = plot_accuracy_vs_effective_teachers(rows, title="ID")
    ax = fig.axes[0]
    assert len(ax.collections) == 3 and sum(len(c.get_offsets()) for c in ax.collections) == 6
    assert f"{st['spearman']:.2f}" in ax.get_title()


def _scores_log(path: Path, n_steps=20, n_questions=4, *, cons_from=6, diff_from=14, alpha_from=9, seed=0):
    """Three teachers; raw scores equal across teachers (z = 0) except: teacher t0's consensus is higher from step
    ``cons_from`` on, its difficulty (loss) lower from ``diff_from`` on; its logged alpha leaves 1/3 from
    ``alpha_from``."""
    rng = np.random.default_rng(seed)
    rows = []
    for step in range(1, n_steps + 1):
        for q in range(n_questions):
            mi, cons, diff = rng.random(), rng.random(), 1 + rng.random()
            for k in range(3):
                up = k == 0
                rows.append({"step": step, "id": f"q{q}", "teacher": f"t{k}",
                             "alpha": (0.6 if up else 0.2) if step >= alpha_from else 1 / 3,
                             "mi": mi, "consensus": cons + (0.3 if up and step >= cons_from else 0.0),
                             "difficulty": diff - (0.4 if up and step >= diff_from else 0.0)})
    return write_jsonl(path, rows)


def test_score_contributions_recompute_fuses_score(tmp_path):
    gen = torch.Generator().manual_seed(0)
    rows, fused = [], []
    for step in (1, 2, 3):
        mi, cons, diff = (torch.rand(3, generator=gen) for _ in range(3))
        s, alpha = fuse(mi, cons, diff, torch.zeros(3, dtype=torch.long), beta=(1.0, 2.0, 0.5))
        fused += s.tolist()
        rows += [{"step": step, "id": "q", "teacher": f"t{k}", "alpha": float(alpha[k]), "mi": float(mi[k]),
                  "consensus": float(cons[k]), "difficulty": float(diff[k])} for k in range(3)]
    run = tmp_path / "run"
    run.mkdir()
    write_jsonl(run / "alpha.jsonl", rows)
    (run / "config.yaml").write_text("objective: {beta: [1.0, 2.0, 0.5]}\n")  # read from the run folder
    win = score_contributions(run, n_windows=3)
    assert len(win) == 9 and all(w["n"] == 1 for w in win)
    for w in win:
        i = 3 * w["window"] + int(w["teacher"][1:])
        assert w["fused_mean"] == pytest.approx(fused[i], abs=1e-5)
        assert w["fused_mean"] == pytest.approx(w["contribution_mi"] + w["contribution_consensus"]
                                                + w["contribution_difficulty"], abs=1e-6)
        assert w["alpha_excess"] == pytest.approx(w["alpha_mean"] - 1 / 3)
    # a switched-off score contributes nothing; a score the log lacks is NaN
    off = score_contributions(run, n_windows=3, use_mi=False)
    assert all(w["contribution_mi"] == 0.0 for w in off)
    no_mi = [{**r, "mi": None} for r in rows]
    assert all(math.isnan(w["contribution_mi"]) for w in score_contributions(no_mi, n_windows=3))


def test_what_moved_first_finds_the_score_that_moved_before_alpha(tmp_path):
    win = score_contributions(_scores_log(tmp_path / "a.jsonl"), n_windows=10)  # windows of 2 steps
    out = what_moved_first(win, "t0", threshold=0.05)
    assert out["departs"] and out["departure_window"] == 4 and out["direction"] == "up"  # steps 9-10
    assert out["first_mover"] == "consensus" and out["largest_mover"] == "consensus"
    assert out["scores"]["consensus"]["first_move_window"] == 2  # steps 5-6 (step 6 moved)
    assert out["scores"]["difficulty"]["first_move_window"] is None  # it moves after the departure
    assert out["dominant_at_departure"] == "consensus" and out["agrees"]
    assert out["scores"]["mi"]["max_abs_change"] == pytest.approx(0.0)
    # difficulty first: the loss drops before the consensus rises
    win = score_contributions(_scores_log(tmp_path / "b.jsonl", cons_from=16, diff_from=4, alpha_from=12),
                              n_windows=10)
    out = what_moved_first(win, "t0")
    assert out["first_mover"] == "difficulty" and out["scores"]["consensus"]["first_move_window"] is None
    assert out["scores"]["difficulty"]["change"] > 0  # a lower loss raises S
    # alpha never leaves 1/3: no departure, the movers over the whole run
    win = score_contributions(_scores_log(tmp_path / "c.jsonl", alpha_from=99), n_windows=10)
    out = what_moved_first(win, "t0")
    assert not out["departs"] and out["first_mover"] == "consensus" and "departure_window" not in out
    with pytest.raises(Exception, match="teacher 'ghost'"):
        what_moved_first(win, "ghost")


def test_plot_seed_dynamics_one_panel_per_seed_with_effective_teachers(tmp_path):
    runs = {}
    for seed in (0, 1, 2):
        (tmp_path / f"s{seed}").mkdir()
        runs[f"seed {seed}"] = _scores_log(tmp_path / f"s{seed}" / "alpha.jsonl", seed=seed, alpha_from=5 + seed)
    fig = plot_seed_dynamics(runs, n_windows=5)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["seed 0", "seed 1", "seed 2"]
    assert len(fig.axes) == 6  # a twin axis per panel
    assert all(len(ax.get_lines()) == 3 for ax in panels)  # one line per teacher
    twin_line = fig.axes[3].get_lines()[0]
    assert twin_line.get_ydata()[0] == pytest.approx(3.0) and twin_line.get_ydata()[-1] < 3.0
