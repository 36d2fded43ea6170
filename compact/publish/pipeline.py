"""The pipeline: world -> rationales -> training grid -> merges -> evaluation -> results -> notebooks -> book.

    compact pipeline --profile smoke            # CI-sized, minutes; results under artifacts/smoke/results
    compact pipeline --profile default --book   # the main job: full grid on the embedded world + the book
    compact pipeline --profile default --force  # re-execute every stage
    compact pipeline --profile paper --dry-run  # the real-model plan (GPUs), printed, not run

A profile (``configs/pipeline/<profile>.yaml``) names the world, the generate config, the training grid
(each run with its seeds), the merges, the evaluation config and the notebooks. Every stage has a key:
the hash of its resolved config and of the keys it depends on. ``<results>/pipeline.json`` records the
keys of the last complete execution with what each stage produced (run metrics included), so a fresh
clone with committed results rebuilds the book without training: a stage runs only when its key changed
or its outputs are missing, and upstream stages run only when a stale stage needs them. Training and
evaluation run in a pool of ``workers`` spawned processes with one torch thread each (on 2 cores two
single-threaded runs beat one two-threaded run for models this small).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import functools
import hashlib
import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any, Callable, Literal

from ..config import config_hash, load, to_dict
from ..errors import CompactError, ConfigError
from ..log import get_logger
from ..paths import configs_dir, notebooks_dir, repo_root, resolve
from ..provenance import manifest, write_json

log = get_logger("pipeline")
REGISTRY = "pipeline.json"


# ------------------------------------------------------------------------------------------------ config
@dataclasses.dataclass
class RunSpec:
    """One training configuration of the grid, run once per seed."""

    name: str
    config: str                                   # a configs/train/*.yaml
    overrides: list[str] = dataclasses.field(default_factory=list)
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0])
    group: Literal["main", "baseline", "variant", "ablation"] = "main"
    label: str = ""                               # display name in tables ("" = name)


@dataclasses.dataclass
class MergeSpec:
    """A post-hoc merge of trained runs (seed-matched): Direct Avg. or TIES."""

    name: str
    runs: list[str]                               # RunSpec names
    method: Literal["average", "ties"] = "average"
    density: float = 0.2
    lam: float = 1.0
    group: Literal["baseline", "variant"] = "baseline"
    label: str = ""


@dataclasses.dataclass
class PipelineConfig:
    profile: str = "default"
    world: str = "configs/world/default.yaml"
    generate: str = "configs/generate/world.yaml"
    # world: "" for real models (the paper profile): then base_model is the undistilled student
    base_model: str = ""
    evals: list[str] = dataclasses.field(default_factory=lambda: ["configs/eval/world.yaml"])
    id_tasks: list[str] = dataclasses.field(default_factory=lambda: ["arith", "variation", "symbolic"])
    ood_tasks: list[str] = dataclasses.field(default_factory=lambda: ["mcq", "yesno"])
    eval_overrides: list[str] = dataclasses.field(default_factory=list)
    train_overrides: list[str] = dataclasses.field(default_factory=list)  # applied to every run
    runs: list[RunSpec] = dataclasses.field(default_factory=list)
    merges: list[MergeSpec] = dataclasses.field(default_factory=list)
    results: str = "results"                      # where tables, figures, executed notebooks go
    html: str = "_build/html"                     # the built book
    notebooks: list[str] = dataclasses.field(default_factory=list)  # [] = every notebooks/NN_*.py
    notebook_parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    notebook_timeout: int = 1800
    workers: int = 2
    validation_limit: int = 100                   # dev questions per ID task scored for metric validation
    latent_limit: int = 200                       # OOD questions per task for the PCA shift
    # learning curves: these runs (first seed) keep their parameters after each of curve_steps, and each
    # snapshot is scored on the first curve_limit test questions of every ID task
    curves: list[str] = dataclasses.field(default_factory=list)
    curve_steps: list[int] = dataclasses.field(default_factory=list)
    curve_limit: int = 100
    # publish results from a world whose calibration gates fail (the smoke world: seconds of pretraining)
    allow_uncalibrated: bool = False

    def validate(self) -> None:
        names = [r.name for r in self.runs] + [m.name for m in self.merges]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate run/merge names: {sorted(dup)}")
        known = {r.name for r in self.runs}
        for m in self.merges:
            missing = [r for r in m.runs if r not in known]
            if missing:
                raise ValueError(f"merge {m.name!r} names unknown runs {missing}")
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        if not self.world and not self.base_model:
            raise ValueError("give `world` (embedded world) or `base_model` (real student)")
        if not self.evals:
            raise ValueError("`evals` must name at least one eval config")
        unknown = [c for c in self.curves if c not in known]
        if unknown:
            raise ValueError(f"curves names unknown runs {unknown}")
        if self.curves and not self.curve_steps:
            raise ValueError("curves needs curve_steps")
        if self.curve_limit < 1:
            raise ValueError("curve_limit must be >= 1")


def profile_path(profile: str) -> Path:
    p = configs_dir() / "pipeline" / f"{profile}.yaml"
    if not p.is_file():
        known = sorted(x.stem for x in (configs_dir() / "pipeline").glob("*.yaml"))
        raise ConfigError(f"unknown pipeline profile {profile!r} (known: {', '.join(known)}; file {p})")
    return p


def load_pipeline(profile: str, overrides: list[str] | None = None) -> PipelineConfig:
    return load(PipelineConfig, profile_path(profile), overrides)


# ------------------------------------------------------------------------------------------------ plan
def _h(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclasses.dataclass
class Plan:
    """Every resolved config of the profile and the key of every stage (no work done)."""

    cfg: PipelineConfig
    world_cfg: Any
    generate_cfg: Any
    runs: dict[str, Any]                          # "<name>-s<seed>" -> TrainConfig
    run_meta: dict[str, dict[str, Any]]           # "<name>-s<seed>" -> {name, seed, group, label}
    merges: dict[str, dict[str, Any]]             # "<name>-s<seed>" -> {spec, members}
    keys: dict[str, Any]

    @property
    def results(self) -> Path:
        return resolve(self.cfg.results)


def train_config_for(cfg: PipelineConfig, spec: RunSpec, seed: int):
    from ..trainer.run import load_config

    over = [*([f"data.world={cfg.world}"] if cfg.world else []), f"data.generate={cfg.generate}",
            *cfg.train_overrides, *spec.overrides, f"seed={seed}", f"name={spec.name}-s{seed}"]
    if spec.name in cfg.curves and seed == min(spec.seeds):
        over.append(f"log.curve_steps=[{','.join(str(s) for s in cfg.curve_steps)}]")
    return load_config(spec.config, over)


def eval_configs_for(cfg: PipelineConfig, model: str) -> list:
    """One EvalConfig per entry of ``cfg.evals`` for ``model`` (their task metrics are merged)."""
    from ..eval.evaluate import EvalConfig

    world = [f"data.world={cfg.world}"] if cfg.world else []
    return [load(EvalConfig, path, [*world, *cfg.eval_overrides, f"model={model}"]) for path in cfg.evals]


# what compact.publish.notebooks.execute does to an executed notebook beyond running it (2: parameter cells tagged for
# the book); part of every notebook's key, so a change re-executes the published notebooks
NOTEBOOK_EXECUTOR = 2


def make_plan(cfg: PipelineConfig) -> Plan:
    from ..teachers.generate import load_config as load_generate_config
    from ..world.build import WorldConfig

    world_cfg = load(WorldConfig, cfg.world) if cfg.world else None
    generate_cfg = load_generate_config(cfg.generate)
    if cfg.world and resolve(generate_cfg.inputs.world) != resolve(cfg.world):
        raise ConfigError(f"config key 'generate': {cfg.generate} writes rationales for world "
                          f"{generate_cfg.inputs.world}, but the profile's world is {cfg.world}")
    runs, meta, run_keys = {}, {}, {}
    for spec in cfg.runs:
        for seed in spec.seeds:
            rid = f"{spec.name}-s{seed}"
            tcfg = train_config_for(cfg, spec, seed)
            runs[rid] = tcfg
            meta[rid] = {"name": spec.name, "seed": seed, "group": spec.group, "label": spec.label or spec.name,
                         "method": tcfg.method}
            run_keys[rid] = config_hash(tcfg.identity())
    merges, merge_keys = {}, {}
    for m in cfg.merges:
        seeds = sorted(set.intersection(*[set(next(r.seeds for r in cfg.runs if r.name == n)) for n in m.runs]))
        for seed in seeds:
            mid = f"{m.name}-s{seed}"
            members = [f"{n}-s{seed}" for n in m.runs]
            merges[mid] = {"spec": to_dict(m), "members": members, "seed": seed}
            merge_keys[mid] = _h({"spec": to_dict(m), "members": [run_keys[x] for x in members]})
    keys: dict[str, Any] = {
        "world": config_hash(world_cfg) if world_cfg is not None else _h({"base_model": cfg.base_model}),
        "generate": config_hash(generate_cfg),
        "runs": run_keys,
        "merges": merge_keys,
    }
    eval_probe = [config_hash(e) for e in eval_configs_for(cfg, "<model>")]
    keys["eval"] = {mid: _h({"eval": eval_probe, "model": k})
                    for mid, k in {"base": keys["world"], **run_keys, **merge_keys}.items()}
    keys["results"] = _h({"eval": keys["eval"], "world": keys["world"], "generate": keys["generate"],
                          "analysis": [cfg.validation_limit, cfg.latent_limit],
                          "curves": [cfg.curves, cfg.curve_steps, cfg.curve_limit]})
    nb_params = notebook_parameters(cfg)
    keys["notebooks"] = {p.stem: _h({"source": p.read_text(), "params": nb_params, "results": keys["results"],
                                     "executor": NOTEBOOK_EXECUTOR})
                         for p in selected_notebooks(cfg)}
    return Plan(cfg=cfg, world_cfg=world_cfg, generate_cfg=generate_cfg, runs=runs, run_meta=meta,
                merges=merges, keys=keys)


def selected_notebooks(cfg: PipelineConfig) -> list[Path]:
    from .notebooks import notebook_sources

    all_nb = notebook_sources()
    if not cfg.notebooks:
        return all_nb
    by_stem = {p.stem: p for p in all_nb}
    missing = [n for n in cfg.notebooks if n not in by_stem]
    if missing:
        raise ConfigError(f"config key 'notebooks': no notebook {missing} in {notebooks_dir()}")
    return [by_stem[n] for n in cfg.notebooks]


def notebook_parameters(cfg: PipelineConfig) -> dict[str, Any]:
    """What every notebook's ``parameters`` cell receives (repo-relative paths only: they are published)."""
    return {"profile": cfg.profile, "results": cfg.results, "world_config": cfg.world,
            "generate_config": cfg.generate, **cfg.notebook_parameters}


