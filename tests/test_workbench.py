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
