"""Benchmark adapters on small local files written in each benchmark's published schema."""
import json

import pytest

from compact.data import benchmarks as B
from compact.data.benchmarks import BenchmarkSpec, load_benchmark
from compact.errors import ConfigError, DataError

GSM8K = [
    {"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
                 "How many clips did Natalia sell altogether in April and May?",
     "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether "
               "in April and May.\n#### 72"},
    {"question": "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
                 "How much did she earn?",
     "answer": "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = "
               "$<<0.2*50=10>>10.\n#### 10"},
    {"question": "A company has 1,000 units and sells 2,500 more. How many in total?",
     "answer": "1000 + 2500 = <<1000+2500=3500>>3500\n#### 3,500"},
]
MATH500 = [
    {"problem": "Convert the point $(0,3)$ in rectangular coordinates to polar coordinates.",
     "solution": "We have that $r = \\sqrt{0^2 + 3^2} = 3.$ ... \\[\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.\\]",
     "answer": "\\left( 3, \\frac{\\pi}{2} \\right)", "subject": "Precalculus", "level": 2,
     "unique_id": "test/precalculus/807.json"},
    {"problem": "What is $\\frac{1}{2} + \\frac{1}{4}$?", "solution": "The sum is $\\boxed{\\frac{3}{4}}$.",
     "answer": "", "subject": "Prealgebra", "level": 1, "unique_id": "test/prealgebra/1.json"},
]
SVAMP = [
    {"ID": "chal-1", "Body": "Each pack of dvds costs 76 dollars. If there is a discount of 25 dollars on each pack",
     "Question": "How much do you have to pay to buy each pack?", "Equation": "( 76.0 - 25.0 )",
     "Answer": 51.0, "Type": "Subtraction"},
    {"ID": "chal-2", "Body": "Dan had $ 3 left with him after he bought a candy bar. If he had $ 4 at the start.",
     "Question": "How much did the candy bar cost?", "Equation": "( 4.0 - 3.0 )", "Answer": 1.0,
     "Type": "Subtraction"},
]
CSQA = [
    {"id": "075e483d21c29a511267ef62bedc0461",
     "question": "The sanctions against the school were a punishing blow, and they seemed to what the efforts the "
                 "school had made to change?", "question_concept": "punishing",
     "choices": {"label": ["A", "B", "C", "D", "E"],
                 "text": ["ignore", "enforce", "authoritarian", "yell at", "avoid"]},
     "answerKey": "A"},
]
STRATEGYQA = [
    {"qid": "b8677742616fef051f00", "term": "Genghis Khan", "description": "founder of the Mongol Empire",
     "question": "Are more people today related to Genghis Khan than Julius Caesar?", "answer": True,
     "facts": ["Julius Caesar had three children.", "Genghis Khan had sixteen children."],
     "decomposition": ["How many kids did Julius Caesar have?"]},
    {"qid": "4668264df84fb7c25b39", "term": "Pound sterling", "description": "official currency of the UK",
     "question": "Could a llama birth twice during War in Vietnam (1945-46)?", "answer": False,
     "facts": ["The War in Vietnam was 6 months.", "The gestation period for a llama is 11 months."]},
]


def write(tmp_path, name, rows, fmt):
    p = tmp_path / f"{name}.{fmt}"
    if fmt == "jsonl":
        p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "json":
        p.write_text(json.dumps(rows))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), str(p))
    return p


@pytest.mark.parametrize("fmt", ["jsonl", "json", "parquet"])
def test_gsm8k(tmp_path, fmt):
    p = write(tmp_path, "gsm8k", GSM8K, fmt)
    exs = load_benchmark(BenchmarkSpec(name="gsm8k", path=str(p), split="test"))
    assert [e.answer for e in exs] == ["72", "10", "3500"]
    assert all(e.answer_type == "number" and e.source == "gsm8k" and e.split == "test" for e in exs)
    assert exs[0].question.startswith("Natalia sold clips")
    assert len({e.id for e in exs}) == 3


def test_math500(tmp_path):
    exs = load_benchmark(BenchmarkSpec(name="math500", path=str(write(tmp_path, "m", MATH500, "jsonl"))))
    assert exs[0].id == "test/precalculus/807.json"
    assert exs[0].answer == "\\left( 3, \\frac{\\pi}{2} \\right)" and exs[0].answer_type == "latex"
    assert exs[1].answer == "\\frac{3}{4}"  # empty 'answer': taken from the solution's \boxed{}
    assert exs[0].meta["subject"] == "Precalculus"


def test_svamp(tmp_path):
    exs = load_benchmark(BenchmarkSpec(name="svamp", path=str(write(tmp_path, "s", SVAMP, "json"))))
    assert [e.answer for e in exs] == ["51", "1"]
    assert exs[0].question == ("Each pack of dvds costs 76 dollars. If there is a discount of 25 dollars on each "
                               "pack. How much do you have to pay to buy each pack?")
    assert exs[0].id == "chal-1"


