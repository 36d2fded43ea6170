"""The five procedurally generated world tasks, deterministic from a seed.

In distribution (distillation targets; ``meta["steps"]`` holds the gold computation, see
:mod:`compact.data.records`):

- ``arith`` (GSM8K-like): a short story of 2-4 operations on people's counts of things, question last.
- ``variation`` (SVAMP-like): the same skills (2-3 steps), question FIRST, names instead of pronouns and
  1-2 irrelevant facts (``meta["distractors"]``) mixed into the story.
- ``symbolic`` (MATH-like): evaluate an integer expression, or solve a linear equation for x.

Out of distribution (knowledge that must survive distillation; ``meta["facts"]`` lists the facts the
answer rests on, all from the fixed knowledge base :data:`KB`):

- ``mcq`` (CommonsenseQA-like): 5-way multiple choice, answer a letter A-E.
- ``yesno`` (StrategyQA-like): a yes/no question that composes two facts.

Every value in a solution is an integer in ``[1, max_value]``; division is exact. A task's splits are
drawn from one stream and de-duplicated by question text, so train, dev and test never share a question.
"""
from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..data.records import Example
from ..errors import ConfigError

ID_TASKS: tuple[str, ...] = ("arith", "variation", "symbolic")
OOD_TASKS: tuple[str, ...] = ("mcq", "yesno")
TASKS: tuple[str, ...] = ID_TASKS + OOD_TASKS
LETTERS = "ABCDE"

# ----------------------------------------------------------------------------------------------------
# Word-problem world
# ----------------------------------------------------------------------------------------------------
# (name, subject pronoun)
PEOPLE: tuple[tuple[str, str], ...] = (
    ("Tom", "he"), ("Anna", "she"), ("Ben", "he"), ("Lucy", "she"), ("Sam", "he"), ("Mia", "she"),
    ("Jack", "he"), ("Emma", "she"), ("Leo", "he"), ("Zoe", "she"), ("Max", "he"), ("Lily", "she"),
    ("Noah", "he"), ("Ella", "she"), ("Omar", "he"), ("Rosa", "she"),
)
ITEMS: tuple[str, ...] = (
    "apples", "pencils", "marbles", "stickers", "cookies", "books", "shells", "cards", "coins", "flowers",
    "stamps", "toys", "eggs", "balloons",
)
GAIN_VERBS = ("buys {b} more {item}", "finds {b} more {item}", "gets {b} more {item} from a friend")
LOSS_VERBS = ("gives {b} {item} to a friend", "loses {b} {item}", "sells {b} {item}")
DISTRACTORS = ("{x} is {n} years old.", "{x} also has {n} {other}.", "There are {n} {other} on the table.")


@dataclass
class _Step:
    op: str
    args: list[int]
    refs: list[int | None]
    value: int
    desc: str

    def as_dict(self) -> dict[str, Any]:
        return {"op": self.op, "args": list(self.args), "refs": list(self.refs), "value": self.value,
                "desc": self.desc}


