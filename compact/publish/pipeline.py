"""The pipeline: world -> rationales -> training grid -> merges -> evaluation -> results -> notebooks -> book.

    compact pipeline --profile smoke            # CI-sized, minutes; results under artifacts/smoke/results
    compact pipeline --profile default --book   # the main job: full grid on the embedded world + the book
    compact pipeline --profile default --force  # re-execute every stage
    compact pipeline --profile real             # SmolLM2-135M-Instruct on the world's tasks (CPU, ~2 h)
    compact pipeline --profile paper --dry-run  # the real-model plan (GPUs), printed, not run

A profile (``configs/pipeline/<profile>.yaml``) names the world, the generate config, the training grid
(each run with its seeds), the merges, the evaluation config and the notebooks. Every stage has a key:
the hash of its resolved config and of the keys it depends on. ``<results>/pipeline.json`` records the
keys of the last complete execution with what each stage produced (run metrics included), so a fresh
clone with committed results rebuilds the book without training: a stage runs only when its key changed
or its outputs are missing, and upstream stages run only when a stale stage needs them. Training and
evaluation run in a pool of ``workers`` spawned processes with one torch thread each (on 2 cores two
single-threaded runs beat one two-threaded run for models this small); a run whose static weights come from
another run (``static_from``) trains in a second wave, after its source. Notebooks execute ``workers`` at a
time, each in its own kernel with the environment a one-at-a-time execution would give it (the smoke
profile's 14 chapters: 252 s instead of 371 s here).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import functools
import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any, Callable

import torch

from ..baselines.merging import merge_models
from ..config import to_dict
from ..errors import CompactError, ConfigError
from ..eval.evaluate import run_eval
from ..log import get_logger, quiet_progress_bars, setup_logging
from ..paths import (
    artifacts_dir,
    book_dir,
    configs_dir,
    repo_root,
    resolve,
)
from ..provenance import clean_stale_partials, git_commit, manifest
from ..teachers.generate import generate_store
from ..trainer.run import train
from ..world.build import build_world
from ..world.calibration import failed_gates
from . import report
from .book import build as build_book
from .book import overview_figure
from .notebooks import execute
from .plan import (
    PipelineConfig,
    Plan,
    _rel,
    describe_plan,
    eval_configs_for,
    load_pipeline,
    make_plan,
    notebook_parameters,
    plan_status,
    resolve_run,
    selected_notebooks,
    stale_report,
)
from .registry import EvalRecord, ModelRecord, Registry, StageTime, Tasks, read_registry

log = get_logger("pipeline")


# ------------------------------------------------------------------------------------------------ config


# ------------------------------------------------------------------------------------------------ plan


# what compact.publish.notebooks.execute does to an executed notebook beyond running it (2: parameter cells tagged for
# the book); part of every notebook's key, so a change re-executes the published notebooks


# ------------------------------------------------------------------------------------------------ registry


# ------------------------------------------------------------------------------------------------ workers
def _init_worker() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ.setdefault("COMPACT_QUIET", "1")
    quiet_progress_bars()

    torch.set_num_threads(1)


def _train_worker(tcfg, force: bool = False) -> str:
    setup_logging("WARNING")
    return str(train(tcfg, force=force))


def _eval_worker(ecfgs, force: bool = False) -> tuple[list[str], dict]:
    setup_logging("WARNING")
    dirs, metrics = [], {}
    for ecfg in ecfgs:
        result, out = run_eval(ecfg, force=force)
        dirs.append(str(out))
        metrics.update({t: m for t, m in result.metrics.items() if t != "all"})
    return dirs, metrics


def _notebook_worker(src: Path, out: Path, parameters: dict, timeout: int) -> float:
    """Execute one notebook; its wall time."""
    t0 = time.time()
    execute(src, out, parameters=parameters, timeout=timeout)
    return round(time.time() - t0, 1)


def _pool(workers: int, initializer: Callable[[], None] | None = _init_worker):
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                  initializer=initializer)


def execute_notebooks(jobs: list[tuple[Path, Path]], *, workers: int, parameters: dict, timeout: int,
                      done: Callable[[Path, float], None]) -> None:
    """Execute each (source, output) notebook, ``workers`` at a time, calling ``done(source, seconds)`` as each
    finishes; the first failure cancels the notebooks not yet started and is raised (its NotebookError).

    Side by side, each notebook runs in a spawned executor without the training workers' one-thread setting:
    its kernel inherits the pipeline's environment and computes what a one-at-a-time execution would."""
    if min(workers, len(jobs)) <= 1:
        for src, out in jobs:
            log.info("stage notebook %s", src.stem)
            done(src, _notebook_worker(src, out, parameters, timeout))
        return
    with _pool(min(workers, len(jobs)), initializer=None) as pool:
        futs = {pool.submit(_notebook_worker, src, out, parameters, timeout): src for src, out in jobs}
        log.info("stage notebooks: %d on %d executors", len(jobs), min(workers, len(jobs)))
        for fut in cf.as_completed(futs):
            try:
                seconds = fut.result()
            except BaseException:
                for f in futs:
                    f.cancel()
                raise
            log.info("notebook %s executed in %.0f s", futs[fut].stem, seconds)
            done(futs[fut], seconds)