def test_commonsense_qa(tmp_path):
    exs = load_benchmark(BenchmarkSpec(name="commonsense_qa", path=str(write(tmp_path, "c", CSQA, "jsonl"))))
    e = exs[0]
    assert e.answer == "A" and e.answer_type == "choice" and e.split == "validation"
    assert e.choices == ("ignore", "enforce", "authoritarian", "yell at", "avoid")
    assert "Answer choices: (A) ignore (B) enforce (C) authoritarian (D) yell at (E) avoid" in e.question


def test_strategyqa(tmp_path):
    exs = load_benchmark(BenchmarkSpec(name="strategyqa", path=str(write(tmp_path, "q", STRATEGYQA, "json"))))
    assert [e.answer for e in exs] == ["yes", "no"]
    assert exs[0].meta["facts"][0] == "Julius Caesar had three children."
    assert exs[0].answer_type == "yesno"


def test_limit(tmp_path):
    exs = load_benchmark(BenchmarkSpec(name="gsm8k", path=str(write(tmp_path, "g", GSM8K, "jsonl")), limit=2))
    assert len(exs) == 2


def test_save_to_disk_folder(tmp_path):
    import datasets

    datasets.Dataset.from_list(GSM8K).save_to_disk(str(tmp_path / "gsm"))
    exs = load_benchmark(BenchmarkSpec(name="gsm8k", path=str(tmp_path / "gsm")))
    assert [e.answer for e in exs] == ["72", "10", "3500"]


def test_hub_arguments(monkeypatch):
    """Hub loading passes id, config and split through to datasets.load_dataset (no network in tests)."""
    import datasets

    calls = []

    def fake_load(path, name=None, split=None):
        calls.append((path, name, split))
        return GSM8K

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    exs = load_benchmark(BenchmarkSpec(name="gsm8k", split="train"))
    assert calls == [("openai/gsm8k", "main", "train")]
    assert exs[0].split == "train"
    load_benchmark(BenchmarkSpec(name="gsm8k", path="my-org/gsm8k-mirror", config="socratic"))
    assert calls[-1] == ("my-org/gsm8k-mirror", "socratic", "test")


def test_hub_failure_is_clear(monkeypatch):
    import datasets

    def fail(*a, **k):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", fail)
    with pytest.raises(DataError, match="cannot load tau/commonsense_qa.*offline"):
        load_benchmark(BenchmarkSpec(name="commonsense_qa"))


@pytest.mark.parametrize("name,rows,record,field", [
    ("gsm8k", [{"question": "q?"}], "record 0", "answer"),
    ("gsm8k", [{"question": "q?", "answer": "no marker"}], "record 0", "answer"),
    ("gsm8k", [{"question": "", "answer": "#### 3"}], "record 0", "question"),
    ("gsm8k", [{"question": 5, "answer": "#### 3"}], "record 0", "question"),
    ("gsm8k", [{"question": "q", "answer": "#### three"}], "record 0", "answer"),
    ("math500", [{"problem": "p", "solution": "no box", "answer": "", "unique_id": "u1"}], "record u1", "answer"),
    ("svamp", [{"ID": "x9", "Body": "b", "Question": "q"}], "record x9", "Answer"),
    ("commonsense_qa", [dict(CSQA[0], answerKey="")], "record 075e", "answerKey"),
    ("commonsense_qa", [dict(CSQA[0], choices={"label": ["A"], "text": []})], "record 075e", "choices"),
    ("strategyqa", [dict(STRATEGYQA[0], answer="maybe")], "record b867", "answer"),
])
def test_malformed_records(tmp_path, name, rows, record, field):
    p = write(tmp_path, name, rows, "jsonl")
    with pytest.raises(DataError) as err:
        load_benchmark(BenchmarkSpec(name=name, path=str(p)))
    msg = str(err.value)
    assert str(p) in msg and record in msg and f"field '{field}'" in msg


def test_bad_files(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"question": "a", "answer": "#### 1"}\n{oops\n')
    with pytest.raises(DataError, match="bad.jsonl, record line 2: invalid JSON"):
        load_benchmark(BenchmarkSpec(name="gsm8k", path=str(p)))
    with pytest.raises(DataError, match="file not found"):
        load_benchmark(BenchmarkSpec(name="gsm8k", path=str(tmp_path / "missing.jsonl")))
    dup = write(tmp_path, "dup", [SVAMP[0], SVAMP[0]], "jsonl")
    with pytest.raises(DataError, match="record chal-1, field .id.: duplicate id"):
        load_benchmark(BenchmarkSpec(name="svamp", path=str(dup)))


def test_unknown_benchmark_via_config():
    from compact.config import from_dict

    with pytest.raises(ConfigError, match="unknown benchmark 'gsm9k'"):
        from_dict(BenchmarkSpec, {"name": "gsm9k"})
    assert set(B.BENCHMARKS) == {"gsm8k", "math500", "svamp", "commonsense_qa", "strategyqa"}
