"""World tasks: determinism, split disjointness, schema, and gold answers re-checked independently.

The checker below does not call the generator's solver: it re-reads the rendered question TEXT
(sentence patterns for word problems, a small recursive-descent parser for expressions and linear
equations, the knowledge base parsed back from its fact sentences) and derives the answer itself.
"""
from __future__ import annotations

import re
from fractions import Fraction

import pytest

from compact.data.records import Example
from compact.world import tasks as T
from compact.world.build import TasksConfig

SIZES_ID = {"train": 300, "dev": 60, "test": 60}
SIZES_OOD = {"train": 300, "dev": 80, "test": 80}


def _sizes(task):
    return SIZES_ID if task in T.ID_TASKS else SIZES_OOD


@pytest.fixture(scope="module")
def tcfg():
    return TasksConfig()


@pytest.fixture(scope="module")
def generated(tcfg):
    return {task: T.generate_task(task, 7, _sizes(task), tcfg) for task in T.TASKS}


# ------------------------------------------------------------------ independent checker: word problems
_NUM = r"(\d+)"
_NAME = r"([A-Z][a-z]+)"


def solve_word_problem(text: str) -> int:
    """Answer a world word problem by reading its sentences (question first or last)."""
    sentences = re.findall(r"[^.?]+[.?]", text)
    sentences = [s.strip() for s in sentences]
    question = next(s for s in sentences if s.endswith("?"))
    item = re.search(r"How many (\w+)", question).group(1)
    if item == "bags":  # "How many bags does X fill?": the things are the ones put into bags
        item = re.search(r"puts the (\w+) into bags", text).group(1)
    counts: dict[str, int] = {}
    last: str | None = None  # the last person a sentence about `item` was about
    pronouns = {"He", "She"}
    answer = None
    for s in sentences:
        if s.endswith("?"):
            continue
        body = s[:-1]
        words = body.split()
        who = words[0]
        if who in pronouns:
            who = last
        m = re.fullmatch(rf"{_NAME} has {_NUM} boxes of (\w+)", body)
        if m and m.group(3) == item:
            counts[m.group(1)], last = int(m.group(2)), m.group(1)
            continue
        m = re.fullmatch(rf"Each box holds {_NUM} (\w+)", body)
        if m and m.group(2) == item:
            counts[last] *= int(m.group(1))
            continue
        m = re.fullmatch(rf"{_NAME} has {_NUM} times as many (\w+) as {_NAME}", body)
        if m and m.group(3) == item:
            counts[m.group(1)], last = int(m.group(2)) * counts[m.group(4)], m.group(1)
            continue
        m = re.fullmatch(rf"{_NAME} has {_NUM} (\w+)", body)
        if m:
            if m.group(3) == item:
                counts[m.group(1)], last = int(m.group(2)), m.group(1)
            continue
        m = re.fullmatch(rf"\w+ (?:buys|finds|gets) {_NUM} more (\w+)(?: from a friend)?", body)
        if m and m.group(2) == item:
            counts[who] += int(m.group(1))
            last = who
            continue
        m = re.fullmatch(rf"\w+ (?:gives|loses|sells) {_NUM} (\w+)(?: to a friend)?", body)
        if m and m.group(2) == item:
            counts[who] -= int(m.group(1))
            last = who
            continue
        m = re.fullmatch(rf"\w+ shares the (\w+) equally among {_NUM} friends", body)
        if m:
            q, r = divmod(counts[who], int(m.group(2)))
            assert r == 0
            answer = q
            continue
        m = re.fullmatch(rf"\w+ puts the (\w+) into bags of {_NUM}", body)
        if m:
            q, r = divmod(counts[who], int(m.group(2)))
            assert r == 0
            answer = q
            continue
        # distractors: ages, other things, things on the table
        assert re.fullmatch(rf"({_NAME} is {_NUM} years old|{_NAME} also has {_NUM} \w+|There are {_NUM} \w+ on the table)",
                            body), f"unparsed sentence {s!r}"
    m = re.fullmatch(rf"How many \w+ do {_NAME} and {_NAME} have together\?", question)
    if m:
        return counts[m.group(1)] + counts[m.group(2)]
    m = re.fullmatch(rf"How many \w+ does {_NAME} have(?: now)?\?", question)
    if m:
        return counts[m.group(1)]
    assert answer is not None, question
    return answer


