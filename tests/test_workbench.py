"""The notebooks' one-call set-up: world, store and base student from the smoke configs."""
from compact.workbench import ID_DEV_KEYS, open_workbench


def test_open_workbench_smoke():
    wb = open_workbench("configs/world/smoke.yaml", "configs/generate/smoke.yaml", seed=0)
    assert wb.teachers == [t.name for t in wb.generate_cfg.teachers] and len(wb.teachers) == 4
    dev = wb.instances()
    assert dev and {i.id.split("-")[0] for i in dev} <= {k.split("-")[0] for k in ID_DEV_KEYS}
    assert all(i.teachers == wb.teachers for i in dev)
    assert wb.instances("arith-dev", limit=3) == [i for i in dev if i.id.startswith("arith-")][:3]
    assert wb.student() is wb.student() and not wb.student().training
    assert wb.thinking_ids and all(len(wb.tokenizer.decode([t]).split()) == 1 for t in wb.thinking_ids)


def test_a_world_switch_without_its_store_is_refused_before_anything_is_built(monkeypatch):
    """A notebook that moves to the default world but keeps the smoke store gets a one-line error naming
    both configs, before any world is built (a default world takes minutes)."""
    import pytest

    import compact.world.build as B
    from compact.errors import ConfigError

    monkeypatch.setattr(B, "build_world", lambda *a, **k: pytest.fail("built a world for a mismatched store"))
    with pytest.raises(ConfigError) as exc:
        open_workbench("configs/world/default.yaml", "configs/generate/smoke.yaml")
    msg = str(exc.value)
    assert "\n" not in msg and "configs/generate/smoke.yaml" in msg and "configs/world/default.yaml" in msg


def test_progress_shows_in_an_interactive_kernel(monkeypatch):
    """Inside a Jupyter kernel stderr is not a terminal, yet a long cell must show progress; papermill and
    CI stay quiet."""
    import sys

    from compact.log import quiet

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("COMPACT_QUIET", raising=False)
    monkeypatch.delenv("COMPACT_PROGRESS", raising=False)
    monkeypatch.setitem(sys.modules, "ipykernel", sys.modules.get("ipykernel") or object())
    assert quiet() is False
    monkeypatch.setenv("COMPACT_QUIET", "1")
    assert quiet() is True