def apply_op(op: str, a, b):
    """``a op b`` for the world's four operations. Integers divide exactly (a world question never divides
    unevenly: asserted); Fractions (the simulated teachers' running values) divide as fractions."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op != "/":
        raise ValueError(op)
    if isinstance(a, int) and isinstance(b, int):
        assert b != 0 and a % b == 0, "division must be exact"
        return a // b
    return a / b


@dataclass
class Story:
    """A word problem before rendering: sentences (each tagged with its actor), question and steps."""
    sentences: list[tuple[str, str]]  # (actor name, sentence with {actor} placeholder for the subject)
    question: str
    steps: list[_Step]
    answer: int


def make_story(rng: random.Random, n_steps: int, max_value: int) -> Story | None:
    """One word problem with exactly ``n_steps`` operations, or None when the draw cannot fit."""
    p1, p2 = rng.sample(PEOPLE, 2)
    item = rng.choice(ITEMS)
    sents: list[tuple[str, str]] = []
    steps: list[_Step] = []
    # each person's current count: (value, index of the step that produced it or None if given)
    have: dict[str, tuple[int, int | None]] = {}
    subj = p1[0]

    def add_step(op: str, a: tuple[int, int | None], b: tuple[int, int | None], desc: str) -> int:
        value = apply_op(op, a[0], b[0])
        steps.append(_Step(op, [a[0], b[0]], [a[1], b[1]], value, desc))
        return value

    if n_steps >= 2 and rng.random() < 0.35:
        boxes, per = rng.randint(2, 9), rng.randint(2, 12)
        if boxes * per > max_value:
            return None
        sents.append((subj, f"{{actor}} has {boxes} boxes of {item}."))
        sents.append((subj, f"Each box holds {per} {item}."))
        v = add_step("*", (boxes, None), (per, None), f"{item} in {subj}'s boxes")
        have[subj] = (v, len(steps) - 1)
    else:
        a = rng.randint(5, min(50, max_value))
        sents.append((subj, f"{{actor}} has {a} {item}."))
        have[subj] = (a, None)
    switched = False
    for _ in range(50 * n_steps):  # a draw that keeps failing is dropped, not retried forever
        if len(steps) >= n_steps:
            break
        last = len(steps) == n_steps - 1
        cur, _ = have[subj]
        choices = ["+", "-"] + (["*"] if not switched else [])
        if last:
            choices += ["share", "bags", "together"]
        op = rng.choice(choices)
        if op == "+":
            b = rng.randint(min(2, max_value - cur), min(30, max_value - cur)) if cur < max_value else None
            if b is None:
                continue
            sents.append((subj, "{actor} " + rng.choice(GAIN_VERBS).format(b=b, item=item) + "."))
            v = add_step("+", have[subj], (b, None), f"{item} {subj} has after getting more")
            have[subj] = (v, len(steps) - 1)
        elif op == "-":
            if cur < 2:
                continue
            b = rng.randint(min(2, cur - 1), min(30, cur - 1))
            sents.append((subj, "{actor} " + rng.choice(LOSS_VERBS).format(b=b, item=item) + "."))
            v = add_step("-", have[subj], (b, None), f"{item} {subj} has left")
            have[subj] = (v, len(steps) - 1)
        elif op == "*":
            if cur * 2 > max_value:
                continue
            other = p2[0]
            b = rng.randint(2, min(5, max_value // cur))
            sents.append((other, f"{{actor}} has {b} times as many {item} as {subj}."))
            v = add_step("*", have[subj], (b, None), f"{item} {other} has")
            have[other] = (v, len(steps) - 1)
            subj, switched = other, True
        elif op in ("share", "bags"):
            divisors = [d for d in range(2, 10) if cur % d == 0 and cur // d >= 1 and d != cur]
            if not divisors:
                continue
            d = rng.choice(divisors)
            if op == "share":
                sents.append((subj, f"{{actor}} shares the {item} equally among {d} friends."))
                add_step("/", have[subj], (d, None), f"{item} each friend gets")
                question = f"How many {item} does each friend get?"
            else:
                sents.append((subj, f"{{actor}} puts the {item} into bags of {d}."))
                add_step("/", have[subj], (d, None), f"bags {subj} fills")
                question = f"How many bags does {subj} fill?"
            return Story(sents, question, steps, steps[-1].value)
        else:  # together: the other person's count, given if it was never computed
            others = [p for p in (p1[0], p2[0]) if p != subj]
            other = others[0]
            if other not in have:
                c = rng.randint(2, min(40, max_value))
                sents.append((other, f"{{actor}} has {c} {item}."))
                have[other] = (c, None)
            if have[subj][0] + have[other][0] > max_value:
                continue
            first, second = (p1[0], p2[0])
            add_step("+", have[first], have[second], f"{item} {first} and {second} have together")
            return Story(sents, f"How many {item} do {first} and {second} have together?", steps,
                         steps[-1].value)
    if len(steps) < n_steps:
        return None
    if subj != p1[0]:
        question = f"How many {item} does {subj} have?"
    else:
        question = f"How many {item} does {subj} have now?"
    return Story(sents, question, steps, steps[-1].value)


def render_story(story: Story, *, pronouns: bool) -> list[str]:
    """Sentences with the actor named on first mention (or always, without pronouns)."""
    pron = dict(PEOPLE)
    out, prev = [], None
    for actor, text in story.sentences:
        if "{actor}" in text:
            name = pron[actor].capitalize() if (pronouns and actor == prev) else actor
            text = text.replace("{actor}", name)
        out.append(text)
        prev = actor
    return out


def _gen_arith(rng: random.Random, cfg) -> tuple[str, str, dict] | None:
    n = rng.randint(cfg.min_steps, cfg.max_steps)
    story = make_story(rng, n, cfg.max_value)
    if story is None:
        return None
    q = " ".join(render_story(story, pronouns=True) + [story.question])
    return q, str(story.answer), {"task": "arith", "steps": [s.as_dict() for s in story.steps]}


def _gen_variation(rng: random.Random, cfg) -> tuple[str, str, dict] | None:
    n = rng.randint(cfg.min_steps, min(cfg.max_steps, 3))
    story = make_story(rng, n, cfg.max_value)
    if story is None:
        return None
    sents = render_story(story, pronouns=False)
    used_items = {w for s in sents for w in s.rstrip(".").split()}
    names = sorted({a for a, _ in story.sentences})
    distractors = []
    for _ in range(rng.randint(1, 2)):
        other = rng.choice([i for i in ITEMS if i not in used_items])
        text = rng.choice(DISTRACTORS).format(x=rng.choice(names), n=rng.randint(2, 50), other=other)
        if text not in distractors:
            distractors.append(text)
    for d in distractors:  # never before the first sentence: the story opens with its subject
        sents.insert(rng.randint(1, len(sents)), d)
    q = " ".join([story.question] + sents)
    meta = {"task": "variation", "steps": [s.as_dict() for s in story.steps], "distractors": distractors}
    return q, str(story.answer), meta


# ----------------------------------------------------------------------------------------------------
# Symbolic (MATH-like)
# ----------------------------------------------------------------------------------------------------
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}


def _rand_expr(rng: random.Random, n_ops: int, max_value: int, max_leaf: int):
    """A random expression tree ``(op, left, right)`` / ``int`` whose every value is in [1, max_value]."""
    if n_ops == 0:
        return rng.randint(1, max_leaf)
    n_left = rng.randint(0, n_ops - 1)
    left = _rand_expr(rng, n_left, max_value, max_leaf)
    right = _rand_expr(rng, n_ops - 1 - n_left, max_value, max_leaf)
    if left is None or right is None:
        return None
    lv, rv = _value(left), _value(right)
    ops = [o for o in "+-*/" if _ok(o, lv, rv, max_value)]
    if not ops:
        return None
    return (rng.choice(ops), left, right)


def _ok(op: str, a: int, b: int, max_value: int) -> bool:
    if op == "/":
        return b > 1 and a % b == 0 and a // b >= 1
    if op == "*" and (a == 1 or b == 1):
        return False
    v = apply_op(op, a, b)
    return 1 <= v <= max_value


def _value(node) -> int:
    if isinstance(node, int):
        return node
    op, left, right = node
    return apply_op(op, _value(left), _value(right))


def _render(node, parent_prec: int = 0, right: bool = False) -> str:
    if isinstance(node, int):
        return str(node)
    op, left, r = node
    prec = _PREC[op]
    text = f"{_render(left, prec, False)} {op} {_render(r, prec, True)}"
    # parentheses keep the left-to-right evaluation order the gold steps follow
    if prec < parent_prec or (right and prec <= parent_prec):
        text = f"({text})"
    return text


def _expr_steps(node, steps: list[_Step]) -> tuple[int, int | None]:
    """Post-order steps: returns (value, index of producing step or None for a literal)."""
    if isinstance(node, int):
        return node, None
    op, left, right = node
    a = _expr_steps(left, steps)
    b = _expr_steps(right, steps)
    v = apply_op(op, a[0], b[0])
    steps.append(_Step(op, [a[0], b[0]], [a[1], b[1]], v, f"the value of {_render(node)}"))
    return v, len(steps) - 1


def _gen_symbolic(rng: random.Random, cfg) -> tuple[str, str, dict] | None:
    if rng.random() < 0.5:
        n_ops = rng.randint(cfg.min_steps, min(cfg.max_steps, 3))
        tree = _rand_expr(rng, n_ops, cfg.max_value, 20)
        if tree is None:
            return None
        steps: list[_Step] = []
        value, _ = _expr_steps(tree, steps)
        q = rng.choice(("What is {e}?", "Evaluate {e}.", "Compute {e}.")).format(e=_render(tree))
        return q, str(value), {"task": "symbolic", "steps": [s.as_dict() for s in steps]}
    x, a, b = rng.randint(1, 20), rng.randint(2, 9), rng.randint(1, 20)
    form = rng.randrange(4)
    if form == 0:  # a x + b = c
        ax = a * x
        c = ax + b
        eq = f"{a}x + {b} = {c}"
        steps = [_Step("-", [c, b], [None, None], ax, f"the value of {a}x"),
                 _Step("/", [ax, a], [0, None], x, "x")]
    elif form == 1:  # a x - b = c
        ax = a * x
        c = ax - b
        if c < 1:
            return None
        eq = f"{a}x - {b} = {c}"
        steps = [_Step("+", [c, b], [None, None], ax, f"the value of {a}x"),
                 _Step("/", [ax, a], [0, None], x, "x")]
    elif form == 2:  # x / a + b = c   (x a multiple of a)
        x = a * rng.randint(1, max(1, 20 // a))
        q = x // a
        c = q + b
        eq = f"x / {a} + {b} = {c}"
        steps = [_Step("-", [c, b], [None, None], q, f"the value of x / {a}"),
                 _Step("*", [q, a], [0, None], x, "x")]
    else:  # a (x + b) = c
        s = x + b
        c = a * s
        eq = f"{a}(x + {b}) = {c}"
        steps = [_Step("/", [c, a], [None, None], s, f"the value of x + {b}"),
                 _Step("-", [s, b], [0, None], x, "x")]
    if max(max(st.args) for st in steps) > cfg.max_value or max(st.value for st in steps) > cfg.max_value:
        return None
    q = rng.choice(("Solve for x: {e}.", "Find x if {e}.", "What is x if {e}?")).format(e=eq)
    return q, str(x), {"task": "symbolic", "steps": [s.as_dict() for s in steps]}


# ----------------------------------------------------------------------------------------------------
# Knowledge base (OOD tasks)
# ----------------------------------------------------------------------------------------------------
# animal -> (kind, habitat, food)
ANIMALS: dict[str, tuple[str, str, str]] = {
    "robin": ("bird", "garden", "worms"), "sparrow": ("bird", "city", "seeds"),
    "eagle": ("bird", "mountains", "fish"), "owl": ("bird", "forest", "mice"),
    "parrot": ("bird", "jungle", "fruit"), "duck": ("bird", "pond", "plants"),
    "crow": ("bird", "city", "seeds"), "hawk": ("bird", "mountains", "mice"),
    "pigeon": ("bird", "city", "seeds"), "heron": ("bird", "river", "fish"),
    "salmon": ("fish", "river", "insects"), "trout": ("fish", "river", "insects"),
    "shark": ("fish", "sea", "fish"), "tuna": ("fish", "sea", "fish"),
    "goldfish": ("fish", "pond", "plants"), "cod": ("fish", "sea", "worms"),
    "carp": ("fish", "pond", "plants"), "eel": ("fish", "river", "worms"),
    "cow": ("mammal", "farm", "grass"), "horse": ("mammal", "farm", "grass"),
    "sheep": ("mammal", "farm", "grass"), "wolf": ("mammal", "forest", "meat"),
    "fox": ("mammal", "forest", "mice"), "bear": ("mammal", "forest", "fruit"),
    "lion": ("mammal", "grassland", "meat"), "zebra": ("mammal", "grassland", "grass"),
    "camel": ("mammal", "desert", "plants"), "whale": ("mammal", "sea", "fish"),
    "rabbit": ("mammal", "garden", "plants"), "monkey": ("mammal", "jungle", "fruit"),
    "goat": ("mammal", "mountains", "grass"), "otter": ("mammal", "river", "fish"),
    "snake": ("reptile", "desert", "mice"), "lizard": ("reptile", "desert", "insects"),
    "turtle": ("reptile", "pond", "plants"), "crocodile": ("reptile", "river", "meat"),
    "gecko": ("reptile", "jungle", "insects"), "tortoise": ("reptile", "grassland", "plants"),
    "iguana": ("reptile", "jungle", "fruit"),
    "bee": ("insect", "garden", "nectar"), "ant": ("insect", "forest", "seeds"),
    "butterfly": ("insect", "garden", "nectar"), "beetle": ("insect", "forest", "plants"),
    "grasshopper": ("insect", "grassland", "grass"), "moth": ("insect", "city", "nectar"),
    "frog": ("amphibian", "pond", "insects"), "toad": ("amphibian", "garden", "insects"),
    "newt": ("amphibian", "pond", "worms"), "salamander": ("amphibian", "forest", "worms"),
}
# kind -> what every member has or does: (third person, base form after "does")
KIND_PROPS: dict[str, tuple[tuple[str, str], ...]] = {
    "bird": (("has feathers", "have feathers"), ("has a beak", "have a beak"), ("lays eggs", "lay eggs")),
    "fish": (("has fins", "have fins"), ("has gills", "have gills"), ("lays eggs", "lay eggs")),
    "mammal": (("has fur", "have fur"), ("drinks milk as a baby", "drink milk as a baby")),
    "reptile": (("has scales", "have scales"), ("lays eggs", "lay eggs")),
    "insect": (("has six legs", "have six legs"), ("has antennae", "have antennae"), ("lays eggs", "lay eggs")),
    "amphibian": (("has moist skin", "have moist skin"), ("lays eggs", "lay eggs")),
}
KINDS = tuple(KIND_PROPS)
HABITATS = tuple(sorted({h for _, h, _ in ANIMALS.values()}))
FOODS = tuple(sorted({f for _, _, f in ANIMALS.values()}))
PROPS = tuple(sorted({p for ps in KIND_PROPS.values() for p in ps}))


def article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def fact_kind(animal: str) -> str:
    return f"{article(animal).capitalize()} is {article(ANIMALS[animal][0])}."


def fact_habitat(animal: str) -> str:
    return f"{article(animal).capitalize()} lives in the {ANIMALS[animal][1]}."


def fact_food(animal: str) -> str:
    return f"{article(animal).capitalize()} eats {ANIMALS[animal][2]}."


def fact_prop(kind: str, prop3: str) -> str:
    return f"{article(kind).capitalize()} {prop3}."


def kb_facts() -> list[str]:
    """Every fact of the knowledge base, one sentence each, in a fixed order."""
    out = []
    for a in ANIMALS:
        out += [fact_kind(a), fact_habitat(a), fact_food(a)]
    for k, props in KIND_PROPS.items():
        out += [fact_prop(k, p3) for p3, _ in props]
    return out


def kb_as_dict() -> dict[str, Any]:
    return {"animals": {a: {"kind": k, "habitat": h, "food": f} for a, (k, h, f) in ANIMALS.items()},
            "kind_props": {k: [p3 for p3, _ in ps] for k, ps in KIND_PROPS.items()}}


def _kind_has(kind: str, prop3: str) -> bool:
    return any(p3 == prop3 for p3, _ in KIND_PROPS[kind])


def _choices_question(rng: random.Random, stem: str, correct: str, pool: list[str]) -> tuple[str, str, tuple]:
    wrong = rng.sample([p for p in pool if p != correct], 4)
    choices = wrong + [correct]
    rng.shuffle(choices)
    letter = LETTERS[choices.index(correct)]
    text = stem + "\n" + "\n".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(choices))
    return text, letter, tuple(choices)


def _gen_mcq(rng: random.Random, cfg) -> tuple[str, str, dict, tuple] | None:
    animals = list(ANIMALS)
    kind = rng.randrange(6)
    if kind < 3:  # one animal, which attribute
        a = rng.choice(animals)
        k, h, f = ANIMALS[a]
        if kind == 0:
            pool = [x for x in KINDS if x != k]
            text, letter, ch = _choices_question(rng, f"What kind of animal is {article(a)}?", k, pool + [k])
            facts = [fact_kind(a)]
        elif kind == 1:
            text, letter, ch = _choices_question(rng, f"Where does {article(a)} live?", h, list(HABITATS))
            facts = [fact_habitat(a)]
        else:
            text, letter, ch = _choices_question(rng, f"What does {article(a)} eat?", f, list(FOODS))
            facts = [fact_food(a)]
    else:  # one attribute value, which animal
        if kind == 3:
            target = rng.choice(KINDS)
            stem, field, pick = f"Which of these is {article(target)}?", 0, target
        elif kind == 4:
            target = rng.choice(HABITATS)
            stem, field, pick = f"Which of these lives in the {target}?", 1, target
        else:
            target3, _ = rng.choice(PROPS)
            stem, field, pick = f"Which of these {target3}?", 3, target3
        if field == 3:
            yes = [a for a in animals if _kind_has(ANIMALS[a][0], pick)]
            no = [a for a in animals if not _kind_has(ANIMALS[a][0], pick)]
        else:
            yes = [a for a in animals if ANIMALS[a][field] == pick]
            no = [a for a in animals if ANIMALS[a][field] != pick]
        if not yes or len(no) < 4:
            return None
        correct = rng.choice(yes)
        wrong = rng.sample(no, 4)
        choices = wrong + [correct]
        rng.shuffle(choices)
        letter = LETTERS[choices.index(correct)]
        text = stem + "\n" + "\n".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(choices))
        ch = tuple(choices)
        if field == 0:
            facts = [fact_kind(correct)]
        elif field == 1:
            facts = [fact_habitat(correct)]
        else:
            facts = [fact_kind(correct), fact_prop(ANIMALS[correct][0], pick)]
    meta = {"task": "mcq", "facts": facts}
    if getattr(cfg, "knowledge_probes", False):
        stem = text.split("\n", 1)[0]
        meta["probe"] = {"queries": [{"query": stem, "options": list(ch)}], "rule": "choice",
                         "gold": LETTERS.index(letter)}
    return text, letter, meta, ch


# ----------------------------------------------------------------------------------------------------
# Knowledge probes: how a world's OOD questions are scored by log-likelihood
# ----------------------------------------------------------------------------------------------------
# The recall question for each attribute of an animal; the base corpus teaches exactly these, answered
# "The answer is <value>." (see compact.world.student.recall_docs)
RECALL_QUERIES = {"kind": "What kind of animal is {a}?", "habitat": "Where does {a} live?",
                  "food": "What does {a} eat?"}
FIELDS = ("kind", "habitat", "food")


def field_values(field: str) -> list[str]:
    return list({"kind": KINDS, "habitat": HABITATS, "food": FOODS}[field])


def recall_probe(animal: str, field: str) -> dict[str, Any]:
    """The query and the candidate values whose log-likelihood decides what the student believes."""
    return {"query": RECALL_QUERIES[field].format(a=article(animal)), "options": field_values(field),
            "animal": animal, "field": field}


def _gen_yesno_probed(rng: random.Random, cfg, want_yes: bool) -> tuple[str, str, dict] | None:
    """A yes/no question over one fact (a claim) or two facts (a comparison), with its probes.

    Scored by log-likelihood: the student's belief about each fact is the candidate value it finds most
    likely after the fact's recall query; the verdict follows from the beliefs (``rule``).
    """
    animals = list(ANIMALS)
    field_i = rng.randrange(3)
    field = FIELDS[field_i]
    a = rng.choice(animals)
    value = ANIMALS[a][field_i]
    if rng.random() < 0.5:  # one fact: a claim about the animal
        claim = value if want_yes else rng.choice([v for v in field_values(field) if v != value])
        q = {"kind": f"Is {article(a)} {article(claim)}?", "habitat": f"Does {article(a)} live in the {claim}?",
             "food": f"Does {article(a)} eat {claim}?"}[field]
        facts = [{"kind": fact_kind, "habitat": fact_habitat, "food": fact_food}[field](a)]
        probe = {"queries": [recall_probe(a, field)], "rule": "claim", "claim": claim}
    else:  # two facts: do two animals share the attribute
        pool = [b for b in animals if b != a and (ANIMALS[b][field_i] == value) == want_yes]
        if not pool:
            return None
        b = rng.choice(pool)
        q = {"kind": f"Is {article(a)} the same kind of animal as {article(b)}?",
             "habitat": f"Does {article(a)} live in the same place as {article(b)}?",
             "food": f"Does {article(a)} eat the same food as {article(b)}?"}[field]
        fact = {"kind": fact_kind, "habitat": fact_habitat, "food": fact_food}[field]
        facts = [fact(a), fact(b)]
        probe = {"queries": [recall_probe(a, field), recall_probe(b, field)], "rule": "same"}
    return q, "yes" if want_yes else "no", {"task": "yesno", "facts": facts, "probe": probe}


def probe_verdict(probe: dict[str, Any], beliefs: list[int]) -> int:
    """The answer the student's beliefs imply: an option index (``choice``) or 1 = yes / 0 = no."""
    if probe["rule"] == "choice":
        return beliefs[0]
    if probe["rule"] == "claim":
        q = probe["queries"][0]
        return int(q["options"][beliefs[0]] == probe["claim"])
    if probe["rule"] == "same":
        (qa, qb), (ia, ib) = probe["queries"], beliefs
        return int(qa["options"][ia] == qb["options"][ib])
    raise ValueError(f"unknown probe rule {probe['rule']!r}")