# ------------------------------------------------------------------ independent checker: symbolic
class _Parser:
    """Recursive descent over + - * / ( ) integers and x; values are linear forms a*x + b."""

    def __init__(self, text: str):
        self.toks = re.findall(r"\d+|[x()+\-*/]", text.replace(" ", ""))
        assert "".join(self.toks) == text.replace(" ", ""), text
        self.i = 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self):
        self.i += 1
        return self.toks[self.i - 1]

    def expr(self):
        a = self.term()
        while self.peek() in ("+", "-"):
            op, b = self.take(), self.term()
            a = (a[0] + b[0], a[1] + b[1]) if op == "+" else (a[0] - b[0], a[1] - b[1])
        return a

    def term(self):
        a = self.factor()
        while self.peek() in ("*", "/", "(", "x"):
            op = self.take() if self.peek() in ("*", "/") else "*"  # implicit: 3x, 2(x + 1)
            b = self.factor()
            if op == "*":
                assert a[0] == 0 or b[0] == 0, "non-linear"
                a = (a[0] * b[1] + b[0] * a[1], a[1] * b[1])
            else:
                assert b[0] == 0 and b[1] != 0
                a = (a[0] / b[1], a[1] / b[1])
        return a

    def factor(self):
        t = self.take()
        if t == "(":
            v = self.expr()
            assert self.take() == ")"
            return v
        if t == "x":
            return (Fraction(1), Fraction(0))
        return (Fraction(0), Fraction(int(t)))


def solve_symbolic(text: str) -> Fraction:
    m = re.fullmatch(r"(?:Solve for x: |Find x if |What is x if )(.+?)[.?]", text)
    if m:
        left, right = m.group(1).split("=")
        (a1, b1), (a2, b2) = _Parser(left).expr(), _Parser(right).expr()
        return (b2 - b1) / (a1 - a2)
    m = re.fullmatch(r"(?:What is |Evaluate |Compute )(.+?)[.?]", text)
    p = _Parser(m.group(1))
    coef, const = p.expr()
    assert coef == 0 and p.peek() is None
    return const


# ------------------------------------------------------------------ independent checker: knowledge base
def parse_kb(facts: list[str]):
    kind, habitat, food, props = {}, {}, {}, {}
    for f in facts:
        if m := re.fullmatch(r"An? (\w+) is an? (\w+)\.", f):
            kind[m.group(1)] = m.group(2)
        elif m := re.fullmatch(r"An? (\w+) lives in the (\w+)\.", f):
            habitat[m.group(1)] = m.group(2)
        elif m := re.fullmatch(r"An? (\w+) eats (\w+)\.", f):
            food[m.group(1)] = m.group(2)
        elif m := re.fullmatch(r"An? (\w+) (.+)\.", f):
            props.setdefault(m.group(1), set()).add(m.group(2))
        else:
            raise AssertionError(f)
    return kind, habitat, food, props


_BASE_TO_3RD = {"have": "has", "lay": "lays", "drink": "drinks"}


def solve_ood(e: Example, kb) -> str:
    kind, habitat, food, props = kb
    if e.source == "mcq":
        stem, *lines = e.question.split("\n")
        choices = [re.fullmatch(r"\(([A-E])\) (.+)", ln).groups() for ln in lines]
        assert [c[0] for c in choices] == list("ABCDE")
        animal_q = {r"What kind of animal is an? (\w+)\?": kind, r"Where does an? (\w+) live\?": habitat,
                    r"What does an? (\w+) eat\?": food}
        for pat, table in animal_q.items():
            if m := re.fullmatch(pat, stem):
                good = [l for l, c in choices if c == table[m.group(1)]]
                break
        else:
            if m := re.fullmatch(r"Which of these is an? (\w+)\?", stem):
                good = [l for l, c in choices if kind[c] == m.group(1)]
            elif m := re.fullmatch(r"Which of these lives in the (\w+)\?", stem):
                good = [l for l, c in choices if habitat[c] == m.group(1)]
            elif m := re.fullmatch(r"Which of these (.+)\?", stem):
                good = [l for l, c in choices if m.group(1) in props[kind[c]]]
            else:
                raise AssertionError(stem)
        assert len(good) == 1, (e.question, good)
        return good[0]
    q = e.question
    if m := re.fullmatch(r"Is an? (\w+) the same kind of animal as an? (\w+)\?", q):
        same = kind[m.group(1)] == kind[m.group(2)]
    elif m := re.fullmatch(r"Does an? (\w+) live in the same place as an? (\w+)\?", q):
        same = habitat[m.group(1)] == habitat[m.group(2)]
    elif m := re.fullmatch(r"Does an? (\w+) eat the same food as an? (\w+)\?", q):
        same = food[m.group(1)] == food[m.group(2)]
    elif m := re.fullmatch(r"Is an? (\w+) an? (\w+)\?", q):  # one-fact claims (worlds with knowledge probes)
        same = kind[m.group(1)] == m.group(2)
    elif m := re.fullmatch(r"Does an? (\w+) live in the (\w+)\?", q):
        same = habitat[m.group(1)] == m.group(2)
    elif m := re.fullmatch(r"Does an? (\w+) eat (\w+)\?", q):
        same = food[m.group(1)] == m.group(2)
    elif m := re.fullmatch(r"Does an? (\w+) (\w+) (.+)\?", q):
        prop = f"{_BASE_TO_3RD[m.group(2)]} {m.group(3)}"
        same = prop in props[kind[m.group(1)]]
    else:
        raise AssertionError(q)
    return "yes" if same else "no"


