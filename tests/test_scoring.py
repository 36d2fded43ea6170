"""The scoring tool: same numbers as the objective core, batching-exact, flags, files, errors, CLI."""
import json

import pytest
import torch

from compact.analysis.scoring import (
    ScoreConfig,
    ScoreInput,
    flag_low_consensus,
    read_rationale_file,
    score_instances,
)
from compact.errors import DataError
from compact.method.objective import ObjectiveConfig, compact_objective

RECORDS = [
    {"id": "a", "question": "tom has 3 apples and buys 4 more. how many apples?", "answer": "7",
     "answer_type": "number", "teachers": ["t1", "t2", "t3"],
     "rationales": ["3 plus 4 is 7. so the answer is 7.", "wait, 3 times 4 is 12. the answer is 12.",
                    "first 3 + 4 = 7. therefore the answer is 7."]},
    {"id": "b", "question": "ann has 9 pears and eats 2. how many pears are left?", "answer": "7",
     "answer_type": "number", "teachers": ["t1", "t2", "t3"],
     "rationales": ["9 minus 2 is 7. the answer is 7.", "9 - 2 = 7. so the answer is 7.",
                    "hmm 9 + 2 = 11. the answer is 11."]},
    {"id": "c", "question": "bob has 2 books. how many books?", "answer": "2", "answer_type": "number",
     "teachers": ["t1", "t2", "t3"],
     "rationales": ["the answer is 2.", "bob has 2 books. thus the answer is 2.", "the answer is 3."]},
]


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    from compact.trainer.tiny import tiny_student

    return tiny_student(tmp_path_factory.mktemp("score") / "student", seed=1)


@pytest.fixture()
def data_file(tmp_path):
    p = tmp_path / "rats.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
    return p


def _load(student):
    from compact.inputs.model import load_model, load_tokenizer

    return load_model(student), load_tokenizer(student, pad_to_eos=True)


def test_scores_match_objective_core_and_batching(student, data_file):
    from compact.inputs.encode import collate, encode_instances
    from compact.method.adaptability import thinking_token_ids

    model, tok = _load(student)
    inst = read_rationale_file(data_file)
    cfg = ScoreConfig(input=ScoreInput(path=str(data_file)), batch_questions=3)
    rows = score_instances(model, tok, inst, cfg)
    assert len(rows) == 9 and [r["teacher"] for r in rows[:3]] == ["t1", "t2", "t3"]
    for qid in "abc":
        assert sum(r["alpha"] for r in rows if r["id"] == qid) == pytest.approx(1.0, abs=1e-6)
    assert all(r["weight"] == r["alpha"] for r in rows)
    assert [r["answer_correct"] for r in rows] == [True, False, True, True, True, False, True, True, False]
    # the same numbers as the training objective on the same batch
    qs, _ = encode_instances(inst, tok, teachers=["t1", "t2", "t3"], max_length=1024)
    batch = collate(qs, pad_id=tok.pad_token_id, thinking_ids=thinking_token_ids(tok))
    with torch.no_grad():
        ref = compact_objective(model, batch, ObjectiveConfig())
    assert torch.allclose(torch.tensor([r["alpha"] for r in rows]), ref.alpha.float(), atol=1e-6)
    assert torch.allclose(torch.tensor([r["mi"] for r in rows]), ref.mi.float(), atol=1e-5)
    assert torch.allclose(torch.tensor([r["consensus"] for r in rows]), ref.consensus.float(), atol=1e-6)
    assert torch.allclose(torch.tensor([r["difficulty"] for r in rows]), ref.per_branch_loss.float(), atol=1e-6)
    # reference MI counts each question up to its own longest branch, so the batch width does not matter...
    one = score_instances(model, tok, inst, ScoreConfig(input=ScoreInput(path=str(data_file)), batch_questions=1))
    assert [a["mi"] for a in rows] == pytest.approx([b["mi"] for b in one], abs=1e-5)
    with torch.no_grad():  # ...and batch_questions=1 is the released layout: each question alone
        alone = compact_objective(model, collate(qs[:1], pad_id=tok.pad_token_id,
                                                 thinking_ids=thinking_token_ids(tok)), ObjectiveConfig())
    assert [r["alpha"] for r in one[:3]] == pytest.approx(alone.alpha.tolist(), abs=1e-6)
    # with the masked MI variant, alpha is per question and batching is exact
    masked = ObjectiveConfig(mi_variant="masked_mean")
    a3 = score_instances(model, tok, inst, ScoreConfig(objective=masked, batch_questions=3))
    a1 = score_instances(model, tok, inst, ScoreConfig(objective=masked, batch_questions=1))
    for a, b in zip(a3, a1):
        assert a["alpha"] == pytest.approx(b["alpha"], abs=1e-5) and a["mi"] == pytest.approx(b["mi"], abs=1e-5)
    assert not any(p.grad is not None for p in model.parameters())