def _gen_yesno(rng: random.Random, cfg, want_yes: bool | None = None) -> tuple[str, str, dict] | None:
    if want_yes is None:
        want_yes = rng.random() < 0.5
    if getattr(cfg, "knowledge_probes", False):
        return _gen_yesno_probed(rng, cfg, want_yes)
    animals = list(ANIMALS)
    kind = rng.randrange(4)
    if kind == 0:  # animal -> kind -> property
        a = rng.choice(animals)
        k = ANIMALS[a][0]
        props = [p for p in PROPS if _kind_has(k, p[0]) == want_yes]
        p3, base = rng.choice(props)
        owner = k if want_yes else rng.choice([x for x in KINDS if _kind_has(x, p3)])
        q = f"Does {article(a)} {base}?"
        facts = [fact_kind(a), fact_prop(owner, p3)]
        return q, "yes" if want_yes else "no", {"task": "yesno", "facts": facts}
    field = kind - 1  # 0 kind, 1 habitat, 2 food
    a = rng.choice(animals)
    same = [b for b in animals if b != a and ANIMALS[b][field] == ANIMALS[a][field]]
    diff = [b for b in animals if ANIMALS[b][field] != ANIMALS[a][field]]
    pool = same if want_yes else diff
    if not pool:
        return None
    b = rng.choice(pool)
    if field == 0:
        q = f"Is {article(a)} the same kind of animal as {article(b)}?"
        facts = [fact_kind(a), fact_kind(b)]
    elif field == 1:
        q = f"Does {article(a)} live in the same place as {article(b)}?"
        facts = [fact_habitat(a), fact_habitat(b)]
    else:
        q = f"Does {article(a)} eat the same food as {article(b)}?"
        facts = [fact_food(a), fact_food(b)]
    return q, "yes" if want_yes else "no", {"task": "yesno", "facts": facts}