# ------------------------------------------------------------------------------------------------ registry
def read_registry(results: str | Path) -> dict[str, Any]:
    p = resolve(results) / REGISTRY
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError:
        return {}


def stale_report(plan: Plan) -> dict[str, Any]:
    """Which stages' recorded keys differ from the plan's (empty lists: the results are fresh)."""
    reg = read_registry(plan.cfg.results)
    rk = reg.get("keys", {})
    out: dict[str, Any] = {"results": rk.get("results") != plan.keys["results"]}
    out["notebooks"] = [n for n, k in plan.keys["notebooks"].items()
                        if rk.get("notebooks", {}).get(n) != k
                        or not (plan.results / "notebooks" / f"{n}.ipynb").is_file()]
    return out


# ------------------------------------------------------------------------------------------------ workers
def _init_worker() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ.setdefault("COMPACT_QUIET", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    import torch

    torch.set_num_threads(1)


def _train_worker(tcfg, force: bool = False) -> str:
    from ..log import setup_logging
    from ..trainer.run import train

    setup_logging("WARNING")
    return str(train(tcfg, force=force))


def _eval_worker(ecfgs, force: bool = False) -> tuple[list[str], dict]:
    from ..eval.evaluate import run_eval
    from ..log import setup_logging

    setup_logging("WARNING")
    dirs, metrics = [], {}
    for ecfg in ecfgs:
        result, out = run_eval(ecfg, force=force)
        dirs.append(str(out))
        metrics.update({t: m for t, m in result.metrics.items() if t != "all"})
    return dirs, metrics


def _pool(workers: int):
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                  initializer=_init_worker)


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
            from ..world.build import build_world

            log.info("stage world (%s)", self.plan.keys["world"])
            self._world = self._timed("world", lambda: build_world(self.plan.world_cfg, force=self.force))
        return self._world

    def store(self) -> Path:
        if self._store is None:
            from ..teachers.generate import generate_store

            self.world()
            log.info("stage rationales (%s)", self.plan.keys["generate"])
            self._store = self._timed("rationales", lambda: generate_store(self.plan.generate_cfg))
        return self._store

    def train_all(self) -> dict[str, Path]:
        self.store()
        runs = self.plan.runs
        log.info("stage training: %d runs on %d workers", len(runs), self.plan.cfg.workers)
        worker = functools.partial(_train_worker, force=self.force)
        done = self._timed("training", lambda: _map(self.plan.cfg.workers, worker, runs, "run"))
        return {k: Path(v) for k, v in done.items()}

    def merge_all(self, run_dirs: dict[str, Path]) -> dict[str, Path]:
        from ..baselines.merging import merge_models
        from ..paths import artifacts_dir

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
        w = self.world()
        return w.student_path if w is not None else self.plan.cfg.base_model


