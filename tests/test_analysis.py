"""Analyses: CKA/PCA shift, AUC and correlations, alpha dynamics, forgetting, and `compact analyze`."""
import json

import numpy as np
import pytest
import torch

from compact.analysis import AnalyzeConfig, analyze
from compact.analysis.dynamics import alpha_windows, curriculum_trend, read_alpha_log
from compact.analysis.forgetting import forgetting_table
from compact.analysis.latent import (
    fit_pca,
    hidden_representations,
    linear_cka,
    pca_shift,
    shift_metrics,
)
from compact.analysis.validation import (
    auc,
    correlation_matrix,
    pearson,
    proxy_vs_estimator,
    rankdata,
    score_auc_table,
    spearman,
)
from compact.errors import DataError
from compact.eval.evaluate import EvalResult, compute_metrics


def test_cka_properties():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 8))
    Q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    assert linear_cka(X, X) == pytest.approx(1.0)
    assert linear_cka(X, X @ Q) == pytest.approx(1.0)           # orthogonal transform
    assert linear_cka(X, 3.7 * X + 2.0) == pytest.approx(1.0)   # isotropic scale + translation
    assert linear_cka(X, X * np.arange(1, 9)) < 0.99            # anisotropic scaling is a change
    assert linear_cka(X, rng.normal(size=(50, 8))) < 0.5
    assert linear_cka(X, X[:, :3]) == pytest.approx(linear_cka(X[:, :3], X))  # symmetric
    with pytest.raises(ValueError):
        linear_cka(X, X[:10])


def test_pca_and_shift_by_hand():
    # points spread along x (variance 4) and a little along y; PC1 must be the x axis
    base = np.array([[-2.0, 0.1], [-1.0, -0.1], [0.0, 0.0], [1.0, -0.1], [2.0, 0.1]])  # x, y uncorrelated
    pca = fit_pca(base, 2)
    assert np.allclose(np.abs(pca.components[0]), [1.0, 0.0], atol=1e-6)
    assert pca.explained[0] > 0.99
    moved = base + np.array([3.0, 4.0])  # a pure translation: every point moves by 5
    m = shift_metrics(base, moved, pca)
    assert m["centroid_distance"] == pytest.approx(5.0) and m["mean_displacement"] == pytest.approx(5.0)
    assert m["full_mean_displacement"] == pytest.approx(5.0) and m["cka"] == pytest.approx(1.0)
    spread = np.mean(np.linalg.norm(pca.transform(base) - pca.transform(base).mean(0), axis=1))
    assert m["centroid_distance_rel"] == pytest.approx(5.0 / spread)
    swapped = base[::-1].copy()  # same cloud, points permuted: centroid unchanged, displacement not
    m = shift_metrics(base, swapped, pca)
    assert m["centroid_distance"] == pytest.approx(0.0, abs=1e-12) and m["mean_displacement"] > 1.0
    rows, _ = pca_shift(base, {"same": base, "moved": moved})
    assert [r["method"] for r in rows] == ["same", "moved"] and rows[0]["mean_displacement"] == 0.0


