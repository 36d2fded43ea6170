"""The pipeline: profiles resolve, keys are stable, failures publish nothing, the smoke DAG builds the book."""
import json
import os
import subprocess
import sys

import pytest

from compact.errors import ConfigError
from compact.paths import repo_root
from compact.publish import pipeline as P
from compact.publish import plan as PLAN
from compact.publish.registry import Registry, StageTime, read_registry
from compact.teachers.generate import load_config as load_generate_config


@pytest.mark.parametrize("profile", ["smoke", "default", "paper", "real"])
def test_profile_plans(profile):
    cfg = P.load_pipeline(profile)
    plan = P.make_plan(cfg)
    assert plan.runs and set(plan.keys) >= {"world", "generate", "runs", "merges", "eval", "results", "notebooks"}
    assert P.make_plan(P.load_pipeline(profile)).keys == plan.keys  # deterministic
    for mid, m in plan.merges.items():
        assert all(x in plan.runs for x in m["members"])
    # every run of the grid trains on the profile's world (if any) and store
    for tcfg in plan.runs.values():
        assert tcfg.data.generate == cfg.generate and (not cfg.world or tcfg.data.world == cfg.world)


def test_real_profile_trains_the_packaged_model_on_the_world():
    """The real profile: SmolLM2 replaces the world's student as the base and as every run's student (LoRA);
    its base evaluation is keyed by the GGUF file's bytes, not by the world's student."""
    from compact.inputs.packaged import cached_folder

    cfg = P.load_pipeline("real")
    plan = P.make_plan(cfg)
    assert cfg.world and cfg.base_model == "packaged:smollm2-135m-instruct"
    for tcfg in plan.runs.values():
        assert tcfg.model.path == cfg.base_model and tcfg.model.lora is not None
    assert {t.method for t in plan.runs.values()} == {"compact", "uniform"}
    assert plan.keys["eval"]["base"] != P.make_plan(P.load_pipeline("real", ["base_model="])).keys["eval"]["base"]
    assert cached_folder("smollm2-135m-instruct").name.startswith("smollm2-135m-instruct-")
    # world questions also through the GSM8K adapter; SmolLM2's own rationales beside the simulated teachers',
    # scored by SmolLM2 and by the world's student, part of the results key
    assert "configs/eval/world_gsm8k.yaml" in cfg.evals
    gen = load_generate_config(cfg.validation_generate)
    assert [t.backend for t in gen.teachers] == ["simulated"] * 4 + ["hf"]
    assert gen.teachers[-1].model == cfg.base_model and cfg.validation_scorers == ["world"]
    assert plan.keys["results"] != P.make_plan(P.load_pipeline("real", ["validation_scorers=[]"])).keys["results"]


def test_scorer_comparison_needs_its_rationales_and_a_world():
    with pytest.raises(ConfigError, match="validation_scorers needs validation_generate"):
        P.load_pipeline("default", ["validation_scorers=[world]"])
    with pytest.raises(ConfigError, match="names 'world', but the profile has no world"):
        P.load_pipeline("paper", ["validation_generate=configs/generate/paper_gsm8k.yaml",
                                  "validation_scorers=[world]"])


def test_default_grid_covers_the_issue():
    plan = P.make_plan(P.load_pipeline("default"))
    names = {m["name"] for m in plan.run_meta.values()}
    assert {"compact", "uniform", "mcckd", "compact-variants", "no-consensus", "no-mi", "no-difficulty",
            "no-consistency"} <= names
    assert sum(1 for n in names if n.startswith("single-")) == 4
    seeds = {n: sum(1 for m in plan.run_meta.values() if m["name"] == n) for n in ("compact", "uniform", "oracle",
                                                                                    "random")}
    assert seeds == {"compact": 3, "uniform": 3, "oracle": 3, "random": 3}  # the comparisons that must resolve
    assert {plan.run_meta[r]["method"] for r in plan.runs if plan.run_meta[r]["name"] in ("oracle", "random")} == \
        {"oracle", "random"}
    curve_runs = [r for r, t in plan.runs.items() if t.log.curve_steps]
    assert sorted(plan.run_meta[r]["name"] for r in curve_runs) == ["compact", "single-qwen", "uniform"]
    assert {m["spec"]["method"] for m in plan.merges.values()} == {"average", "ties"}


def test_override_changes_only_what_it_touches():
    a = P.make_plan(P.load_pipeline("smoke"))
    b = P.make_plan(P.load_pipeline("smoke", ["eval_overrides=[data.limit=8]"]))
    assert a.keys["runs"] == b.keys["runs"] and a.keys["eval"] != b.keys["eval"]