def test_flag_low_consensus_quantile_and_z():
    rows = [{"consensus": c, "k": 3} for c in [0.1, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3]]
    rows.append({"consensus": 0.0, "k": 1})  # a lone rationale has no consensus: never flagged
    flag_low_consensus(rows, quantile=0.2)  # threshold 0.58: 0.1 and 0.5
    assert [r["low_consensus"] for r in rows] == [True, True] + [False] * 9
    flag_low_consensus(rows, z=1.5)  # mean 0.72, sd 0.365 -> threshold 0.172
    assert [r["low_consensus"] for r in rows] == [True] + [False] * 10


def test_bad_input_names_file_record_field(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({"id": "x1", "question": "q", "answer": "1", "rationales": ["ok", ""]}) + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl.*record x1.*rationales\[1\]"):
        read_rationale_file(p)
    p.write_text(json.dumps({"id": "x2", "question": "q", "answer": "1", "rationales": ["a", "b"],
                             "teachers": ["only one"]}) + "\n")
    with pytest.raises(DataError, match="record x2.*'teachers'"):
        read_rationale_file(p)
    p.write_text(json.dumps({"question": "q", "rationales": ["a"]}) + "\n")
    with pytest.raises(DataError, match="record 0.*'answer'"):
        read_rationale_file(p)
    p.write_text("{not json\n")
    with pytest.raises(DataError, match="line 1"):
        read_rationale_file(p)


def test_parquet_input_and_defaults(tmp_path):
    import pandas as pd

    p = tmp_path / "rats.parquet"
    pd.DataFrame([{"question": r["question"], "rationales": r["rationales"], "answer": 7} for r in RECORDS[:2]]
                 ).to_parquet(p)
    inst = read_rationale_file(p)
    assert [i.id for i in inst] == ["0", "1"] and inst[0].teachers == ["teacher0", "teacher1", "teacher2"]
    assert inst[0].answer == "7" and inst[0].answer_type == ""


def test_cli_writes_dataset_with_weight_column(student, data_file, tmp_path, monkeypatch, capsys):
    import datasets

    from compact import cli

    monkeypatch.setenv("COMPACT_ARTIFACTS", str(tmp_path / "art"))
    argv = ["score", "--set", f"student={student}", "--set", f"input.path={data_file}", "--set", "hsic=true"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "9 rationales of 3 questions scored" in out
    (d,) = (tmp_path / "art" / "score").iterdir()
    assert {"dataset", "scores.parquet", "scores.jsonl", "manifest.json", "summary.json", "config.yaml"} <= \
        {p.name for p in d.iterdir()}
    ds = datasets.load_from_disk(str(d / "dataset"))
    assert len(ds) == 9 and {"weight", "mi", "consensus", "difficulty", "fused", "low_consensus", "hsic"} <= \
        set(ds.column_names)
    assert all(0.0 <= h <= 1.0 for h in ds["hsic"])
    man = json.loads((d / "manifest.json").read_text())
    assert man["kind"] == "score" and man["summary"]["n_rows"] == 9
    # bad input: one line, exit 2, nothing written
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "z", "question": "q", "answer": "1", "rationales": "not a list"}]))
    assert cli.main(["score", "--set", f"student={student}", "--set", f"input.path={bad}"]) == 2
    err = capsys.readouterr().err
    assert "record z" in err and "'rationales'" in err
    assert len(list((tmp_path / "art" / "score").iterdir())) == 1