def _map(workers: int, fn: Callable, jobs: dict[str, Any], what: str) -> dict[str, Any]:
    """Run ``fn`` over ``jobs`` in the pool; the first failure names the job and stops the pipeline."""
    out: dict[str, Any] = {}
    if not jobs:
        return out
    if workers == 1:
        for k, v in jobs.items():
            t0 = time.time()
            out[k] = fn(v)
            log.info("%s %s done in %.0f s", what, k, time.time() - t0)
        return out
    with _pool(workers) as pool:
        futs = {pool.submit(fn, v): k for k, v in jobs.items()}
        for fut in cf.as_completed(futs):
            k = futs[fut]
            try:
                out[k] = fut.result()
            except CompactError as exc:
                for f in futs:
                    f.cancel()
                raise CompactError(f"{what} {k} failed: {exc}") from None
            log.info("%s %s done (%d/%d)", what, k, len(out), len(jobs))
    return out


# ------------------------------------------------------------------------------------------------ stages
class Runner:
    """Executes a :class:`Plan` lazily: each ``ensure_*`` builds (or reuses) its stage once."""
    def __init__(self, plan: Plan, *, force: bool = False):
        self.plan = plan
        self.force = force
        self._world = None
        self._store = None
        self.timings: dict[str, float] = {}

    def _timed(self, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.time()
        out = fn()
        self.timings[name] = round(self.timings.get(name, 0.0) + time.time() - t0, 1)
        return out

    def world(self):
        if self.plan.world_cfg is None:
            return None
        if self._world is None:
            log.info("stage world (%s)", self.plan.keys["world"])
            self._world = self._timed("world", lambda: build_world(self.plan.world_cfg, force=self.force))
        return self._world

    def store(self) -> Path:
        if self._store is None:
            self.world()
            log.info("stage rationales (%s)", self.plan.keys["generate"])
            self._store = self._timed("rationales", lambda: generate_store(self.plan.generate_cfg))
        return self._store

    def train_all(self) -> dict[str, Path]:
        """Train (or reuse) every run: first the runs that need no other, then, in a second wave, the runs whose
        static weights come from a first-wave run (``static_from``), with the weights its artifact gives."""
        self.store()
        plan = self.plan
        # seed by seed (every method's seed 0, then seed 1, ...): a grid stopped part-way has matched seeds
        first = dict(sorted(((k, v) for k, v in plan.runs.items() if k not in plan.static_from),
                            key=lambda kv: plan.run_meta[kv[0]]["seed"]))
        log.info("stage training: %d runs on %d workers", len(first), plan.cfg.workers)
        worker = functools.partial(_train_worker, force=self.force)
        done = self._timed("training", lambda: _map(plan.cfg.workers, worker, first, "run"))
        if plan.static_from:
            second = {rid: resolve_run(plan, rid, Path(done[src])) for rid, src in plan.static_from.items()}
            plan.runs.update(second)  # the configs they train with, weights included
            log.info("stage training, second wave: %d runs with their sources' mean alpha", len(second))
            done.update(self._timed("training", lambda: _map(plan.cfg.workers, worker, second, "run")))
        return {k: Path(v) for k, v in done.items()}

    def merge_all(self, run_dirs: dict[str, Path]) -> dict[str, Path]:
        out = {}
        for mid, m in self.plan.merges.items():
            spec = m["spec"]
            target = artifacts_dir() / "merges" / f"{mid}-{self.plan.keys['merges'][mid]}"
            if not (target / "config.json").is_file() or self.force:
                self._timed("merges", lambda: merge_models([run_dirs[x] for x in m["members"]], target,
                                                           method=spec["method"], base=self.base_model(),
                                                           density=spec["density"], lam=spec["lam"]))
            out[mid] = target
        return out

    def evaluate_all(self, models: dict[str, Path]) -> dict[str, dict]:
        jobs = {mid: eval_configs_for(self.plan.cfg, str(path)) for mid, path in models.items()}
        log.info("stage evaluation: %d models", len(jobs))
        worker = functools.partial(_eval_worker, force=self.force)
        done = self._timed("evaluation", lambda: _map(self.plan.cfg.workers, worker, jobs, "eval"))
        return {k: {"dirs": v[0], "metrics": v[1]} for k, v in done.items()}

    def base_model(self) -> Path | str:
        """The undistilled student: ``base_model`` when the profile names one (a real model, also on the
        embedded world's tasks), else the world's base student."""
        if self.plan.cfg.base_model:
            return self.plan.cfg.base_model
        w = self.world()
        if w is None:
            raise CompactError(f"pipeline profile {self.plan.cfg.profile!r}: no world and no base_model: "
                               "nothing to evaluate as the base student")
        return w.student_path


def check_calibration(world, *, allow: bool) -> list[str]:
    """The world's failed calibration gates; an error unless ``allow`` (then they are published with it)."""
    if world is None or not (world.path / "calibration.json").is_file():
        return []

    failed = failed_gates(json.loads((world.path / "calibration.json").read_text()))
    if failed and not allow:
        raise CompactError(f"world {world.path.name} is not calibrated ({failed[0]}"
                           + (f"; +{len(failed) - 1} more" if len(failed) > 1 else "")
                           + "): results from it are not published; pass --allow-uncalibrated to publish anyway")
    return failed


def check_clean_tree(results: Path, *, allow: bool) -> None:
    """Refuse to publish results into the repository's ``results/`` from a working tree with uncommitted changes
    (their manifest would name a commit that did not make them), unless ``allow``; results elsewhere (the smoke
    profile's, under artifacts/) are not committed and not checked."""
    try:
        results.resolve().relative_to((repo_root() / "results").resolve())
    except ValueError:
        return
    if not allow and git_commit().get("dirty"):
        raise ConfigError(f"the working tree has uncommitted changes: results published into {_rel(results)} would "
                          f"name a commit that did not make them; commit first (or pass --allow-dirty)")


def run_pipeline(cfg: PipelineConfig, *, force: bool = False, book: bool = False,
                 allow_uncalibrated: bool = False, allow_dirty: bool = False) -> dict[str, Any]:
    """Bring every stage of ``cfg`` up to date (lazily) and optionally build the book."""
    t0 = time.time()
    plan = make_plan(cfg)
    runner = Runner(plan, force=force)
    # how many items each stage has to run now: the recorded stage times become per-item times (--dry-run)
    to_run = {r["stage"]: (r["of"] if force else r["todo"]) for r in plan_status(plan)}
    results = plan.results
    results.mkdir(parents=True, exist_ok=True)
    reg = read_registry(results)
    stale = stale_report(plan)
    # --force re-executes THIS profile's stages in place: each artifact is replaced atomically when its
    # stage re-runs (train/eval with force=True, merges rewritten), nothing of other profiles is touched;
    # temporary folders that killed runs left anywhere under the artifacts root are removed first

    clean_stale_partials(artifacts_dir(), recursive=True, max_depth=6)
    if force or stale["results"]:
        uncalibrated = check_calibration(runner.world(), allow=allow_uncalibrated or cfg.allow_uncalibrated)
        run_dirs_ = runner.train_all()
        merge_dirs = runner.merge_all(run_dirs_)
        models = {"base": runner.base_model(), **run_dirs_, **merge_dirs}
        evals = runner.evaluate_all(models)
        check_clean_tree(results, allow=allow_dirty)  # training and evaluation artifacts carry their own manifests
        registry = Registry(
            profile=cfg.profile,
            keys={k: v for k, v in plan.keys.items() if k != "notebooks"},
            world={"path": _rel(runner.world().path) if runner.world() is not None else None,
                   "key": plan.keys["world"]},
            tasks=Tasks(id=list(cfg.id_tasks), ood=list(cfg.ood_tasks)),
            store={"path": _rel(runner.store()), "key": plan.keys["generate"]},
            runs={rid: ModelRecord(**plan.run_meta[rid], path=_rel(p)) for rid, p in run_dirs_.items()},
            merges={mid: ModelRecord(name=mid.rsplit("-s", 1)[0], seed=m["seed"], group=m["spec"]["group"],
                                     label=m["spec"]["label"] or m["spec"]["name"],
                                     method=f"merge-{m['spec']['method']}", members=list(m["members"]),
                                     path=_rel(merge_dirs[mid]))
                    for mid, m in plan.merges.items()},
            evals={mid: EvalRecord(dirs=[_rel(Path(d)) for d in v["dirs"]], metrics=v["metrics"])
                   for mid, v in evals.items()},
            config=to_dict(cfg),
            uncalibrated=list(uncalibrated),
            # what each stage took when it last ran (cached stages keep the measurement that made them)
            timings_s=dict(reg.timings_s),
            notebook_seconds=dict(reg.notebook_seconds),
        )
        log.info("stage results")
        runner._timed("results", lambda: report.write_all(registry, results, runner=runner,
                                                          validation_limit=cfg.validation_limit,
                                                          latent_limit=cfg.latent_limit,
                                                          curves=cfg.curves, curve_limit=cfg.curve_limit,
                                                          validation_generate=cfg.validation_generate,
                                                          validation_scorers=cfg.validation_scorers))
        registry.manifest = manifest(cfg, kind="pipeline")
        registry.keys["notebooks"] = {}
        registry.write(results)
        reg = registry
        stale = stale_report(plan)
    todo = selected_notebooks(cfg) if force else [p for p in selected_notebooks(cfg) if p.stem in stale["notebooks"]]
    if todo:
        runner.world()  # notebooks demonstrate on the profile's world and store
        runner.store()
        params = notebook_parameters(cfg)

        def done(src: Path, seconds: float) -> None:
            keys = {**reg.keys.get("notebooks", {}), src.stem: plan.keys["notebooks"][src.stem]}
            # the executed notebook carries no timings (they would churn its diff): the registry keeps them
            times = {**reg.notebook_seconds, src.stem: seconds}
            # in chapter order, whichever order the executors finished in (a stable pipeline.json)
            reg.keys["notebooks"] = dict(sorted(keys.items()))
            reg.notebook_seconds = dict(sorted(times.items()))
            reg.write(results)  # progress survives a later notebook's failure

        # the slowest notebooks (last execution) first, so that the executors finish together
        jobs = sorted(((src, results / "notebooks" / f"{src.stem}.ipynb") for src in todo),
                      key=lambda j: -reg.notebook_seconds.get(j[0].stem, 0.0))
        runner._timed("notebooks", lambda: execute_notebooks(jobs, workers=cfg.workers, parameters=params,
                                                             timeout=cfg.notebook_timeout, done=done))
    planned = set(plan.keys["notebooks"])  # a notebook the profile no longer executes leaves its registry
    if reg.published and (set(reg.notebook_seconds) - planned or set(reg.keys.get("notebooks", {})) - planned):
        reg.notebook_seconds = {k: v for k, v in reg.notebook_seconds.items() if k in planned}
        reg.keys["notebooks"] = {k: v for k, v in reg.keys.get("notebooks", {}).items() if k in planned}
        reg.write(results)
    measured = {k: StageTime(seconds=v, items=to_run[k]) for k, v in runner.timings.items() if to_run.get(k)}
    if measured and reg.published:  # what each stage took for how many items, for the next --dry-run's estimate
        reg.timings_s.update(measured)
        reg.write(results)
    summary = {"profile": cfg.profile, "trained": bool(force or runner.timings.get("training")),
               "notebooks_executed": [p.stem for p in todo], "timings_s": runner.timings}
    if book:
        overview_figure(book_dir() / "figures" / "overview")
        t_book = time.time()
        build_book(results, resolve(cfg.html))
        summary["timings_s"]["book"] = round(time.time() - t_book, 1)
        summary["html"] = str(resolve(cfg.html) / "index.html")
    summary["total_s"] = round(time.time() - t0, 1)
    return summary


# ------------------------------------------------------------------------------------------------ CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    profiles = " | ".join(sorted(p.stem for p in (configs_dir() / "pipeline").glob("*.yaml")))
    parser.add_argument("--profile", default="default", help=f"{profiles} (configs/pipeline/*.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a pipeline config key (dotted, type-checked); repeatable")
    parser.add_argument("--book", action="store_true", help="build the Jupyter Book at the end")
    parser.add_argument("--force", action="store_true", help="re-execute every stage, ignoring caches")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and what is stale; run nothing")
    parser.add_argument("--allow-uncalibrated", action="store_true",
                        help="publish results from a world whose calibration gates fail (the book says so)")
    parser.add_argument("--allow-dirty", action="store_true",
                        help="publish results into results/ from a working tree with uncommitted changes")
    parser.add_argument("--log-level", default="INFO")


def run(args: argparse.Namespace) -> int:
    cfg = load_pipeline(args.profile, args.overrides)
    if args.dry_run:
        print(describe_plan(make_plan(cfg)))
        return 0
    summary = run_pipeline(cfg, force=args.force, book=args.book, allow_uncalibrated=args.allow_uncalibrated,
                           allow_dirty=args.allow_dirty)
    print(json.dumps(summary, indent=1))
    return 0