# ------------------------------------------------------------------ tests
def test_same_seed_same_records(tcfg, generated):
    again = T.generate_task("variation", 7, SIZES_ID, tcfg)
    assert [e.to_row() for e in again["dev"]] == [e.to_row() for e in generated["variation"]["dev"]]
    other = T.generate_task("variation", 8, SIZES_ID, tcfg)
    assert [e.question for e in other["dev"]] != [e.question for e in generated["variation"]["dev"]]


@pytest.mark.parametrize("task", T.TASKS)
def test_splits_sizes_ids_and_disjointness(task, generated):
    splits = generated[task]
    for split, n in _sizes(task).items():
        assert len(splits[split]) == n
        assert all(e.split == split and e.source == task for e in splits[split])
        assert splits[split][3].id == f"{task}-{split}-00003"
    questions = {s: {e.question for e in exs} for s, exs in splits.items()}
    assert sum(len(q) for q in questions.values()) == sum(_sizes(task).values())  # unique within splits
    assert not (questions["train"] & questions["dev"])
    assert not (questions["train"] & questions["test"])
    assert not (questions["dev"] & questions["test"])


@pytest.mark.parametrize("task", T.ID_TASKS)
def test_id_records_follow_the_step_schema(task, generated, tcfg):
    for e in (x for exs in generated[task].values() for x in exs):
        assert e.answer_type == "number" and e.meta["task"] == task
        assert re.fullmatch(r"[1-9]\d*", e.answer)
        steps = e.meta["steps"]
        assert 2 <= len(steps) <= 4
        for j, st in enumerate(steps):
            assert set(st) == {"op", "args", "refs", "value", "desc"}
            a, b = st["args"]
            assert {"+": a + b, "-": a - b, "*": a * b, "/": a // b if b and a % b == 0 else None}[st["op"]] == st["value"]
            assert 1 <= st["value"] <= tcfg.max_value and st["desc"]
            for arg, ref in zip(st["args"], st["refs"]):
                if ref is not None:
                    assert 0 <= ref < j and steps[ref]["value"] == arg
        assert str(steps[-1]["value"]) == e.answer
        # every computed value except the last feeds a later step
        used = {r for st in steps for r in st["refs"] if r is not None}
        assert used == set(range(len(steps) - 1))
        if task == "variation":
            assert 1 <= len(e.meta["distractors"]) <= 2
            assert all(d in e.question for d in e.meta["distractors"])
            assert e.question.split("?")[0].startswith("How many")


@pytest.mark.parametrize("task", ["arith", "variation"])
def test_word_problem_answers_rechecked_from_text(task, generated):
    for e in (x for exs in generated[task].values() for x in exs):
        assert str(solve_word_problem(e.question)) == e.answer, e.question


def test_symbolic_answers_rechecked_by_parser(generated):
    kinds = set()
    for e in (x for exs in generated["symbolic"].values() for x in exs):
        v = solve_symbolic(e.question)
        assert v.denominator == 1 and str(v.numerator) == e.answer, e.question
        kinds.add("x" in e.question)
    assert kinds == {True, False}  # both expressions and equations


@pytest.mark.parametrize("task", T.OOD_TASKS)
def test_ood_answers_rederived_from_knowledge_base(task, generated):
    kb = parse_kb(T.kb_facts())
    all_facts = set(T.kb_facts())
    answers = []
    for e in (x for exs in generated[task].values() for x in exs):
        assert solve_ood(e, kb) == e.answer, e.question
        assert e.meta["facts"] and set(e.meta["facts"]) <= all_facts
        answers.append(e.answer)
        if task == "mcq":
            assert e.answer_type == "choice" and len(e.choices) == 5
            assert e.choices[ord(e.answer) - 65] in e.question
        else:
            assert e.answer_type == "yesno"
    # balanced gold answers: chance is 20% / 50%
    for value in set(answers):
        share = answers.count(value) / len(answers)
        assert abs(share - (0.2 if task == "mcq" else 0.5)) < 0.08, (value, share)


def test_checker_catches_a_wrong_gold(generated):
    """The independent checkers can fail: a corrupted record is detected."""
    e = generated["arith"]["dev"][0]
    assert str(solve_word_problem(e.question)) != str(int(e.answer) + 1)
    m = generated["mcq"]["dev"][0]
    assert solve_ood(m, parse_kb(T.kb_facts())) != ("A" if m.answer != "A" else "B")


def test_records_round_trip_through_rows(generated):
    for e in generated["mcq"]["dev"][:5] + generated["arith"]["dev"][:5]:
        assert Example.from_row(e.to_row()) == e


def test_too_many_questions_is_a_config_error(tcfg):
    from compact.errors import ConfigError

    # the knowledge base holds fewer than 10k distinct yes/no questions
    with pytest.raises(ConfigError, match="tasks.yesno"):
        T.generate_task("yesno", 0, {"train": 20000, "dev": 1, "test": 1}, tcfg)
