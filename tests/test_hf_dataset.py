"""`compact export --format dataset`: the rationale store as a Hugging Face DatasetDict (one row per question, K
completions), its dataset card, and the reader the Transformers/TRL trainers share (bad rows in one line)."""
from __future__ import annotations

import json

import pytest

from compact.errors import DataError
from compact.hf.dataset import COLUMNS, instance_row, merge_card, rows_to_instances
from compact.trainer.tiny import toy_instances

SMOKE = "configs/generate/smoke.yaml"


@pytest.fixture(scope="module")
def smoke_export(tmp_path_factory):
    """The smoke store exported through the command line (the store builds in about a minute, then is reused)."""
    from compact.cli import main

    out = tmp_path_factory.mktemp("export") / "world"
    assert main(["export", "--format", "dataset", "--generate", SMOKE, "--out", str(out)]) == 0
    return out


def test_export_is_a_datasetdict_of_one_row_per_question(smoke_export):
    import datasets

    from compact.teachers.generate import generate_store, load_config
    from compact.teachers.view import build_instances

    dd = datasets.load_from_disk(str(smoke_export))
    assert set(dd) == {"train", "validation"}
    assert list(dd["train"].column_names) == list(COLUMNS)
    store = generate_store(load_config(SMOKE))
    want = [i for key in ("arith-train", "variation-train", "symbolic-train") for i in build_instances(store, key)]
    assert len(dd["train"]) == len(want) and len(dd["validation"]) == 60
    for row, inst in zip(dd["train"], want):  # the order compact train reads the store in
        assert row["id"] == inst.id and row["teachers"] == inst.teachers and row["answer"] == inst.answer
        assert row["prompt"] == [{"role": "user", "content": inst.question}]
        assert row["completions"] == [[{"role": "assistant", "content": r}] for r in inst.rationales]
        assert row["correct"] == [lab["final_correct"] for lab in inst.labels]
        assert row["steps_correct"] == [lab["steps_correct"] for lab in inst.labels]
    # read back by the trainers' reader: the same instances
    back, _ = rows_to_instances(dd["train"], where="train")
    assert [(b.id, b.question, b.rationales, b.teachers, b.answer) for b in back] == \
           [(w.id, w.question, w.rationales, w.teachers, w.answer) for w in want]
    card = (smoke_export / "README.md").read_text()
    assert card.startswith("---\n") and "license: apache-2.0" in card
    for needle in ("| train | 180 |", "sim-qwq", "QwQ-32B", "## Provenance", "compact export --format dataset",
                   "configs/world/smoke.yaml", "| `completions` |"):
        assert needle in card, needle
    manifest = json.loads((smoke_export / "manifest.json").read_text())
    assert manifest["kind"] == "hub-dataset" and manifest["rows"] == {"train": 180, "validation": 60}
    assert manifest["generate_config"]["teachers"][0]["name"] == "sim-r1-distill"


def test_export_cli_bad_input_is_one_line(tmp_path, capsys, smoke_export):
    from compact.cli import main

    for argv, needle in ((["--format", "dataset", "--out", str(tmp_path / "a")], "--generate"),
                         (["--format", "dataset", "--generate", SMOKE, "--keys", "arith-tset", "--out",
                           str(tmp_path / "b")], "arith-tset"),
                         (["--format", "dataset", "--store", str(tmp_path / "nothing"), "--out", str(tmp_path / "c")],
                          "rationale store not found"),
                         (["--format", "dataset", "--generate", SMOKE, "--out", str(smoke_export)], "--force")):
        rc = main(["export", *argv])
        err = capsys.readouterr().err.strip()
        # the error is one line (the progress log lines before it are INFO records, not part of the error)
        errors = [line for line in err.splitlines() if " INFO " not in line]
        assert rc == 2 and len(errors) == 1 and needle in errors[0] and "Traceback" not in err, (argv, err)
    assert not any((tmp_path / n).exists() for n in "abc")


def bad(rows, **kw):
    with pytest.raises(DataError) as exc:
        rows_to_instances(rows, where="train_dataset", **kw)
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_bad_rows_are_one_line_naming_the_row():
    rows = [instance_row(i) for i in toy_instances(3)]
    short = dict(rows[1], teachers=rows[1]["teachers"][:2])
    msg = bad([rows[0], short])
    assert "row 1" in msg and "toy-1" in msg and "3 completions but 2 teacher names" in msg
    one = dict(rows[2], completions=rows[2]["completions"][:1], teachers=["t0"], correct=[None], steps_correct=[None],
               extracted=[None])
    msg = bad([rows[0], rows[1], one])
    assert "row 2" in msg and "toy-2" in msg and "method 'compact'" in msg and "at least 2" in msg
    assert rows_to_instances([one], method="single")[0][0].teachers == ["t0"]  # one completion is enough there
    two_turns = dict(rows[0], completions=[c + c for c in rows[0]["completions"]])
    assert "one assistant turn" in bad([two_turns])
    assert "must end with a user turn" in bad([dict(rows[0], prompt=[{"role": "assistant", "content": "x"}])])
    assert "duplicate id" in bad([rows[0], rows[0]])
    assert "field 'correct'" in bad([dict(rows[0], correct=[True])])


def test_prompts_with_a_system_turn_are_kept():
    row = instance_row(toy_instances(1)[0])
    row["prompt"] = [{"role": "system", "content": "be brief"}, *row["prompt"]]
    insts, prompts = rows_to_instances([row])
    assert prompts[0][0] == {"role": "system", "content": "be brief"}
    assert insts[0].question == row["prompt"][-1]["content"]


def test_card_merge_keeps_the_hubs_loading_metadata():
    hub = "---\ndataset_info:\n  features: []\nconfigs:\n- config_name: default\nlicense: mit\n---\nauto card\n"
    ours = "---\npretty_name: x\nlicense: apache-2.0\n---\n# x\nbody\n"
    merged = merge_card(hub, ours)
    import yaml

    meta = yaml.safe_load(merged.split("---\n")[1])
    assert meta["configs"] == [{"config_name": "default"}] and "dataset_info" in meta
    assert meta["license"] == "apache-2.0" and meta["pretty_name"] == "x"
    assert merged.endswith("# x\nbody\n") and "auto card" not in merged