def check_calibration(world, *, allow: bool) -> list[str]:
    """The world's failed calibration gates; an error unless ``allow`` (then they are published with it)."""
    if world is None or not (world.path / "calibration.json").is_file():
        return []
    from ..world.calibration import failed_gates

    failed = failed_gates(json.loads((world.path / "calibration.json").read_text()))
    if failed and not allow:
        raise CompactError(f"world {world.path.name} is not calibrated ({failed[0]}"
                           + (f"; +{len(failed) - 1} more" if len(failed) > 1 else "")
                           + "): results from it are not published; pass --allow-uncalibrated to publish anyway")
    return failed


def run_pipeline(cfg: PipelineConfig, *, force: bool = False, book: bool = False,
                 allow_uncalibrated: bool = False) -> dict[str, Any]:
    """Bring every stage of ``cfg`` up to date (lazily) and optionally build the book."""
    from . import report
    from .notebooks import execute

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
    from ..paths import artifacts_dir
    from ..provenance import clean_stale_partials

    clean_stale_partials(artifacts_dir(), recursive=True, max_depth=6)
    if force or stale["results"]:
        uncalibrated = check_calibration(runner.world(), allow=allow_uncalibrated or cfg.allow_uncalibrated)
        run_dirs_ = runner.train_all()
        merge_dirs = runner.merge_all(run_dirs_)
        models = {"base": runner.base_model(), **run_dirs_, **merge_dirs}
        evals = runner.evaluate_all(models)
        registry = {
            "profile": cfg.profile,
            "keys": {k: v for k, v in plan.keys.items() if k != "notebooks"},
            "world": {"path": _rel(runner.world().path) if runner.world() is not None else None,
                      "key": plan.keys["world"]},
            "tasks": {"id": cfg.id_tasks, "ood": cfg.ood_tasks},
            "store": {"path": _rel(runner.store()), "key": plan.keys["generate"]},
            "runs": {rid: {**plan.run_meta[rid], "path": _rel(p)} for rid, p in run_dirs_.items()},
            "merges": {mid: {"name": mid.rsplit("-s", 1)[0], "seed": m["seed"], "group": m["spec"]["group"],
                             "label": m["spec"]["label"] or m["spec"]["name"], "method": f"merge-{m['spec']['method']}",
                             "members": m["members"], "path": _rel(merge_dirs[mid])}
                       for mid, m in plan.merges.items()},
            "evals": {mid: {"dirs": [_rel(Path(d)) for d in v["dirs"]], "metrics": v["metrics"]}
                      for mid, v in evals.items()},
            "config": to_dict(cfg),
            "uncalibrated": uncalibrated,
        }
        log.info("stage results")
        runner._timed("results", lambda: report.write_all(registry, results, runner=runner,
                                                          validation_limit=cfg.validation_limit,
                                                          latent_limit=cfg.latent_limit,
                                                          curves=cfg.curves, curve_limit=cfg.curve_limit))
        registry["manifest"] = manifest(cfg, kind="pipeline")
        registry["keys"]["notebooks"] = {}
        write_json(results / REGISTRY, registry)
        reg = registry
        stale = stale_report(plan)
    todo = selected_notebooks(cfg) if force else [p for p in selected_notebooks(cfg) if p.stem in stale["notebooks"]]
    if todo:
        runner.world()  # notebooks demonstrate on the profile's world and store
        runner.store()
        params = notebook_parameters(cfg)
        for src in todo:
            log.info("stage notebook %s", src.stem)
            runner._timed("notebooks", lambda: execute(src, results / "notebooks" / f"{src.stem}.ipynb",
                                                       parameters=params, timeout=cfg.notebook_timeout))
            reg.setdefault("keys", {}).setdefault("notebooks", {})[src.stem] = plan.keys["notebooks"][src.stem]
            write_json(results / REGISTRY, reg)  # progress survives a later notebook's failure
    measured = {k: {"seconds": v, "items": to_run[k]} for k, v in runner.timings.items() if to_run.get(k)}
    if measured and reg:  # what each stage took for how many items, for the next --dry-run's estimate
        reg["timings_s"] = {**reg.get("timings_s", {}), **measured}
        write_json(results / REGISTRY, reg)
    summary = {"profile": cfg.profile, "trained": bool(force or runner.timings.get("training")),
               "notebooks_executed": [p.stem for p in todo], "timings_s": runner.timings}
    if book:
        from .book import build as build_book, overview_figure
        from ..paths import book_dir

        overview_figure(book_dir() / "figures" / "overview")
        t_book = time.time()
        build_book(results, resolve(cfg.html))
        summary["timings_s"]["book"] = round(time.time() - t_book, 1)
        summary["html"] = str(resolve(cfg.html) / "index.html")
    summary["total_s"] = round(time.time() - t0, 1)
    return summary


