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


def _smoke():
    return open_workbench("configs/world/smoke.yaml", "configs/generate/smoke.yaml", seed=0)


def test_batch_is_encode_then_collate():
    """wb.batch is exactly the encode -> collate the notebooks used to write out (same tensors)."""
    import dataclasses

    import torch

    from compact.inputs.encode import collate, encode_instances
    from compact.method.batch import Batch

    wb = _smoke()
    dev = wb.instances(limit=3)
    for max_length in (512, 64):
        b = wb.batch(dev, max_length=max_length)
        qs, _ = encode_instances(dev, wb.tokenizer, teachers=wb.teachers, max_length=max_length)
        ref = collate(qs, pad_id=wb.tokenizer.pad_token_id, thinking_ids=wb.thinking_ids)
        assert isinstance(b, Batch) and b.n_questions == 3 and len(b.input_ids) == sum(len(i.teachers) for i in dev)
        for f in dataclasses.fields(Batch):
            x, y = getattr(b, f.name), getattr(ref, f.name)
            assert (x is None and y is None) or torch.equal(x, y), f.name
    assert wb.batch(dev).input_ids.shape == wb.batch(dev, max_length=512).input_ids.shape  # 512 by default
    assert wb.batch(dev, max_length=64).input_ids.shape[1] <= 64


def test_forward_equals_a_direct_call():
    """wb.forward(batch) = model(input_ids=..., attention_mask=...): the logits, and the last hidden state."""
    import torch

    wb = _smoke()
    b = wb.batch(wb.instances(limit=2))
    student = wb.student()
    with torch.no_grad():
        out = wb.forward(b)
        direct = student(input_ids=b.input_ids, attention_mask=b.attention_mask, output_hidden_states=True)
        plain = student(input_ids=b.input_ids, attention_mask=b.attention_mask)
        lean = wb.forward(b, hidden=False)
    n, length = b.input_ids.shape
    assert out.logits.shape[:2] == (n, length) and out.hidden.shape[:2] == (n, length)
    assert torch.equal(out.logits, direct.logits) and torch.equal(out.hidden, direct.hidden_states[-1])
    assert lean.hidden is None and torch.equal(lean.logits, plain.logits)
    logits, hidden = out  # unpacks like a tuple

    calls = []

    class Spy(torch.nn.Module):  # another model: forward runs it, not the base student
        def forward(self, **kwargs):
            calls.append(kwargs)
            return student(**kwargs)

    with torch.no_grad():
        other = wb.forward(b, model=Spy())
    assert len(calls) == 1 and calls[0]["input_ids"] is b.input_ids and calls[0]["output_hidden_states"] is True
    assert torch.equal(other.logits, logits) and torch.equal(other.hidden, hidden)


def test_run_module_runs_a_module_from_the_repo_root(tmp_path, capsys):
    """run_module: python [launcher] -m module args from the repo root, quiet env plus extras, stdout lines;
    the command echoed with the interpreter as `python` and redacted paths; a failure raises with stderr."""
    import os
    import sys

    import pytest

    from compact.paths import repo_root
    from compact.workbench import run_module

    (tmp_path / "probe.py").write_text(
        "import os, sys\n"
        "print(os.getcwd())\n"
        "print(os.environ['COMPACT_QUIET'], os.environ['OMP_NUM_THREADS'], os.environ['PROBE'])\n"
        "print(sys.flags.optimize)\n"
        "print(*sys.argv[1:])\n"
        "if 'fail' in sys.argv: sys.exit('probe failed on purpose')\n")
    env = {"PYTHONPATH": str(tmp_path), "PROBE": "yes"}
    lines = run_module("probe", "a", tmp_path / "x", launcher=["-O"], env=env, redact={str(tmp_path): "$TMP"})
    assert os.path.samefile(lines[0], repo_root())
    assert lines[1:] == ["1 1 yes", "1", f"a {tmp_path / 'x'}"]
    out = capsys.readouterr().out
    assert out == "$ python -O -m probe a $TMP/x\n" and sys.executable not in out
    run_module("probe", env=env, echo=False)
    assert capsys.readouterr().out == ""
    with pytest.raises(RuntimeError, match="probe failed on purpose"):
        run_module("probe", "fail", env=env)
