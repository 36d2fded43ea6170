import dataclasses
from typing import Literal, Optional

import pytest

from compact import config as C
from compact.errors import ConfigError
from compact.paths import configs_dir


@dataclasses.dataclass
class Inner:
    lr: float = 1e-3
    steps: int = 10
    betas: tuple[float, float, float] = (1.0, 1.0, 0.5)


@dataclasses.dataclass
class Outer:
    name: str = "x"
    mode: Literal["a", "b"] = "a"
    inner: Inner = dataclasses.field(default_factory=Inner)
    tags: list[str] = dataclasses.field(default_factory=list)
    limit: Optional[int] = None

    def validate(self):
        if self.inner.steps < 0:
            raise ValueError("inner.steps must be >= 0")


def test_defaults_and_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("name: run\ninner:\n  lr: 2\n")
    cfg = C.load(Outer, f, ["inner.steps=5", "mode=b", "tags=[u, v]", "limit=3"])
    assert cfg.name == "run" and cfg.inner.lr == 2.0 and isinstance(cfg.inner.lr, float)
    assert cfg.inner.steps == 5 and cfg.mode == "b" and cfg.tags == ["u", "v"] and cfg.limit == 3
    assert cfg.inner.betas == (1.0, 1.0, 0.5)
    assert C.load(Outer, None, ["inner.lr=1e-3"]).inner.lr == 1e-3  # YAML 1.1 reads 1e-3 as a string


@pytest.mark.parametrize("override,needle", [
    ("inner.stepz=3", "unknown config key 'inner.stepz'"),
    ("inner.steps=abc", "config key 'inner.steps': expected int"),
    ("inner.steps=1.5", "config key 'inner.steps': expected int"),
    ("inner.lr=fast", "config key 'inner.lr': expected float"),
    ("mode=c", "config key 'mode': expected one of"),
    ("inner.betas=[1, 2]", "config key 'inner.betas': expected 3 items"),
    ("inner.steps=-1", "inner.steps must be >= 0"),
    ("name", "expected key=value"),
])
def test_errors_name_the_key(override, needle):
    with pytest.raises(ConfigError) as exc:
        C.load(Outer, None, [override])
    assert needle in str(exc.value)
    assert "\n" not in str(exc.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        C.load(Outer, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        C.load(Outer, bad)


def test_base_chain_and_hash(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\ninner: {steps: 7}\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\ninner: {lr: 0.5}\n")
    cfg = C.load(Outer, tmp_path / "child.yaml")
    assert cfg.name == "base" and cfg.inner.steps == 7 and cfg.inner.lr == 0.5
    same = C.load(Outer, None, ["name=base", "inner.steps=7", "inner.lr=0.5"])
    assert C.config_hash(cfg) == C.config_hash(same)
    assert C.config_hash(cfg) != C.config_hash(C.replace(cfg, **{"inner.steps": 8}))


def test_method_presets_fill_the_objective_and_refuse_a_contradiction(tmp_path):
    """`method:` fixes part of the objective: the loaded config says it, and a config that says otherwise fails."""
    from compact.errors import ConfigError
    from compact.method.objective import ObjectiveConfig
    from compact.trainer.config import TrainConfig
    from compact.trainer.methods import PRESETS
    from compact.trainer.run import load_config

    for path in sorted((configs_dir() / "train").glob("*.yaml")) + sorted((configs_dir() / "paper").glob("*.yaml")):
        cfg = load_config(path)
        for key, want in PRESETS[cfg.method].items():
            assert getattr(cfg.objective, key) == want, (path.name, key)
    assert load_config(configs_dir() / "train" / "random.yaml").objective.consistency == "sequence"  # COMPACT's
    with pytest.raises(ConfigError, match=r"uniform\.yaml: objective\.consistency='sequence', but method 'uniform'"):
        load_config(configs_dir() / "train" / "uniform.yaml", ["objective.consistency=sequence"])
    # a value inherited from a base file counts as written
    (tmp_path / "base.yaml").write_text("method: compact\nobjective: {consistency: sequence}\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\nmethod: mcckd\n")
    with pytest.raises(ConfigError, match=r"child\.yaml: objective\.consistency='sequence', but method 'mcckd'"):
        load_config(tmp_path / "child.yaml")
    # built in code: a default gives way to the method, another value is refused
    assert TrainConfig(method="uniform").objective.consistency == "none"
    with pytest.raises(ConfigError, match="objective.weighting='static'"):
        TrainConfig(method="oracle", objective=ObjectiveConfig(weighting="static", static_weights=[1.0]))
