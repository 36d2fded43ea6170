"""One call that sets up what the notebooks demonstrate on: the world, its rationale store, the base student.

    wb = open_workbench("configs/world/smoke.yaml", "configs/generate/smoke.yaml")
    dev = wb.instances(("arith-dev", "variation-dev", "symbolic-dev"))
    student = wb.student()          # the base student, eval mode
    batch = wb.batch(dev[:4])       # encode -> collate: B questions x K branches as one Batch
    out = wb.forward(batch)         # the base student on it: out.logits (N, L, V), out.hidden (N, L, H)

Both the world and the store are cached by their config hashes, so a notebook re-run costs seconds.
:func:`run_module` runs the package's own entry points (``python -m compact.trainer`` ...) as a terminal would.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from typing import Any, Mapping, NamedTuple, Sequence

from torch import Tensor

from .config import config_hash, load
from .errors import ConfigError
from .inputs.encode import collate, encode_instances
from .log import quiet_progress_bars, seed_everything
from .method.adaptability import thinking_token_ids
from .method.batch import Batch
from .paths import repo_root, resolve
from .teachers.generate import GenerateConfig, generate_store
from .teachers.store import RationaleStore
from .teachers.view import build_instances
from .world.build import WorldConfig, build_world

ID_DEV_KEYS: tuple[str, ...] = ("arith-dev", "variation-dev", "symbolic-dev")
MAX_LENGTH = 512  # tokens per branch, the notebooks' default


class Forward(NamedTuple):
    """What a notebook reads from one student forward pass over a :class:`Batch`."""
    logits: Tensor          # (N, L, V)
    hidden: Tensor | None   # (N, L, H): the last hidden state (after the final norm), or None if not asked


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
        keys = [keys] if isinstance(keys, str) else list(keys)
        out = [i for key in keys for i in build_instances(self.store, key, self.teachers, policy=policy)]
        return out[:limit] if limit is not None else out

    def batch(self, instances: Sequence, *, max_length: int = MAX_LENGTH) -> Batch:
        """The instances' branches as one right-padded :class:`Batch` (B questions x K branches = N rows).

        ``encode_instances`` then ``collate``, with this workbench's tokenizer, teacher order, thinking ids and
        pad id: the batch the trainer builds for the same questions.
        """
        questions, _ = encode_instances(instances, self.tokenizer, teachers=self.teachers, max_length=max_length)
        return collate(questions, pad_id=self.tokenizer.pad_token_id, thinking_ids=self.thinking_ids)

    def forward(self, batch: Batch, *, model=None, hidden: bool = True) -> Forward:
        """One forward pass of ``model`` (default: the base student) over ``batch``: logits and last hidden state.

        The same call as ``model(input_ids=..., attention_mask=..., output_hidden_states=hidden)``; the grad
        mode is the caller's (the notebooks turn grad off once, after the world is built).
        """
        model = self.student() if model is None else model
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=hidden)
        return Forward(logits=out.logits, hidden=out.hidden_states[-1] if hidden else None)


def open_workbench(world_config: str, generate_config: str, *, seed: int = 0, quiet: bool = True) -> Workbench:
    """Build (or reuse) the world and its rationale store; seed everything."""
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


def run_module(module: str, *args: str, launcher: Sequence[str] = (), env: Mapping[str, str] | None = None,
               redact: Mapping[str, str] | None = None, echo: bool = True) -> list[str]:
    """Run ``python [launcher] -m module args`` from the repo root, as a terminal would; return its stdout lines.

    ``launcher`` goes between the interpreter and ``-m module``, e.g. ``["-m", "torch.distributed.run",
    "--nproc_per_node", "2"]`` for torchrun. The child runs with ``COMPACT_QUIET=1`` and ``OMP_NUM_THREADS=1``
    on top of this process's environment, then ``env``. A non-zero exit raises ``RuntimeError`` with the end of
    its stderr. With ``echo`` the command is printed once it succeeded, the interpreter shown as ``python``
    and every ``redact`` key (e.g. a temp dir) replaced by its value.
    """
    cmd = [sys.executable, *launcher, "-m", module, *map(str, args)]
    child_env = {**os.environ, "OMP_NUM_THREADS": "1", "COMPACT_QUIET": "1", **(env or {})}
    proc = subprocess.run(cmd, cwd=repo_root(), env=child_env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"python -m {module} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    if echo:
        shown = " ".join("python" if c == sys.executable else c for c in cmd)
        for old, new in (redact or {}).items():
            shown = shown.replace(old, new)
        print(f"$ {shown}")
    return proc.stdout.strip().splitlines()