_GENERATORS: dict[str, Callable] = {
    "arith": _gen_arith, "variation": _gen_variation, "symbolic": _gen_symbolic,
    "mcq": _gen_mcq, "yesno": _gen_yesno,
}
ANSWER_TYPE = {"arith": "number", "variation": "number", "symbolic": "number", "mcq": "choice",
               "yesno": "yesno"}


def task_seed(seed: int, task: str, stream: str = "tasks") -> int:
    """A per-task, per-purpose integer seed (stable across Python runs: no ``hash()``)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{stream}:{task}".encode()).digest()[:8], "big")


def generate_task(task: str, seed: int, sizes: dict[str, int], cfg) -> dict[str, list[Example]]:
    """All splits of ``task``: unique questions, drawn in order, then cut into train/dev/test."""
    if task not in _GENERATORS:
        raise ConfigError(f"unknown task '{task}' (known: {', '.join(TASKS)})")
    rng = random.Random(task_seed(seed, task))
    total = sum(sizes.values())
    seen: set[str] = set()
    rows: list[tuple] = []
    stale = 0  # draws since the last new question: the question space is exhausted when it grows large
    while len(rows) < total:
        if stale > 20000:
            raise ConfigError(f"config key 'tasks.{task}': cannot draw {total} distinct questions "
                              f"(got {len(rows)}); lower the split sizes")
        if task == "yesno" and getattr(cfg, "knowledge_probes", False):
            out = _gen_yesno(rng, cfg, want_yes=len(rows) % 2 == 0)  # exactly balanced splits
        else:
            out = _GENERATORS[task](rng, cfg)
        if out is None or out[0] in seen:
            stale += 1
            continue
        stale = 0
        seen.add(out[0])
        rows.append(out)
    result: dict[str, list[Example]] = {}
    start = 0
    for split in ("train", "dev", "test"):
        n = sizes[split]
        result[split] = [
            Example(id=f"{task}-{split}-{i:05d}", question=r[0], answer=r[1], answer_type=ANSWER_TYPE[task],
                    source=task, split=split, choices=r[3] if len(r) > 3 else (), meta=r[2])
            for i, r in enumerate(rows[start:start + n])
        ]
        start += n
    return result


__all__ = [
    "ANIMALS",
    "FOODS",
    "HABITATS",
    "ID_TASKS",
    "ITEMS",
    "KINDS",
    "KIND_PROPS",
    "OOD_TASKS",
    "PEOPLE",
    "RECALL_QUERIES",
    "TASKS",
    "article",
    "generate_task",
    "kb_as_dict",
    "kb_facts",
    "make_story",
    "probe_verdict",
    "recall_probe",
    "render_story",
    "task_seed",
]
