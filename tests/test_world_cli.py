"""`compact world`: config errors are one line with a non-zero exit and leave nothing behind."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from compact.config import load
from compact.errors import ArtifactError, ConfigError
from compact.paths import configs_dir
from compact.world.build import WorldConfig, build_world, load_world


class _Proc:
    def __init__(self, returncode, stderr):
        self.returncode, self.stderr = returncode, stderr


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run `compact world ...` in-process (importing torch per subprocess is slow on 2 cores)."""
    from compact.cli import main

    def run(args, artifacts: Path):
        monkeypatch.setenv("COMPACT_ARTIFACTS", str(artifacts))
        capsys.readouterr()
        code = main(["world", *args])
        return _Proc(code, capsys.readouterr().err)

    return run


def _subprocess_cli(args, artifacts: Path):
    env = dict(os.environ, COMPACT_ARTIFACTS=str(artifacts), COMPACT_QUIET="1")
    return subprocess.run([sys.executable, "-m", "compact.cli", "world", *args], capture_output=True, text=True,
                          env=env, timeout=300, check=False)


def _one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize("override, needle", [
    ("student.hiddn_size=64", "student.hiddn_size"),
    ("tasks.arith.train=many", "tasks.arith.train"),
    ("tokenizer.vocab_size=1.5", "tokenizer.vocab_size"),
    ("student.num_kv_heads=3", "num_kv_heads"),
    ("tasks.max_steps=9", "max_steps"),
    ("tasks.mcq.dev=0", "tasks.mcq"),
    ("bogus=1", "bogus"),
])
def test_bad_overrides_fail_in_one_line(cli, tmp_path, override, needle):
    proc = cli(["--config", "configs/world/smoke.yaml", "--set", override], tmp_path)
    _one_line_error(proc, needle)
    assert not any(tmp_path.iterdir())  # nothing written


def test_missing_config_file(tmp_path):
    proc = _subprocess_cli(["--config", str(tmp_path / "nope.yaml")], tmp_path / "art")
    _one_line_error(proc, "nope.yaml")
    assert not (tmp_path / "art").exists()


def test_unknown_key_in_yaml_file(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"base: {configs_dir() / 'world' / 'smoke.yaml'}\nstudent:\n  layers: 3\n")
    proc = cli(["--config", str(bad)], tmp_path / "art")
    _one_line_error(proc, "student.layers")


def test_shipped_configs_load():
    for name in ("default.yaml", "smoke.yaml"):
        cfg = load(WorldConfig, configs_dir() / "world" / name)
        assert cfg.student.num_kv_heads < cfg.student.num_heads  # GQA in both


def test_default_config_matches_dataclass_defaults():
    """default.yaml spells out the dataclass defaults (the YAML is the documentation)."""
    assert load(WorldConfig, configs_dir() / "world" / "default.yaml") == WorldConfig()


def test_load_world_errors(tmp_path):
    with pytest.raises(ArtifactError, match="world not found"):
        load_world(tmp_path / "missing")
    (tmp_path / "half").mkdir()
    with pytest.raises(ArtifactError, match="not a complete world"):
        load_world(tmp_path / "half")


def test_vocab_too_small_for_thinking_words_is_a_config_error_and_leaves_nothing(tmp_path):
    cfg = load(WorldConfig, configs_dir() / "world" / "smoke.yaml", ["tokenizer.vocab_size=300"])
    with pytest.raises(ConfigError, match="tokenizer.vocab_size"):
        build_world(cfg, root=tmp_path)
    leftovers = [p for p in tmp_path.rglob("*") if p.is_dir() and p.name.startswith(".")]
    assert leftovers == [] and not any((tmp_path / "world").iterdir())