def _rel(p: Path | str) -> str:
    p = Path(p).resolve()
    try:
        return str(p.relative_to(repo_root()))
    except ValueError:
        return str(p)


# ------------------------------------------------------------------------------------------------ CLI
def plan_status(plan: Plan) -> list[dict[str, Any]]:
    """One row per stage: what it is, its key, whether its output is cached, and how many items it would run."""
    from ..provenance import is_complete
    from ..teachers.generate import store_root
    from ..trainer.run import artifact_dirs
    from ..world.build import world_path

    reg = read_registry(plan.cfg.results)
    rk = reg.get("keys", {})
    rows = []
    if plan.world_cfg is not None:
        wp = world_path(plan.world_cfg)
        rows.append({"stage": "world", "what": _rel(wp), "todo": 0 if is_complete(wp) else 1, "of": 1})
    store = store_root(plan.generate_cfg)
    teacher_dirs = [d for d in store.glob("*/*") if d.is_dir()] if store.is_dir() else []
    store_ok = bool(teacher_dirs) and all(is_complete(d) for d in teacher_dirs)  # store.json comes first
    rows.append({"stage": "rationales", "what": _rel(store), "todo": 0 if store_ok else 1, "of": 1})
    todo_runs = 0
    for tcfg in plan.runs.values():
        try:
            done = is_complete(artifact_dirs(tcfg)[0])
        except (CompactError, OSError):  # the store is not built yet: its runs cannot be cached either
            done = False
        todo_runs += not done
    rows.append({"stage": "training", "what": f"{len(plan.runs)} runs", "todo": todo_runs, "of": len(plan.runs)})
    rows.append({"stage": "merges", "what": f"{len(plan.merges)} merges",
                 "todo": sum(rk.get("merges", {}).get(m) != k for m, k in plan.keys["merges"].items()),
                 "of": len(plan.merges)})
    rows.append({"stage": "evaluation", "what": f"{len(plan.keys['eval'])} models",
                 "todo": sum(rk.get("eval", {}).get(m) != k for m, k in plan.keys["eval"].items()),
                 "of": len(plan.keys["eval"])})
    stale = stale_report(plan)
    rows.append({"stage": "results", "what": _rel(plan.results), "todo": int(stale["results"]), "of": 1})
    rows.append({"stage": "notebooks", "what": f"{len(plan.keys['notebooks'])} notebooks",
                 "todo": len(stale["notebooks"]), "of": len(plan.keys["notebooks"])})
    last = reg.get("timings_s", {})
    for row in rows:  # the last measured time per item of the stage, times the items that would run now
        t = last.get(row["stage"])
        per_item = t["seconds"] / t["items"] if isinstance(t, dict) and t.get("items") else None
        row["estimate_s"] = None if per_item is None else round(per_item * row["todo"], 1)
    return rows