def test_hidden_representations_mean_and_last(tmp_path):
    from test_evaluation import make_tiny_student

    from compact.eval.decode import format_prompt
    from compact.inputs.model import load_model, load_tokenizer

    path = make_tiny_student(tmp_path / "s")
    model, tok = load_model(path), load_tokenizer(path, pad_to_eos=True)
    qs = ["short?", "a much longer question about apples and pears?", "mid length one"]
    mean = hidden_representations(model, tok, qs, pooling="mean", batch_size=3)
    last = hidden_representations(model, tok, qs, pooling="last", batch_size=2)
    assert mean.shape == (3, 32) and last.shape == (3, 32)
    for i, q in enumerate(qs):  # each row alone, unpadded
        ids = torch.tensor([tok(format_prompt(tok, q), add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            h = model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0].double()
        assert np.allclose(mean[i], h.mean(0).numpy(), atol=1e-5)
        assert np.allclose(last[i], h[-1].numpy(), atol=1e-5)


def test_auc_by_hand_and_ties():
    assert auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert auc([1, 1, 2], [0, 1, 1]) == pytest.approx(0.75)  # pairs: tie 0.5, win 1 -> 1.5 / 2
    assert auc([3, 2, 1], [1, 0, 0]) == 1.0 and auc([3, 2, 1], [0, 1, 1]) == 0.0
    assert auc([5, 5, 5, 5], [1, 0, 1, 0]) == 0.5
    assert np.isnan(auc([1, 2], [1, 1]))
    assert list(rankdata([10, 20, 10, 30])) == [1.5, 3.0, 1.5, 4.0]


def test_correlations_by_hand():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert spearman([1, 2, 3, 4], [1, 8, 27, 64]) == pytest.approx(1.0)  # monotone, not linear
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    rows = [{"mi": x, "consensus": -x, "difficulty": x ** 2, "alpha": 1.0 * (x > 1), "fused": x}
            for x in [0.0, 1.0, 2.0, 3.0]]
    m = {r["score"]: r for r in correlation_matrix(rows, ("mi", "consensus", "difficulty"))}
    assert m["mi"]["consensus"] == pytest.approx(-1.0) and m["mi"]["difficulty"] == pytest.approx(1.0)
    out = proxy_vs_estimator([1, 2, 3, 4, 5, 6], [1, 2, 3, 6, 5, 4], groups=["a"] * 3 + ["b"] * 3)
    assert out["within_question_spearman"] == pytest.approx(0.0) and out["spearman"] > 0.7


def test_score_auc_table():
    rows = [{"teacher": "t1", "mi": 0.9, "difficulty": 0.1, "final_correct": True},
            {"teacher": "t1", "mi": 0.2, "difficulty": 0.9, "final_correct": False},
            {"teacher": "t2", "mi": 0.5, "difficulty": 0.5, "final_correct": True},
            {"teacher": "t2", "mi": 0.6, "difficulty": 0.4, "final_correct": False}]
    tab = score_auc_table(rows, scores=("mi", "difficulty"))
    by = {r["score"]: r for r in tab}
    assert by["mi"]["auc"] == pytest.approx(0.75) and by["difficulty"]["auc"] == pytest.approx(0.25)
    assert by["difficulty"]["auc_oriented"] == pytest.approx(0.75)
    per = score_auc_table(rows, scores=("mi",), by="teacher")
    assert {(r["teacher"], r["auc"]) for r in per} == {("all", 0.75), ("t1", 1.0), ("t2", 0.0)}


def _alpha_rows():
    rows = []
    for step in range(20):
        a = 0.2 + 0.03 * step  # teacher "up" gains weight over training on arith
        for i in range(3):
            rows.append({"id": f"arith-train-{i:05d}", "teacher": "up", "alpha": a, "step": step})
            rows.append({"id": f"arith-train-{i:05d}", "teacher": "down", "alpha": 1 - a, "step": step})
            rows.append({"id": f"mcq-train-{i:05d}", "teacher": "up", "alpha": 0.5, "step": step})
    return rows


def test_alpha_windows_and_trend(tmp_path):
    rows = _alpha_rows()
    w = alpha_windows(rows, n_windows=4)
    up = [r for r in w if r["task"] == "arith" and r["teacher"] == "up"]
    assert [r["window"] for r in up] == [0, 1, 2, 3] and all(r["n"] == 15 for r in up)
    assert up[0]["alpha_mean"] == pytest.approx(0.2 + 0.03 * 2)  # steps 0..4
    tr = {(r["task"], r["teacher"]): r for r in curriculum_trend(rows, n_windows=4)}
    assert tr[("arith", "up")]["spearman_step_alpha"] == pytest.approx(1.0)
    assert tr[("arith", "down")]["spearman_step_alpha"] == pytest.approx(-1.0)
    assert tr[("arith", "up")]["alpha_change"] == pytest.approx(0.03 * 15)
    assert np.isnan(tr[("mcq", "up")]["spearman_step_alpha"])  # constant alpha: no trend defined
    p = tmp_path / "alpha.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows[:5]) + "\n{\"id\": \"x\", \"alpha\": 1}\n")
    with pytest.raises(DataError, match="line 6.*'teacher'"):
        read_alpha_log(tmp_path)


def _eval(correct: dict[str, bool], task_of=lambda i: i.split("-")[0]):
    samples = [{"id": i, "task": task_of(i), "correct_strict": c, "correct_lenient": c,
                "extracted_strict": "1"} for i, c in correct.items()]
    return EvalResult(samples=samples, metrics=compute_metrics(samples, n_bootstrap=20))


def test_forgetting_table_paired():
    ids = [f"mcq-{i}" for i in range(10)] + [f"yesno-{i}" for i in range(10)] + [f"arith-{i}" for i in range(4)]
    base = _eval({i: not i.endswith(("8", "9")) for i in ids})  # OOD 16/20
    worse = _eval({i: i.startswith("mcq") and not i.endswith(("8", "9")) or i.startswith("arith") for i in ids})
    same = _eval({i: not i.endswith(("8", "9")) for i in ids})
    rows = {r["method"]: r for r in forgetting_table(base, {"worse": worse, "same": same},
                                                       ood_tasks=["mcq", "yesno"], id_tasks=["arith"],
                                                       n_bootstrap=200)}
    assert rows["worse"]["ood_before"] == pytest.approx(0.8) and rows["worse"]["ood_after"] == pytest.approx(0.4)
    assert rows["worse"]["delta"] == pytest.approx(-0.4) and rows["worse"]["delta_ci_high"] < 0
    assert rows["same"]["delta"] == 0.0 and rows["same"]["delta_ci_low"] == rows["same"]["delta_ci_high"] == 0.0
    assert rows["worse"]["yesno_after"] == 0.0 and rows["worse"]["id_after"] == 1.0


def test_analyze_writes_tables_and_figures(tmp_path):
    # dynamics from a run folder's alpha.jsonl
    run = tmp_path / "run"
    run.mkdir()
    (run / "alpha.jsonl").write_text("\n".join(json.dumps(r) for r in _alpha_rows()) + "\n")
    res = tmp_path / "results"
    out = analyze(AnalyzeConfig(analysis="dynamics", runs={"compact": str(run)}, n_windows=4,
                                results_root=str(res)))
    assert set(out) == {"dynamics/alpha_windows", "dynamics/alpha_trend", "dynamics/alpha_dynamics_compact"}
    assert (res / "figures" / "dynamics" / "alpha_dynamics_compact.svg").is_file()
    index = json.loads((res / "manifest.json").read_text())["artifacts"]
    assert index["tables/dynamics/alpha_trend"]["provenance"]["config"]["analysis"] == "dynamics"
    # forgetting from two eval folders
    ids = [f"mcq-{i}" for i in range(6)]
    _eval({i: True for i in ids}).write(tmp_path / "e0")
    _eval({i: i != "mcq-0" for i in ids}).write(tmp_path / "e1")
    analyze(AnalyzeConfig(analysis="forgetting", base_eval=str(tmp_path / "e0"), evals={"m": str(tmp_path / "e1")},
                          tasks=["mcq"], results_root=str(res), n_bootstrap=50))
    rows = json.loads((res / "tables" / "forgetting" / "forgetting.json").read_text())["rows"]
    assert rows[0]["delta"] == pytest.approx(-1 / 6)
    # validation from a scores jsonl
    scores = tmp_path / "scores.jsonl"
    scores.write_text("\n".join(json.dumps({"id": f"q{i // 2}", "teacher": f"t{i % 2}", "alpha": a, "mi": a,
                                            "consensus": 1 - a, "difficulty": 1 - a, "fused": a,
                                            "hsic": a * 2, "final_correct": a > 0.5})
                                for i, a in enumerate([0.9, 0.1, 0.7, 0.3, 0.4, 0.6])) + "\n")
    analyze(AnalyzeConfig(analysis="validation", scores=str(scores), results_root=str(res)))
    aucs = {r["score"]: r["auc"] for r in json.loads(
        (res / "tables" / "validation" / "metric_auc.json").read_text())["rows"]}
    assert aucs["alpha"] == 1.0 and aucs["consensus"] == 0.0
    hs = json.loads((res / "tables" / "validation" / "mi_vs_hsic.json").read_text())["rows"][0]
    assert hs["spearman"] == pytest.approx(1.0)


def test_analyze_cli_errors(capsys):
    from compact import cli

    assert cli.main(["analyze", "--set", "analysis=dynamics"]) == 2
    assert "runs" in capsys.readouterr().err