def test_bad_profile_and_keys():
    with pytest.raises(ConfigError, match="unknown pipeline profile 'nope'"):
        P.load_pipeline("nope")
    with pytest.raises(ConfigError, match="unknown config key 'workerz'"):
        P.load_pipeline("smoke", ["workerz=3"])
    with pytest.raises(ConfigError, match="merge 'm' names unknown runs"):
        P.load_pipeline("smoke", ["merges=[{name: m, runs: [ghost]}]"])


def test_cli_error_is_one_line():
    out = subprocess.run([sys.executable, "-m", "compact.cli", "pipeline", "--profile", "nope"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error: unknown pipeline profile") and "Traceback" not in out.stderr


def test_failed_notebook_is_not_published(tmp_path):
    from compact.publish.notebooks import NotebookError, execute

    src = tmp_path / "99_broken.py"
    src.write_text('# %% [markdown]\n# # Broken\n\n# %% tags=["parameters"]\nx = 1\n\n# %%\nraise RuntimeError("boom")\n')
    out = tmp_path / "published" / "99_broken.ipynb"
    with pytest.raises(NotebookError, match="99_broken.py failed"):
        execute(src, out, parameters={"x": 2}, timeout=120, cwd=tmp_path)
    assert not out.exists()
    assert not list((tmp_path / "published").glob("*"))


def test_notebooks_execute_side_by_side_and_a_failure_reaches_the_pipeline(tmp_path):
    """The pipeline's notebook stage with 2 executors: each notebook publishes its own output and is reported as
    done, and a failing one raises its NotebookError (cell and message) in the pipeline's process, publishing
    nothing."""
    from compact.publish.notebooks import NotebookError

    head = '# %% [markdown]\n# # Page\n\n# %% tags=["parameters"]\nx = 1\n\n# %%\n'
    srcs = {}
    bodies = {"97_a": 'print("a", x)', "98_b": 'print("b", x)', "99_broken": 'raise RuntimeError("boom")'}
    for name, body in bodies.items():
        srcs[name] = tmp_path / f"{name}.py"
        srcs[name].write_text(head + body + "\n")
    out = tmp_path / "published"
    finished = {}
    jobs = [(srcs[n], out / f"{n}.ipynb") for n in ("97_a", "98_b")]
    P.execute_notebooks(jobs, workers=2, parameters={"x": 2}, timeout=120,
                        done=lambda src, s: finished.setdefault(src.stem, s))
    assert set(finished) == {"97_a", "98_b"} and all(s > 0 for s in finished.values())
    assert "a 2" in (out / "97_a.ipynb").read_text() and "b 2" in (out / "98_b.ipynb").read_text()
    with pytest.raises(NotebookError, match="99_broken.py failed.*RuntimeError: boom"):
        P.execute_notebooks([(srcs["99_broken"], out / "99_broken.ipynb"), jobs[0]], workers=2,
                            parameters={"x": 2}, timeout=120, done=lambda src, s: None)
    assert not (out / "99_broken.ipynb").exists()


@pytest.mark.parametrize("profile", ["default", "real"])
def test_committed_results_are_fresh(profile):
    """The committed results of each published profile (results/, and results/real: the book's SmolLM2 chapter)
    come from the current configs and notebooks (re-run `compact pipeline --profile <profile>` if not)."""
    plan = P.make_plan(P.load_pipeline(profile))
    reg = read_registry(plan.cfg.results)
    assert reg.published, f"{plan.cfg.results}/pipeline.json is missing: run the {profile} profile and commit it"
    stale = P.stale_report(plan)
    assert not stale["results"], f"{plan.cfg.results} tables are stale against configs/ (re-run the {profile} profile)"
    assert not stale["notebooks"], f"executed notebooks are stale: {stale['notebooks']} (re-run the {profile} profile)"
    if profile in PUBLISHED_DIRTY:
        assert stale["dirty"], f"{profile}: its results are clean now; drop it from PUBLISHED_DIRTY"
    else:
        assert not stale["dirty"], f"{plan.cfg.results} was published from a tree with uncommitted changes"


# Results published before the clean-tree rule, from a tree with uncommitted changes (their manifest says so); the
# seeded profile's results replace the default profile's. Every other profile must be clean.
PUBLISHED_DIRTY = {"default"}


def test_results_are_published_from_a_clean_tree(tmp_path, monkeypatch):
    """The pipeline refuses to publish into results/ from a working tree with uncommitted changes (a one-line
    error) unless allowed; the staleness report flags results whose manifest records a dirty tree."""
    from compact.errors import ConfigError
    from compact.paths import repo_root
    from compact.publish import pipeline as pipe
    from compact.publish.registry import Registry

    monkeypatch.setattr(pipe, "git_commit", lambda: {"commit": "abc", "dirty": True})
    with pytest.raises(ConfigError, match="uncommitted changes.*commit first"):
        pipe.check_clean_tree(repo_root() / "results" / "seeded", allow=False)
    pipe.check_clean_tree(repo_root() / "results" / "seeded", allow=True)
    pipe.check_clean_tree(tmp_path / "results", allow=False)  # outside results/: not committed, not checked
    monkeypatch.setattr(pipe, "git_commit", lambda: {"commit": "abc", "dirty": False})
    pipe.check_clean_tree(repo_root() / "results", allow=False)

    cfg = P.load_pipeline("smoke", [f"results={tmp_path / 'r'}"])
    plan = P.make_plan(cfg)
    for dirty in (True, False):
        Registry(profile="smoke", keys=dict(plan.keys), manifest={"git": {"commit": "abc", "dirty": dirty}}).write(
            tmp_path / "r")
        assert P.stale_report(plan)["dirty"] is dirty


@pytest.fixture(scope="session")
def smoke_book():
    """Run the smoke pipeline with the book once per session (the real CLI, as `make smoke` does)."""
    env = dict(os.environ, COMPACT_QUIET="1")
    proc = subprocess.run([sys.executable, "-m", "compact.cli", "pipeline", "--profile", "smoke", "--book",
                           "--log-level", "WARNING"], cwd=repo_root(), capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_smoke_pipeline_produces_results(smoke_book):
    cfg = P.load_pipeline("smoke")
    results = P.make_plan(cfg).results
    reg = read_registry(results)
    assert set(reg.evals) >= {"base", "compact-s0", "uniform-s0", "direct-avg-s0", "ties-s0"}
    for name in ("main/main_table", "main/comparisons", "forgetting/forgetting", "latent/pca_shift",
                 "calibration/calibration", "calibration/rationales", "curves/learning_curves",
                 "parity/objective_paths", "parity/thinking_words", "validation/scorers"):
        assert (results / "tables" / f"{name}.csv").is_file(), name
    assert not P.stale_report(P.make_plan(cfg))["notebooks"]
    assert reg.uncalibrated  # the smoke world fails its gates; the registry (and the book) say so


@pytest.mark.slow
@pytest.mark.parametrize("notebook", ["08_main_table", "10_latent_space", "13_instrument", "09_ablations"])
def test_results_notebooks_show_their_figures(smoke_book, notebook):
    """A results notebook whose cells draw figures holds them as outputs: a plotting helper that switched the
    kernel's backend away from inline would leave the page without them."""
    import nbformat

    results = P.make_plan(P.load_pipeline("smoke")).results
    nb = nbformat.read(results / "notebooks" / f"{notebook}.ipynb", as_version=4)
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert images, f"{notebook} shows no figure"


def _shown_pngs(notebooks) -> set[bytes]:
    import base64

    import nbformat

    out = set()
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        out |= {base64.b64decode(o["data"]["image/png"]) for c in nb.cells if c.cell_type == "code"
                for o in c.get("outputs", []) if "image/png" in o.get("data", {})}
    return out


def assert_every_figure_shown(results) -> None:
    """Every PNG the results stage wrote is, byte for byte, an output of an executed notebook (a page)."""
    figures = sorted((results / "figures").rglob("*.png"))
    assert figures, f"no figures under {results}"
    shown = _shown_pngs(sorted((results / "notebooks").glob("*.ipynb")))
    missing = [str(f.relative_to(results)) for f in figures if f.read_bytes() not in shown]
    assert not missing, f"results figures on no page: {missing}"


@pytest.mark.slow
def test_every_results_figure_is_on_a_page(smoke_book):
    assert_every_figure_shown(P.make_plan(P.load_pipeline("smoke")).results)


@pytest.mark.parametrize("folder", ["", "real"])
def test_every_committed_figure_is_on_a_page(folder):
    """The committed results (results/, and results/real for the SmolLM2 chapter): every figure file appears in
    a committed executed notebook of the same profile (a book page)."""
    from compact.paths import results_dir

    assert_every_figure_shown(results_dir() / folder)


@pytest.mark.slow
def test_executed_notebooks_hide_their_parameter_cells(smoke_book):
    """Every executed notebook removes its own defaults cell from the page and collapses papermill's injected
    values (the reader can open them; they are what the pipeline ran with)."""
    import nbformat

    plan = P.make_plan(P.load_pipeline("smoke"))
    for name in plan.keys["notebooks"]:
        nb = nbformat.read(plan.results / "notebooks" / f"{name}.ipynb", as_version=4)
        tags = [c.metadata.get("tags", []) for c in nb.cells]
        assert any("parameters" in t and "remove-cell" in t for t in tags), name
        assert any("injected-parameters" in t and "hide-cell" in t for t in tags), name


@pytest.mark.slow
def test_every_exercise_solution_ran(smoke_book):
    """Every published notebook executed each exercise's solution cell: it holds output and no error (a stale
    exercise, one whose names or files moved, fails the notebook and with it this run)."""
    import nbformat

    plan = P.make_plan(P.load_pipeline("smoke"))
    assert plan.keys["notebooks"]
    for name in plan.keys["notebooks"]:
        nb = nbformat.read(plan.results / "notebooks" / f"{name}.ipynb", as_version=4)
        solutions = [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]
        assert solutions, f"{name}: no solution cells"
        for c in solutions:
            kinds = [o.output_type for o in c.get("outputs", [])]
            assert kinds and "error" not in kinds, f"{name}: a solution cell ran without output: {c.source[:80]!r}"


@pytest.mark.slow
def test_per_sample_page_shows_every_method_and_the_teachers(smoke_book):
    """The per-sample page holds, for each task's first test questions, the gold answer, a row per evaluated
    method and each simulated teacher's rationale."""
    import nbformat

    plan = P.make_plan(P.load_pipeline("smoke"))
    nb = nbformat.read(plan.results / "notebooks" / "14_samples.ipynb", as_version=4)
    page = "".join(o.get("data", {}).get("text/html", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    reg = read_registry(plan.results)
    n_questions = 2 * (len(reg.tasks.id) + len(reg.tasks.ood))
    assert page.count("<b>gold:</b>") == n_questions
    names = {m.rsplit("-s", 1)[0] for m in reg.evals}
    assert page.count("<tr><td>") == n_questions * len(names)
    assert page.count("<details><summary>sim-") == n_questions * 4


@pytest.mark.slow
@pytest.mark.browser
def test_smoke_book_in_headless_chromium(smoke_book):
    from compact.paths import resolve
    from compact.publish.browser import check_site, chromium_path

    if chromium_path() is None:
        pytest.skip("chromium is not installed (make test installs Debian's chromium when run as root)")
    html = resolve(P.load_pipeline("smoke").html)
    shot = resolve("artifacts/smoke/screenshot.png")
    # the method page, the main table page and one mechanism page, kept for a reader of the CI log
    shots = {page: resolve(f"artifacts/smoke/screenshot-{name}.png") for name, page in
             (("method", "method.html"), ("main-table", "notebooks/08_main_table.html"),
              ("consensus", "notebooks/03_consensus.html"))}
    figures = sorted((P.make_plan(P.load_pipeline("smoke")).results / "figures").rglob("*.png"))
    assert len(figures) >= 5
    # raises on unrendered math, a request to another host, or a results figure that no page shows
    stats = check_site(html, shot, shots=shots, figures=figures)
    assert stats["pages"] >= 14 and stats["images"] >= 5 and stats["links"] > 50 and stats["figures"] == len(figures)
    assert stats["math"] >= 50 and stats["external_requests"] == 0
    for path in (shot, *shots.values()):
        assert path.is_file() and path.stat().st_size > 10_000, path
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()  # MathJax ships with the book


def test_dry_run_reads_as_a_plan_with_estimates(monkeypatch):
    """--dry-run prints one line per stage (cached or to run, with an estimate scaled from the last run's
    measured stage time), not raw JSON."""
    plan = P.make_plan(P.load_pipeline("smoke"))
    text = P.describe_plan(plan)
    assert not text.lstrip().startswith("{")
    for stage in ("world", "rationales", "training", "evaluation", "results", "notebooks"):
        assert any(line.startswith(stage) for line in text.splitlines()), stage
    # a registry that recorded every key but one run's eval, and 600 s of evaluation last time
    reg = Registry(keys={**plan.keys, "eval": {**plan.keys["eval"], "base": "old"}},
                   timings_s={"evaluation": StageTime(seconds=600.0, items=4), "training": StageTime(seconds=100.0, items=2)})
    monkeypatch.setattr(PLAN, "read_registry", lambda results: reg)  # plan_status reads the registry in compact.publish.plan
    rows = {r["stage"]: r for r in P.plan_status(plan)}
    n_eval = len(plan.keys["eval"])
    assert rows["evaluation"]["todo"] == 1 and rows["evaluation"]["of"] == n_eval
    assert rows["evaluation"]["estimate_s"] == 150.0  # the last run's 600 s over 4 models, for 1 model
    assert rows["merges"]["todo"] == 0


def test_scorer_comparison_keeps_every_rationale_and_separates_the_simulated_teachers(monkeypatch):
    """Each scorer reads every rationale (policy keep: a real model's unparseable rationale is a wrong one), and,
    when a real model's rationales sit beside the simulated teachers', the simulated teachers' alone get their
    own AUC rows (correctness without the style difference)."""
    import random
    import types

    from compact.analysis.validation import score_auc_table
    from compact.publish import report

    gen = load_generate_config(P.load_pipeline("real").validation_generate)
    monkeypatch.setattr(report, "generate_store", lambda cfg: "store")
    rng = random.Random(0)
    seen, returned = [], []

    def fake_score(cfg):
        seen.append((cfg.student, cfg.input.split, cfg.input.policy))
        returned.append([{"teacher": t.name, "final_correct": rng.random() < 0.7, "alpha": rng.random(),
                          "mi": rng.random(), "consensus": rng.random(), "difficulty": rng.random(),
                          "fused": rng.random()} for _ in range(6) for t in gen.teachers])
        return returned[-1], None

    monkeypatch.setattr(report, "run_score", fake_score)
    runner = types.SimpleNamespace(base_model=lambda: "model-a",
                                   world=lambda: types.SimpleNamespace(student_path="model-b"))
    registry = types.SimpleNamespace(config={"base_model": "real", "world": "w.yaml"},
                                     tasks=types.SimpleNamespace(id=["arith", "symbolic"]))
    rows = report.scorer_comparison(registry, runner, generate=P.load_pipeline("real").validation_generate,
                                    scorers=["world"], limit=6)
    assert {p for *_, p in seen} == {"keep"} and len(seen) == 4
    assert {r["scorer"] for r in rows} == {"real", "world student"}
    groups = [r["teacher"] for r in rows if r["scorer"] == "real" and r["score"] == "alpha"]
    assert groups == ["all", "simulated teachers", *[t.name for t in gen.teachers]]
    # the simulated rows are the AUCs of the simulated teachers' rationales alone (the first scorer's two tasks)
    first = returned[0] + returned[1]
    sim = {t.name for t in gen.teachers if t.backend == "simulated"}
    expect = {r["score"]: r["auc"] for r in score_auc_table([r for r in first if r["teacher"] in sim])}
    got = {r["score"]: r["auc"] for r in rows if r["scorer"] == "real" and r["teacher"] == "simulated teachers"}
    assert got == pytest.approx(expect)


def test_training_estimate_from_measured_costs(tmp_path, monkeypatch):
    """--dry-run's training estimate: each stale run's remaining steps x questions per step x the measured seconds
    per question of its family (finished runs' summaries), over the workers; unknown without a measured family."""
    import json as _json

    root = tmp_path / "runs"
    for name, method, qps in (("a", "compact", 4.0), ("b", "uniform", 2.0), ("c", "single", 10.0)):
        (root / name).mkdir(parents=True)
        (root / name / "summary.json").write_text(_json.dumps({"method": method, "questions_per_s": qps,
                                                                "num_processes": 1}))
    costs = PLAN.measured_step_costs(root)
    assert costs == {"multi": pytest.approx((0.25 + 0.5) / 2), "single": pytest.approx(0.1)}
    plan = P.make_plan(P.load_pipeline("smoke", ["workers=2"]))
    monkeypatch.setattr(PLAN, "measured_step_costs", lambda root=None: costs)
    monkeypatch.setattr(PLAN, "is_complete", lambda path: False)
    want = sum(t.optim.max_steps * t.optim.questions_per_step * costs["single" if t.method == "single" else "multi"]
               for t in plan.runs.values()) / 2
    assert PLAN.training_estimate(plan) == pytest.approx(want)
    monkeypatch.setattr(PLAN, "measured_step_costs", lambda root=None: {"multi": 0.1})
    assert PLAN.training_estimate(plan) is None  # single-teacher runs have no measured cost