def describe_plan(plan: Plan) -> str:
    """The plan as a reader wants it from ``--dry-run``: each stage, cached or to run, and an estimate."""
    rows = plan_status(plan)
    lines = [f"profile {plan.cfg.profile}: {len(plan.runs)} runs, {len(plan.merges)} merges "
             f"(results: {_rel(plan.results)})", "",
             f"{'stage':<12} {'status':<22} {'estimate':>10}  output"]
    total, known = 0.0, True
    for r in rows:
        status = "cached" if r["todo"] == 0 else (f"to run ({r['todo']} of {r['of']})" if r["of"] > 1 else "to run")
        est = "-" if r["todo"] == 0 else ("unknown" if r["estimate_s"] is None else f"~{r['estimate_s'] / 60:.0f} min")
        if r["todo"]:
            known = known and r["estimate_s"] is not None
            total += r["estimate_s"] or 0.0
        lines.append(f"{r['stage']:<12} {status:<22} {est:>10}  {r['what']}")
    lines.append("")
    if not any(r["todo"] for r in rows):
        lines.append("nothing to run: every stage is cached")
    elif known or total:
        lines.append(f"estimated time: ~{total / 60:.0f} min" + ("" if known else " plus the stages never timed")
                     + f" (the last run's measured stage times, {plan.cfg.workers} workers)")
    else:
        lines.append("estimated time: unknown (the results folder records no stage times yet)")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="default", help="smoke | default | paper (configs/pipeline/*.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a pipeline config key (dotted, type-checked); repeatable")
    parser.add_argument("--book", action="store_true", help="build the Jupyter Book at the end")
    parser.add_argument("--force", action="store_true", help="re-execute every stage, ignoring caches")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and what is stale; run nothing")
    parser.add_argument("--allow-uncalibrated", action="store_true",
                        help="publish results from a world whose calibration gates fail (the book says so)")
    parser.add_argument("--log-level", default="INFO")


def run(args: argparse.Namespace) -> int:
    cfg = load_pipeline(args.profile, args.overrides)
    if args.dry_run:
        print(describe_plan(make_plan(cfg)))
        return 0
    summary = run_pipeline(cfg, force=args.force, book=args.book, allow_uncalibrated=args.allow_uncalibrated)
    print(json.dumps(summary, indent=1))
    return 0
