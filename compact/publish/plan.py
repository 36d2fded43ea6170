"""The pipeline as data: a profile's config, the plan of keyed work items, the registry and staleness."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from ..analysis.dynamics import static_weights_from_run
from ..config import config_hash, load, to_dict
from ..errors import CompactError, ConfigError
from ..eval.evaluate import EvalConfig
from ..inputs.packaged import PREFIX as PACKAGED_PREFIX
from ..inputs.packaged import cached_folder
from ..paths import (
    configs_dir,
    notebooks_dir,
    repo_root,
    resolve,
)
from ..provenance import is_complete
from ..teachers.generate import load_config as load_generate_config
from ..teachers.generate import store_root
from ..trainer.run import artifact_dirs, load_config
from ..world.build import WorldConfig, world_path
from .notebooks import notebook_sources
from .registry import read_registry


@dataclasses.dataclass
class RunSpec:
    """One training configuration of the grid, run once per seed."""
    name: str
    config: str                                   # a configs/train/*.yaml
    overrides: list[str] = dataclasses.field(default_factory=list)
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0])
    group: Literal["main", "baseline", "variant", "ablation", "control", "budget"] = "main"
    label: str = ""                               # display name in tables ("" = name)
    # another run spec's name: this run (method static) trains with objective.static_weights = that run's mean
    # alpha per teacher (seed-matched, from its alpha.jsonl), so it trains after it (see make_plan)
    static_from: str = ""

    # added later: at this value earlier pipeline configs hash as before
    HASH_DEFAULTS: ClassVar[dict[str, Any]] = {"static_from": ""}


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
class ComparisonSpec:
    """A comparison the results stage reports: ``a`` minus ``b`` (run or merge names, or ``base``), over their
    common seeds, or over independent seed sets when ``unpaired``."""
    a: str
    b: str
    unpaired: bool = False


@dataclasses.dataclass
class PipelineConfig:
    profile: str = "default"
    world: str = "configs/world/default.yaml"
    generate: str = "configs/generate/world.yaml"
    # world: "" for real models on real benchmarks (the paper profile): then base_model is the undistilled
    # student. With a world, base_model replaces the world's student (the real profile: SmolLM2 on the world)
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
    # "first": only each curve run's first seed keeps snapshots; "all": every seed (per-seed bands)
    curve_seeds: Literal["first", "all"] = "first"
    # the learning curves score OOD too (the ID-OOD trade-off along training)
    curve_ood: bool = False
    # publish results from a world whose calibration gates fail (the smoke world: seconds of pretraining)
    allow_uncalibrated: bool = False
    # scorer comparison: the dev rationales of this generate config's store (e.g. the simulated teachers beside
    # a real model's own) scored by the base model and by each of validation_scorers ("world" = the world's
    # base student, or a model path / packaged:NAME); the first validation_limit questions per ID task
    validation_generate: str = ""
    validation_scorers: list[str] = dataclasses.field(default_factory=list)
    # the comparisons table: [] = COMPACT minus every other method over matched seeds; else these pairs only
    comparisons: list[ComparisonSpec] = dataclasses.field(default_factory=list)

    def validate(self) -> None:
        names = [r.name for r in self.runs] + [m.name for m in self.merges]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate run/merge names: {sorted(dup)}")
        known = {r.name for r in self.runs}
        by_name = {r.name: r for r in self.runs}
        for r in self.runs:
            if not r.static_from:
                continue
            src = by_name.get(r.static_from)
            if src is None or src.name == r.name:
                raise ValueError(f"run {r.name!r}: static_from names {'itself' if src else 'an unknown run'} "
                                 f"({r.static_from!r})")
            if src.static_from:
                raise ValueError(f"run {r.name!r}: static_from {src.name!r}, which itself takes its weights from "
                                 f"{src.static_from!r} (one level only)")
            missing = sorted(set(r.seeds) - set(src.seeds))
            if missing:
                raise ValueError(f"run {r.name!r}: static_from {src.name!r} has no seeds {missing} (seed-matched)")
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
        if self.validation_scorers and not self.validation_generate:
            raise ValueError("validation_scorers needs validation_generate (the rationales they score)")
        if "world" in self.validation_scorers and not self.world:
            raise ValueError("validation_scorers names 'world', but the profile has no world")


def profile_path(profile: str) -> Path:
    p = configs_dir() / "pipeline" / f"{profile}.yaml"
    if not p.is_file():
        known = sorted(x.stem for x in (configs_dir() / "pipeline").glob("*.yaml"))
        raise ConfigError(f"unknown pipeline profile {profile!r} (known: {', '.join(known)}; file {p})")
    return p


def load_pipeline(profile: str, overrides: list[str] | None = None) -> PipelineConfig:
    return load(PipelineConfig, profile_path(profile), overrides)


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
    # "<name>-s<seed>" -> the run it takes its static weights from (its runs[] config has none yet: resolve_run)
    static_from: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def results(self) -> Path:
        return resolve(self.cfg.results)


def train_config_for(cfg: PipelineConfig, spec: RunSpec, seed: int, extra: Sequence[str] = ()):
    over = [*([f"data.world={cfg.world}"] if cfg.world else []), f"data.generate={cfg.generate}",
            *cfg.train_overrides, *spec.overrides, *extra, f"seed={seed}", f"name={spec.name}-s{seed}"]
    if spec.name in cfg.curves and (cfg.curve_seeds == "all" or seed == min(spec.seeds)):
        over.append(f"log.curve_steps=[{','.join(str(s) for s in cfg.curve_steps)}]")
    return load_config(spec.config, over)


def eval_configs_for(cfg: PipelineConfig, model: str) -> list:
    """One EvalConfig per entry of ``cfg.evals`` for ``model`` (their task metrics are merged)."""
    world = [f"data.world={cfg.world}"] if cfg.world else []
    return [load(EvalConfig, path, [*world, *cfg.eval_overrides, f"model={model}"]) for path in cfg.evals]


NOTEBOOK_EXECUTOR = 2


def comparison_seeds(cfg: PipelineConfig) -> dict[str, set[int] | None]:
    """The seeds of every name a comparison may use: runs, merges (their members' common seeds) and ``base``
    (``None``: deterministic, present for every seed)."""
    seeds: dict[str, set[int] | None] = {r.name: set(r.seeds) for r in cfg.runs}
    for m in cfg.merges:
        seeds[m.name] = set.intersection(*[set(seeds[n] or ()) for n in m.runs]) if m.runs else set()
    seeds["base"] = None
    return seeds


def check_comparisons(cfg: PipelineConfig) -> None:
    """Refuse a requested comparison naming no run (or merge, or ``base``), comparing a run with itself, or
    pairing two runs whose seed sets do not overlap (unless it is ``unpaired``): one line each."""
    seeds = comparison_seeds(cfg)
    for i, c in enumerate(cfg.comparisons):
        for name in (c.a, c.b):
            if name not in seeds:
                raise ConfigError(f"config key 'comparisons[{i}]': {name!r} is not a run, merge or 'base' "
                                  f"(known: {', '.join(seeds)})")
        if c.a == c.b:
            raise ConfigError(f"config key 'comparisons[{i}]': compares {c.a!r} with itself")
        sa, sb = seeds[c.a], seeds[c.b]
        if not c.unpaired and sa is not None and sb is not None and not sa & sb:
            raise ConfigError(f"config key 'comparisons[{i}]': {c.a} (seeds {sorted(sa)}) and {c.b} (seeds "
                              f"{sorted(sb)}) share no seed; give them a common seed or set unpaired: true")


def make_plan(cfg: PipelineConfig) -> Plan:
    check_comparisons(cfg)
    world_cfg = load(WorldConfig, cfg.world) if cfg.world else None
    generate_cfg = load_generate_config(cfg.generate)
    if cfg.world and resolve(generate_cfg.inputs.world) != resolve(cfg.world):
        raise ConfigError(f"config key 'generate': {cfg.generate} writes rationales for world "
                          f"{generate_cfg.inputs.world}, but the profile's world is {cfg.world}")
    runs, meta, run_keys, static_from = {}, {}, {}, {}
    for spec in cfg.runs:
        for seed in spec.seeds:
            rid = f"{spec.name}-s{seed}"
            tcfg = train_config_for(cfg, spec, seed)
            runs[rid] = tcfg
            meta[rid] = {"name": spec.name, "seed": seed, "group": spec.group, "label": spec.label or spec.name,
                         "method": tcfg.method}
            if spec.static_from:
                static_from[rid] = f"{spec.static_from}-s{seed}"
    for rid, src in static_from.items():
        if runs[rid].method != "static":
            raise ConfigError(f"run {rid}: static_from needs method 'static', got {runs[rid].method!r}")
        if runs[rid].data != runs[src].data:
            raise ConfigError(f"run {rid}: static_from {src}, which trains on other data (the weights are indexed "
                              f"by the source's teachers): give both the same data section")
    for rid, tcfg in runs.items():
        run_keys[rid] = _h({"config": config_hash(tcfg.identity()), "store": store_root(generate_cfg).name})
    for rid, src in static_from.items():
        # the weights are not known before the source has trained; the source's key names them (the source run is
        # seeded, so the same key gives the same alpha.jsonl), so the key is known from the configs alone and a
        # fresh clone with committed results does not have to train the source to know it is up to date
        run_keys[rid] = _h({"config": config_hash(runs[rid].identity()), "store": store_root(generate_cfg).name,
                            "static_from": run_keys[src]})
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
        # the store's own name: its config, the world's config hash and each simulated teacher's revision, so
        # a changed simulator or world marks every result built on the store stale (the runs themselves are
        # named by the store's content, see compact.trainer.run.inputs_fingerprint)
        "generate": store_root(generate_cfg).name,
        "runs": run_keys,
        "merges": merge_keys,
    }
    base_key = keys["world"]
    if world_cfg is not None and cfg.base_model:  # a real student on the world's tasks (the real profile)
        base_key = _h({"world": keys["world"], "base_model": model_identity(cfg.base_model)})
    eval_probe = [config_hash(e) for e in eval_configs_for(cfg, "<model>")]
    keys["eval"] = {mid: _h({"eval": eval_probe, "model": k})
                    for mid, k in {"base": base_key, **run_keys, **merge_keys}.items()}
    keys["results"] = _h({"eval": keys["eval"], "world": keys["world"], "generate": keys["generate"],
                          "analysis": [cfg.validation_limit, cfg.latent_limit],
                          "curves": [cfg.curves, cfg.curve_steps, cfg.curve_limit,
                                     # only when set: earlier profiles keep their keys
                                     *([cfg.curve_seeds, cfg.curve_ood]
                                       if (cfg.curve_seeds, cfg.curve_ood) != ("first", False) else [])],
                          # only when set: the profiles without a scorer comparison keep their keys
                          **({"scorers": [store_root(load_generate_config(cfg.validation_generate)).name,
                                          [model_identity(m) if m != "world" else m
                                           for m in cfg.validation_scorers]]}
                             if cfg.validation_generate else {}),
                          # likewise: only a profile that names its comparisons has them in its key
                          **({"comparisons": to_dict(cfg.comparisons)} if cfg.comparisons else {})})
    nb_params = notebook_parameters(cfg)
    keys["notebooks"] = {p.stem: _h({"source": p.read_text(), "params": nb_params, "results": keys["results"],
                                     "executor": NOTEBOOK_EXECUTOR})
                         for p in selected_notebooks(cfg)}
    return Plan(cfg=cfg, world_cfg=world_cfg, generate_cfg=generate_cfg, runs=runs, run_meta=meta,
                merges=merges, keys=keys, static_from=static_from)


def resolve_run(plan: Plan, rid: str, source_dir: Path | None = None):
    """The TrainConfig run ``rid`` trains with. A run with ``static_from`` gets ``objective.static_weights`` = the
    mean alpha per teacher of its (seed-matched) source run's artifact, ``source_dir`` (default: the source's
    artifact directory), as a config override: its saved config and its artifact name say the weights.
    ConfigError (one line) when the source run is not finished."""
    src = plan.static_from.get(rid)
    if src is None:
        return plan.runs[rid]
    if source_dir is None:
        try:
            source_dir = artifact_dirs(plan.runs[src])[0]
        except (CompactError, OSError) as exc:
            raise ConfigError(f"run {rid} takes its static weights from run {src}, which is not finished "
                              f"({exc})") from None
    if not is_complete(source_dir):
        raise ConfigError(f"run {rid} takes its static weights from run {src}, which is not finished "
                          f"({_rel(source_dir)} is not a complete artifact): train {src} first")
    teachers, weights = static_weights_from_run(source_dir)
    meta = plan.run_meta[rid]
    spec = next(s for s in plan.cfg.runs if s.name == meta["name"])
    tcfg = train_config_for(plan.cfg, spec, meta["seed"], [f"objective.static_weights={json.dumps(weights)}"])
    want = list(tcfg.data.teachers)
    if want and want != teachers:
        raise ConfigError(f"run {rid}: data.teachers {want}, but its source {src} trained teachers {teachers}")
    return tcfg


def model_identity(model: str) -> str:
    """What names a base model in the plan's keys: a packaged model's de-quantised folder (the GGUF file's
    bytes), else the hub id or path as written."""
    if model.startswith(PACKAGED_PREFIX):
        return cached_folder(model[len(PACKAGED_PREFIX):]).name
    return model


def selected_notebooks(cfg: PipelineConfig) -> list[Path]:
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


def stale_report(plan: Plan) -> dict[str, Any]:
    """Which stages' recorded keys differ from the plan's (empty lists: the results are fresh)."""
    reg = read_registry(plan.cfg.results)
    rk = reg.keys
    out: dict[str, Any] = {"results": rk.get("results") != plan.keys["results"]}
    # results published from a working tree with uncommitted changes name no code that made them
    out["dirty"] = bool(reg.published and (reg.manifest.get("git") or {}).get("dirty"))
    out["notebooks"] = [n for n, k in plan.keys["notebooks"].items()
                        if rk.get("notebooks", {}).get(n) != k
                        or not (plan.results / "notebooks" / f"{n}.ipynb").is_file()]
    return out


def _rel(p: Path | str) -> str:
    p = Path(p).resolve()
    try:
        return str(p.relative_to(repo_root()))
    except ValueError:
        return str(p)


def plan_status(plan: Plan) -> list[dict[str, Any]]:
    """One row per stage: what it is, its key, whether its output is cached, and how many items it would run."""
    reg = read_registry(plan.cfg.results)
    rk = reg.keys
    rows = []
    if plan.world_cfg is not None:
        wp = world_path(plan.world_cfg)
        rows.append({"stage": "world", "what": _rel(wp), "todo": 0 if is_complete(wp) else 1, "of": 1})
    store = store_root(plan.generate_cfg)
    teacher_dirs = [d for d in store.glob("*/*") if d.is_dir()] if store.is_dir() else []
    store_ok = bool(teacher_dirs) and all(is_complete(d) for d in teacher_dirs)  # store.json comes first
    rows.append({"stage": "rationales", "what": _rel(store), "todo": 0 if store_ok else 1, "of": 1})
    todo_runs = 0
    for rid in plan.runs:
        try:
            done = is_complete(artifact_dirs(resolve_run(plan, rid))[0])
        except (CompactError, OSError):  # the store (or a static_from source) is not built yet: not cached either
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
    for row in rows:  # the last measured time per item of the stage, times the items that would run now
        t = reg.timings_s.get(row["stage"])
        per_item = t.seconds / t.items if t is not None and t.items else None
        row["estimate_s"] = None if per_item is None else round(per_item * row["todo"], 1)
        if row["stage"] == "training" and row["todo"]:
            measured = training_estimate(plan)  # from measured per-question costs: better than a per-run mean
            if measured is not None:
                row["estimate_s"] = round(measured, 1)
    return rows


def measured_step_costs(root: Path | None = None) -> dict[str, float]:
    """Seconds per training question (one branch set) of the finished runs under ``artifacts/runs``, by family:
    ``multi`` (several teachers' branches per question) and ``single``; the median over runs, each its own wall
    time over the questions it trained on (``summary.json``)."""
    import statistics

    from ..paths import artifacts_dir

    per: dict[str, list[float]] = {"multi": [], "single": []}
    for summary in sorted((root or artifacts_dir() / "runs").glob("*/summary.json")):
        try:
            s = json.loads(summary.read_text())
            q = s["questions_per_s"]
        except (OSError, ValueError, KeyError):
            continue
        if not q or s.get("num_processes", 1) != 1:
            continue
        per["single" if s.get("method") == "single" else "multi"].append(1.0 / q)
    return {k: statistics.median(v) for k, v in per.items() if v}


def training_estimate(plan: Plan) -> float | None:
    """Wall seconds the stale runs of ``plan`` still need on its workers: each run's remaining optimizer steps
    (its budget less the last checkpoint's step) times its questions per step times the measured seconds per
    question of its family (:func:`measured_step_costs`), summed and divided by the workers. None when a family
    has no measured run or a run's budget is not fixed (``optim.max_steps``)."""
    from ..trainer.checkpoint import list_checkpoints

    costs = measured_step_costs()
    total = 0.0
    for rid in plan.runs:
        try:
            out, work = artifact_dirs(resolve_run(plan, rid))
        except (CompactError, OSError):
            out = work = None
        if out is not None and is_complete(out):
            continue
        tcfg = plan.runs[rid]
        family = "single" if tcfg.method == "single" else "multi"
        if family not in costs or tcfg.optim.max_steps is None:
            return None
        ckpts = list_checkpoints(work / "checkpoints") if work is not None else []
        left = tcfg.optim.max_steps - (ckpts[-1][0] if ckpts else 0)
        total += max(0, left) * tcfg.optim.questions_per_step * costs[family]
    return total / max(1, plan.cfg.workers)


def describe_plan(plan: Plan) -> str:
    """The plan as a reader wants it from ``--dry-run``: each stage, cached or to run, and an estimate."""
    rows = plan_status(plan)
    lines = [f"profile {plan.cfg.profile}: {len(plan.runs)} runs, {len(plan.merges)} merges "
             f"(results: {_rel(plan.results)})", "",
             f"{'stage':<12} {'status':<22} {'estimate':>10}  output"]
    costs = measured_step_costs()
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
    if costs:
        lines.append("training cost measured on this machine's finished runs: " + ", ".join(
            f"{k} {v * 8:.2f} s per 8 questions" for k, v in costs.items()))
    return "\n".join(lines)
