"""One call that sets up what the notebooks demonstrate on: the world, its rationale store, the base student.

    wb = open_workbench("configs/world/smoke.yaml", "configs/generate/smoke.yaml")
    dev = wb.instances(("arith-dev", "variation-dev", "symbolic-dev"))
    student = wb.student()          # the base student, eval mode

Both the world and the store are cached by their config hashes, so a notebook re-run costs seconds.
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Sequence

from .config import config_hash, load
from .errors import ConfigError
from .log import seed_everything
from .paths import resolve

ID_DEV_KEYS: tuple[str, ...] = ("arith-dev", "variation-dev", "symbolic-dev")


def quiet_progress_bars() -> None:
    """No third-party progress bars or widget warnings in executed notebooks (the book shows their output)."""
    import datasets
    import transformers

    warnings.filterwarnings("ignore", message="IProgress not found")
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


@dataclasses.dataclass
class Workbench:
    world: Any                      # compact.world.build.World
    generate_cfg: Any               # compact.teachers.generate.GenerateConfig
    store: Any                      # compact.teachers.store.RationaleStore
    teachers: list[str]             # teacher ids, in the generate config's order
    tokenizer: Any
    thinking_ids: list[int]
    _student: Any = dataclasses.field(default=None, repr=False)

    def student(self):
        """The world's base student (loaded once, eval mode)."""
        if self._student is None:
            self._student = self.world.load_student()
        return self._student

    def instances(self, keys: str | Sequence[str] = ID_DEV_KEYS, *, limit: int | None = None,
                  policy: str = "drop_question") -> list:
        """Multi-teacher instances of one or several store keys (e.g. ``"arith-dev"``), in order."""
        from .teachers.view import build_instances

        keys = [keys] if isinstance(keys, str) else list(keys)
        out = [i for key in keys for i in build_instances(self.store, key, self.teachers, policy=policy)]
        return out[:limit] if limit is not None else out


def open_workbench(world_config: str, generate_config: str, *, seed: int = 0, quiet: bool = True) -> Workbench:
    """Build (or reuse) the world and its rationale store; seed everything."""
    from .teachers.generate import GenerateConfig, generate_store
    from .teachers.store import RationaleStore
    from .world.build import WorldConfig, build_world
    from .world.tokenizer import thinking_token_ids

    if quiet:
        quiet_progress_bars()
    seed_everything(seed)
    world_cfg = load(WorldConfig, resolve(world_config))
    gen_cfg = load(GenerateConfig, resolve(generate_config))
    if gen_cfg.inputs.kind == "world" and config_hash(load(WorldConfig, resolve(gen_cfg.inputs.world))) != \
            config_hash(world_cfg):  # checked before anything is built: a world takes minutes
        raise ConfigError(f"{generate_config} writes rationales for the world {gen_cfg.inputs.world}, not for "
                          f"{world_config}: pass the generate config of that world (configs/generate/world.yaml "
                          "goes with configs/world/default.yaml, configs/generate/smoke.yaml with the smoke world)")
    world = build_world(world_cfg)
    store = RationaleStore(generate_store(gen_cfg))
    return Workbench(world=world, generate_cfg=gen_cfg, store=store, teachers=[t.name for t in gen_cfg.teachers],
                     tokenizer=world.tokenizer, thinking_ids=thinking_token_ids(world.tokenizer))
