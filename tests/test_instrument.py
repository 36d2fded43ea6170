"""The instrument: knowledge probes, log-likelihood scoring, calibration gates, the oracle and random-alpha
controls, learning-curve snapshots and the pipeline's refusal to publish from an uncalibrated world."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from compact.config import load
from compact.method.fusion import fuse
from compact.paths import configs_dir
from compact.world import tasks as T
from compact.world.build import WorldConfig
from compact.world.calibration import GATES, Gate, failed_gates


def _tasks_cfg(**kw):
    return dataclasses.replace(load(WorldConfig, configs_dir() / "world" / "default.yaml").tasks, **kw)


def test_yesno_splits_are_balanced_and_probes_imply_the_gold():
    cfg = _tasks_cfg()
    splits = T.generate_task("yesno", 0, {"train": 100, "dev": 20, "test": 30}, cfg)
    for split, exs in splits.items():
        assert sum(e.answer == "yes" for e in exs) * 2 == len(exs), split
        for e in exs:
            probe = e.meta["probe"]
            truth = [q["options"].index(T.ANIMALS[q["animal"]][T.FIELDS.index(q["field"])]) for q in probe["queries"]]
            assert T.probe_verdict(probe, truth) == int(e.answer == "yes"), e.question  # a knowing student is right
    mcq = T.generate_task("mcq", 0, {"train": 20, "dev": 5, "test": 5}, cfg)["test"]
    for e in mcq:
        assert T.probe_verdict(e.meta["probe"], [e.meta["probe"]["gold"]]) == T.LETTERS.index(e.answer)
        assert e.meta["probe"]["queries"][0]["options"] == list(e.choices)


def test_probes_off_keeps_the_old_stream():
    """Worlds without knowledge probes draw exactly the questions they drew before."""
    a = T.generate_task("yesno", 0, {"train": 10, "dev": 2, "test": 2}, _tasks_cfg(knowledge_probes=False))
    assert all("probe" not in e.meta for s in a.values() for e in s)


def test_gates_and_failed_gate_lines():
    table = {"rows": [{"gate": g.name, "what": g.what, "value": 0.5, "baseline": 0.2, "threshold": g.threshold,
                       "direction": ">=" if g.at_least else "<=", "holds": g.holds(0.5)} for g in GATES]}
    lines = failed_gates(table)
    assert len(lines) == 4 and all(line.startswith("calibration gate '") and "\n" not in line for line in lines)
    assert Gate("x", "", 0.2, False).holds(0.2) and not Gate("x", "", 0.2, False).holds(0.21)


def test_random_weighting_is_a_dirichlet_draw_per_question():
    group = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    v = torch.zeros(8)
    torch.manual_seed(0)
    _, a = fuse(v, v, v, group, weighting="random")
    torch.manual_seed(0)
    _, b = fuse(v, v, v, group, weighting="random")
    assert torch.equal(a, b)  # seeded by torch's generator: deterministic
    assert torch.allclose(a.view(2, 4).sum(1), torch.ones(2)) and (a > 0).all()
    draws = torch.stack([fuse(v, v, v, group, weighting="random")[1] for _ in range(2000)])  # (2000, 8)
    assert torch.allclose(draws.mean(0), torch.full((8,), 0.25), atol=0.01)  # Dirichlet(1,1,1,1): mean 1/4
    assert abs(draws[:, 0].var().item() - 3 / 80) < 0.006  # var = (K-1) / (K^2 (K+1)) = 3/80


def test_oracle_keeps_only_branches_labelled_correct():
    from compact.inputs.encode import encode_instances
    from compact.method.objective import ObjectiveConfig
    from compact.teachers.view import Instance
    from compact.trainer.methods import oracle_keep, resolve_objective
    from compact.world.tokenizer import train_tokenizer

    tok = train_tokenizer(["What is 1 + 1? The answer is 2. Step 1: 1 + 1 = 2."] * 20, vocab_size=300,
                          min_frequency=1, model_max_length=128)
    labels = [{"steps_correct": True}, {"steps_correct": False}, {"final_correct": True, "steps_correct": None}]
    insts = [Instance(id="q1", question="What is 1 + 1?", answer="2", answer_type="number", source="t",
                      rationales=["Step 1: 1 + 1 = 2.\nThe answer is 2."] * 3, teachers=["a", "b", "c"], labels=labels),
             Instance(id="q2", question="What is 1 + 1?", answer="2", answer_type="number", source="t",
                      rationales=["The answer is 3."] * 3, teachers=["a", "b", "c"],
                      labels=[{"steps_correct": False}] * 3)]
    qs, stats = encode_instances(insts, tok, teachers=["a", "b", "c"], max_length=64, keep_branch=oracle_keep("oracle"))
    assert [q.id for q in qs] == ["q1"] and qs[0].teachers == [0, 2]  # wrong branch and question dropped
    assert stats.questions_no_branch == 1
    assert oracle_keep("compact") is None
    cfg = resolve_objective("oracle", ObjectiveConfig(), ["a", "b", "c"])
    assert (cfg.weighting, cfg.consistency) == ("uniform", "none")
    cfg = resolve_objective("random", ObjectiveConfig(consistency="sequence"), ["a"])
    assert (cfg.weighting, cfg.consistency) == ("random", "sequence")


@pytest.mark.slow
def test_loglik_scoring_on_the_smoke_world(tmp_path):
    """continuation_logprobs equals a direct computation; evaluation scores probed questions by it."""
    from compact.eval.evaluate import EvalConfig, evaluate
    from compact.eval.loglik import context_text, continuation_logprobs, probe_beliefs
    from compact.world.build import build_world

    world = build_world(load(WorldConfig, configs_dir() / "world" / "smoke.yaml"))
    model, tok = world.load_student(), world.tokenizer
    ctx = context_text(tok, "Where does a crow live?")
    got = continuation_logprobs(model, tok, [(ctx, " city."), (ctx, " forest.")], batch_size=1)
    c_ids = tok(ctx, add_special_tokens=False)["input_ids"]
    o_ids = tok(" city.", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        lp = torch.log_softmax(model(torch.tensor([c_ids + o_ids])).logits[0].float(), -1)
    want = sum(lp[len(c_ids) - 1 + j, t].item() for j, t in enumerate(o_ids))
    assert got[0] == pytest.approx(want, abs=1e-4)
    assert continuation_logprobs(model, tok, [(ctx, " forest."), (ctx, " city.")], batch_size=2)[1] == \
        pytest.approx(got[0], abs=1e-4)  # batching and padding do not change a score
    exs = world.examples("yesno", "test")[:6] + world.examples("mcq", "test")[:6]
    beliefs = probe_beliefs(model, tok, [e.meta["probe"] for e in exs])
    res = evaluate(model, tok, exs, EvalConfig(probe_scoring="loglik", n_bootstrap=10))
    for e, b, s in zip(exs, beliefs, res.samples):
        verdict = T.probe_verdict(e.meta["probe"], b)
        want = T.LETTERS[verdict] if e.answer_type == "choice" else ("yes" if verdict else "no")
        assert s["extracted_strict"] == want and s["stop"] == "loglik"
    table = json.loads((world.path / "calibration.json").read_text())
    assert [r["gate"] for r in table["rows"]] == [g.name for g in GATES]


@pytest.mark.slow
def test_uncalibrated_world_is_not_published(monkeypatch):
    from compact.errors import CompactError
    from compact.publish.pipeline import check_calibration
    from compact.world.build import build_world

    world = build_world(load(WorldConfig, configs_dir() / "world" / "smoke.yaml"))  # fails its gates by design
    with pytest.raises(CompactError, match="not calibrated.*--allow-uncalibrated"):
        check_calibration(world, allow=False)
    assert check_calibration(world, allow=True)  # the failed gates, published with the results


@pytest.mark.slow
def test_a_changed_simulated_teacher_is_never_served_from_the_store(tmp_path, monkeypatch):
    """The store's folder is named by its config; a simulated teacher whose code or profile changed (same
    config) must not be served the old rationales: generate stops with the differing field named."""
    from compact.errors import ArtifactError
    from compact.teachers import simulated
    from compact.teachers.generate import generate_store, load_config

    cfg = load_config(configs_dir() / "generate" / "smoke.yaml", ["inputs.limit=3", f"root={tmp_path / 'store'}"])
    generate_store(cfg)
    generate_store(cfg)  # unchanged: complete, nothing regenerated
    original = simulated.SimulatedTeacher.provenance
    monkeypatch.setattr(simulated.SimulatedTeacher, "provenance",
                        lambda self: {**original(self), "revision": "sim-changed"})
    with pytest.raises(ArtifactError, match="provenance.revision"):
        generate_store(cfg)


def test_budget_table_projects_the_grid_from_measured_step_times(tmp_path):
    """The budget/accuracy table: questions seen = steps x questions per step; the grid's training time =
    each kind of run's measured seconds per step x steps x how many such runs, over the workers."""
    import json

    from compact import config as C
    from compact.config import save_yaml
    from compact.publish.registry import ModelRecord, Registry
    from compact.publish.report import budget_table, step_costs
    from compact.trainer.config import TrainConfig

    runs = {}
    for rid, method, secs in (("compact-s0", "compact", 30.0), ("uniform-s0", "uniform", 20.0),
                              ("single-s0", "single", 5.0)):
        d = tmp_path / rid
        d.mkdir()
        (d / "summary.json").write_text(json.dumps({"time_s": secs, "steps": 10}))
        save_yaml(C.replace(TrainConfig(), **{"optim.questions_per_step": 8}), d / "config.yaml")
        runs[rid] = ModelRecord(name=rid[:-3], seed=0, group="main", label=rid, method=method, path=str(d))
    registry = Registry(runs=runs, config={"workers": 2})
    cost = step_costs(registry)
    assert cost["multi_runs"] == 2 and cost["single_runs"] == 1
    assert cost["multi_s_per_step"] == 2.5 and cost["single_s_per_step"] == 0.5
    curves = [{"method": "A", "step": s, "id_mean": a} for s, a in ((0, 0.1), (100, 0.3))]
    rows = budget_table(registry, curves)
    assert rows[1] == {"step": 100, "questions": 800, "A": 0.3,
                       "grid_training_min": round((2 * 100 * 2.5 + 100 * 0.5) / 2 / 60, 1)}
