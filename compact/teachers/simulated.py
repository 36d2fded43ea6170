"""Simulated teachers for the embedded world: four styles and reliabilities mirroring the paper's pool.

A world record carries its gold computation (``meta["steps"]``, see :mod:`compact.data.records`). A
simulated teacher walks those steps and writes them in its own style. At each step it may *slip*: with
probability ``step_error_rate * OP_WEIGHT[op]`` the step's value is corrupted (an arithmetic slip, or a
wrong operation). Later steps read their inputs through ``refs``, so a slip PROPAGATES and the final
answer is consistently wrong. A reflective teacher may *catch* a slip (``catch_rate``) and correct it
("Wait, ..."); an over-thinking teacher may add a wrong side remark (``aside_error_rate``) that does not
change the answer. Out-of-distribution records (``mcq``/``yesno``) are answered from ``meta["facts"]``
with accuracy ``ood_accuracy``.

Every rationale ends with ``The answer is X.``. Each generation carries ground-truth labels in its
``meta`` -- ``final_correct``, ``steps_correct`` (no uncorrected wrong statement), ``n_errors`` -- for
analysis only, never for training. The random stream is seeded per (teacher, seed, question id, sample)
so the output does not depend on order or batching, which makes generation resumable.

Default pool (teacher id -> paper model, style):

* ``sim-r1-distill``      DeepSeek-R1-Distill-Llama-70B   reflective, thinking words, checks its work
* ``sim-qwen-instruct``   Qwen2.5-72B-Instruct            concise equations, the most reliable
* ``sim-llama-instruct``  Llama-3.1-70B-Instruct          verbose, arithmetic slips
* ``sim-qwq``             QwQ-32B                         over-thinking, frequent wrong steps
"""
from __future__ import annotations

import dataclasses
import random
import time
from fractions import Fraction
from typing import Any

from ..data.answers import answer_line, format_number, is_correct
from ..data.records import Example
from ..errors import ConfigError, DataError
from ..world.tasks import apply_op
from .base import Generation, SamplingParams, derive_seed

STYLES = ("reflective", "concise", "verbose", "overthinking")
# harder operations slip more often (relative to step_error_rate)
OP_WEIGHT = {"+": 0.7, "-": 0.9, "*": 1.3, "/": 1.2}


@dataclasses.dataclass
class SimulatedProfile:
    """A simulated teacher's style and error rates (all probabilities)."""

    style: str = "concise"
    step_error_rate: float = 0.03   # P(slip) per step, times OP_WEIGHT[op]
    arithmetic_share: float = 0.7   # of slips: arithmetic (value off) vs wrong operation
    catch_rate: float = 0.0         # P(a slip is noticed and corrected in the text)
    aside_error_rate: float = 0.0   # P(a wrong side remark per question; answer unaffected)
    ood_accuracy: float = 0.85      # P(correct choice / yes-no) on OOD records

    def validate(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"style {self.style!r} not in {STYLES}")
        for name in ("step_error_rate", "arithmetic_share", "catch_rate", "aside_error_rate", "ood_accuracy"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")


# defaults chosen so that the four teachers disagree on roughly 30-50% of 2-4 step questions
DEFAULT_POOL: dict[str, tuple[str, SimulatedProfile]] = {
    "sim-r1-distill": ("DeepSeek-R1-Distill-Llama-70B", SimulatedProfile(
        style="reflective", step_error_rate=0.07, arithmetic_share=0.8, catch_rate=0.5, ood_accuracy=0.85)),
    "sim-qwen-instruct": ("Qwen2.5-72B-Instruct", SimulatedProfile(
        style="concise", step_error_rate=0.025, arithmetic_share=0.7, ood_accuracy=0.9)),
    "sim-llama-instruct": ("Llama-3.1-70B-Instruct", SimulatedProfile(
        style="verbose", step_error_rate=0.055, arithmetic_share=0.9, ood_accuracy=0.8)),
    "sim-qwq": ("QwQ-32B", SimulatedProfile(
        style="overthinking", step_error_rate=0.11, arithmetic_share=0.4, catch_rate=0.2,
        aside_error_rate=0.3, ood_accuracy=0.75)),
}


def _apply(op: str, a: Fraction, b: Fraction) -> Fraction:
    if op == "/" and b == 0:
        return a  # a corrupted divisor of 0: the teacher "keeps" a (a wrong step)
    return apply_op(op, a, b)


def _fmt(v: Fraction) -> str:
    """How a teacher writes a number: exact when it terminates within 4 places, else 2 decimals."""
    text = format_number(v)
    if "." in text and len(text.split(".")[1]) > 4:
        text = f"{float(v):.2f}"
    return text


@dataclasses.dataclass
class _TeacherStep:
    desc: str
    op: str
    args: list[Fraction]
    value: Fraction          # the value the text finally states for this step
    gold: Fraction
    slip: str = ""           # "" | "arith" | "op"
    wrong_value: Fraction | None = None   # the slipped value written before a correction
    wrong_op: str = ""


class SimulatedTeacher:
    """A rule-based teacher that renders (and sometimes corrupts) the world's gold computations."""

    backend = "simulated"
    REVISION = "sim-v4"  # the rendering code's revision: part of the store key and of every row's provenance

    def __init__(self, name: str, profile: SimulatedProfile | None = None, *, paper_name: str = "",
                 delay_s: float = 0.0):
        if profile is None:
            if name not in DEFAULT_POOL:
                raise ConfigError(f"unknown simulated teacher {name!r}: give a profile or use one of "
                                  f"{', '.join(DEFAULT_POOL)}")
            paper_name = paper_name or DEFAULT_POOL[name][0]
            profile = DEFAULT_POOL[name][1]
        try:
            profile.validate()
        except ValueError as exc:
            raise ConfigError(f"simulated teacher {name!r}: {exc}") from None
        self.name, self.profile, self.paper_name = name, profile, paper_name
        self.delay_s = delay_s  # emulates a slow backend (resume tests, demos)

    def provenance(self) -> dict[str, Any]:
        return {"teacher": self.name, "backend": self.backend, "model": f"simulated:{self.profile.style}",
                "paper_name": self.paper_name, "revision": self.REVISION, "profile": dataclasses.asdict(self.profile)}

    # ------------------------------------------------------------------------------------------------
    def generate(self, prompts: list[Example], params: SamplingParams) -> list[list[Generation]]:
        out = []
        for ex in prompts:
            if self.delay_s:
                time.sleep(self.delay_s)
            out.append([self.generate_one(ex, s, params.seed) for s in range(params.n)])
        return out

    def generate_one(self, ex: Example, sample: int, seed: int = 0) -> Generation:
        rng = random.Random(derive_seed("simulated", self.name, seed, ex.id, sample))
        steps = ex.meta.get("steps") if isinstance(ex.meta, dict) else None
        if steps:
            return self._arith(ex, steps, rng)
        facts = ex.meta.get("facts") if isinstance(ex.meta, dict) else None
        if ex.answer_type in ("choice", "yesno") and facts is not None:
            return self._ood(ex, list(facts), rng)
        raise DataError("a simulated teacher needs the gold computation ('steps') or, for choice/yes-no "
                        "questions, 'facts'", record=ex.id, field="meta")

    # ------------------------------------------------------------------------------------------------
    def _walk(self, ex: Example, raw_steps: list[dict], rng: random.Random) -> list[_TeacherStep]:
        """Recompute the steps in order, slipping at random; slipped values propagate through refs."""
        p = self.profile
        values: list[Fraction] = []
        golds: list[Fraction] = []
        out: list[_TeacherStep] = []
        for j, st in enumerate(raw_steps):
            try:
                op, args, refs = st["op"], list(st["args"]), list(st.get("refs") or [None] * len(st["args"]))
                gold_args = [Fraction(str(a)) for a in args]
                if len(gold_args) != 2 or op not in OP_WEIGHT:
                    raise ValueError
            except (KeyError, TypeError, ValueError):
                raise DataError("malformed step (need op in + - * /, two numeric args, refs)", record=ex.id,
                                field=f"meta.steps[{j}]") from None
            gold_in = [golds[r] if r is not None else a for a, r in zip(gold_args, refs)]
            cur_in = [values[r] if r is not None else a for a, r in zip(gold_args, refs)]
            gold = _apply(op, *gold_in)
            value = _apply(op, *cur_in)
            step = _TeacherStep(desc=str(st.get("desc") or f"step {j + 1}"), op=op, args=cur_in, value=value, gold=gold)
            if rng.random() < p.step_error_rate * OP_WEIGHT[op]:
                if rng.random() < p.arithmetic_share:
                    step.slip = "arith"
                    delta = rng.choice([1, 1, 2, 3, 10]) * rng.choice([-1, 1])
                    wrong = value + delta
                else:
                    step.slip = "op"
                    step.wrong_op = rng.choice([o for o in ("+", "-", "*") if o != op])
                    wrong = _apply(step.wrong_op, *cur_in)
                    if wrong == value:
                        wrong = value + 1
                if rng.random() < p.catch_rate:
                    step.wrong_value = wrong  # written, then corrected: the stated value stays right
                else:
                    step.value = wrong
            values.append(step.value)
            golds.append(gold)
            out.append(step)
        return out

    def _arith(self, ex: Example, raw_steps: list[dict], rng: random.Random) -> Generation:
        steps = self._walk(ex, raw_steps, rng)
        final = _fmt(steps[-1].value)
        n_errors = sum(1 for s in steps if s.slip and s.wrong_value is None)
        n_corrected = sum(1 for s in steps if s.wrong_value is not None)
        aside = rng.random() < self.profile.aside_error_rate
        distractors = list(ex.meta.get("distractors") or [])
        render = {"reflective": _reflective, "concise": _concise, "verbose": _verbose,
                  "overthinking": _overthinking}[self.profile.style]
        body = render(steps, rng, distractors=distractors, aside=aside)
        text = body.rstrip() + "\n" + answer_line(final)
        final_correct = is_correct(final, ex.answer, ex.answer_type)
        return Generation(text, {
            "final_correct": final_correct, "steps_correct": n_errors == 0 and not aside,
            "n_errors": n_errors + int(aside), "n_corrected": n_corrected, "n_steps": len(steps),
            "style": self.profile.style,
        })

    def _ood(self, ex: Example, facts: list[str], rng: random.Random) -> Generation:
        if ex.answer_type == "choice":
            n = len(ex.choices) or 5
            options = [chr(ord("A") + i) for i in range(n)]
        else:
            options = ["yes", "no"]
        correct = rng.random() < self.profile.ood_accuracy
        answer = ex.answer if correct else rng.choice([o for o in options if o != ex.answer] or [ex.answer])
        style = self.profile.style
        lines = []
        if style == "reflective":
            lines.append("First, let me recall what I know.")
            lines += [f"- {f}" for f in facts]
            lines.append(f"So, putting these together, the answer should be {answer}.")
            lines.append("Wait, let me double-check against the facts. " + ("Yes, that is consistent." if correct
                         else "I think that still holds."))
            lines.append(f"Therefore, the answer is {answer}.")
        elif style == "concise":
            lines.append(" ".join(facts) if facts else "By definition.")
        elif style == "verbose":
            lines.append("To answer this question, we need to consider the relevant facts.")
            lines += [f"We know that {f[0].lower() + f[1:]}" if f else "" for f in facts]
            lines.append(f"Based on this information, we can conclude that the correct answer is {answer}.")
        else:
            lines.append("Okay, let me think about this carefully. Hmm.")
            lines += [f"{f} Is that relevant? I think so." for f in facts]
            lines.append(f"But maybe I'm missing something... Let me reconsider. So it should be {answer}.")
        text = "\n".join(lines) + "\n" + answer_line(answer)
        return Generation(text, {"final_correct": bool(correct), "steps_correct": bool(correct),
                                 "n_errors": int(not correct), "n_corrected": 0, "n_steps": len(facts),
                                 "style": style})


# ---------------------------------------------------------------------------------------------------------
# styles: each writes the steps' statements; the caller appends the answer line

def _the(desc: str) -> str:
    """``desc`` with a leading article (world descriptions may or may not start with one)."""
    return desc if desc.lower().startswith(("the ", "a ", "an ")) else f"the {desc}"


def _words(op: str, a: str, b: str) -> str:
    return {"+": f"add {a} and {b}", "-": f"subtract {b} from {a}", "*": f"multiply {a} by {b}",
            "/": f"divide {a} by {b}"}[op]


def _eq(s: _TeacherStep, wrong: bool = False) -> str:
    a, b = (_fmt(x) for x in s.args)
    if wrong:
        if s.slip == "op":
            return f"{a} {s.wrong_op} {b} = {_fmt(s.wrong_value)}"
        return f"{a} {s.op} {b} = {_fmt(s.wrong_value)}"
    if s.slip == "op" and s.wrong_value is None:
        return f"{a} {s.wrong_op} {b} = {_fmt(s.value)}"
    return f"{a} {s.op} {b} = {_fmt(s.value)}"


def _check(s: _TeacherStep) -> str:
    """A reflective check of a step by its inverse operation."""
    b = s.args[1]
    v = s.value
    if s.op == "+":
        return f"{_fmt(v)} - {_fmt(b)} = {_fmt(v - b)}"
    if s.op == "-":
        return f"{_fmt(v)} + {_fmt(b)} = {_fmt(v + b)}"
    if s.op == "*" and b != 0:
        return f"{_fmt(v)} / {_fmt(b)} = {_fmt(v / b)}"
    if s.op == "/":
        return f"{_fmt(v)} * {_fmt(b)} = {_fmt(v * b)}"
    return f"{_fmt(v)} looks right"


# Every style writes each step as the bare equation line ``a op b = c.``: the form in which the base student
# learned its facts and its one-step questions (see compact.world.student.single_step_questions), as real
# teachers share the equations of a solution and differ in what they say around them. The reflective teacher
# checks steps by the inverse operation and catches slips; the verbose one says in words, after each equation,
# what it computed; the over-thinking one hesitates, re-verifies and adds asides; the concise one writes the
# equations only. A small student then learns the shared skeleton (chaining the steps) and still meets four
# distinct styles whose lengths and error profiles differ (see DEFAULT_POOL). Measured on the default world:
# a single-teacher student trained on ``Step j: a op b = c (what).`` lines stayed at 7% after 300 steps of
# 16 questions; on bare equation lines it reached 23% at 200 steps and 67% at 600.

def _line(s: _TeacherStep, *, wrong: bool = False) -> str:
    return f"{_eq(s, wrong=wrong)}."


def _reflective(steps: list[_TeacherStep], rng: random.Random, *, distractors: list[str], aside: bool) -> str:
    out = [rng.choice(["Let me work through this step by step.", "Okay, let's think about this carefully."])]
    for s in steps:
        if s.wrong_value is not None:
            out.append(_line(s, wrong=True))
            out.append("Wait, that's not right. Let me recompute.")
        out.append(_line(s))
        if rng.random() < 0.35:
            out.append(f"Let me check: {_check(s)}. Yes, that works.")
    if distractors:
        out.append(f"Note: \"{distractors[0]}\" doesn't matter here.")
    out.append(f"Therefore, {_the(steps[-1].desc)} is {_fmt(steps[-1].value)}.")
    return "\n".join(out)


def _concise(steps: list[_TeacherStep], rng: random.Random, *, distractors: list[str], aside: bool) -> str:
    return "\n".join(_line(s) for s in steps)


def _verbose(steps: list[_TeacherStep], rng: random.Random, *, distractors: list[str], aside: bool) -> str:
    out = [rng.choice(["Let's solve this problem one step at a time.", "Let's break this problem into parts."])]
    if distractors:
        out.append(f"Note that \"{distractors[0]}\" is not needed to find the answer.")
    for s in steps:
        op = s.wrong_op if s.slip == "op" and s.wrong_value is None else s.op
        a, b = (_fmt(x) for x in s.args)
        out.append(_line(s))
        out.append(f"Here we {_words(op, a, b)} to get {_the(s.desc)}.")
    out.append(f"In summary, {_the(steps[-1].desc)} is {_fmt(steps[-1].value)}.")
    return "\n".join(out)


def _overthinking(steps: list[_TeacherStep], rng: random.Random, *, distractors: list[str], aside: bool) -> str:
    out = ["Okay, so I need to figure this out. Hmm."]
    for j, s in enumerate(steps):
        out.append(_line(s, wrong=s.wrong_value is not None))
        if s.wrong_value is not None:
            out.append("Hmm, wait. That's wrong.")
            out.append(_line(s))
        elif rng.random() < 0.5:
            out.append(f"Wait, is that right? {_eq(s)}... yes.")
        if aside and j == 0:
            a, b = s.args
            out.append(f"Side thought: {_fmt(a)} + {_fmt(b)} = {_fmt(a + b + 1)}, but I don't need that.")
    if distractors:
        out.append(f"But what about \"{distractors[0]}\"? No, that changes nothing.")
    out.append(f"So {_the(steps[-1].desc)} should be {_fmt(steps[-1].value)}. I think that's it.")
    return "\n".join(out)


def default_pool(**kwargs) -> list[SimulatedTeacher]:
    """The four default simulated teachers, in the paper's order."""
    return [SimulatedTeacher(name, **kwargs) for name in DEFAULT_POOL]


__all__ = ["SimulatedTeacher", "SimulatedProfile", "DEFAULT_POOL", "STYLES", "OP_WEIGHT", "default_pool"]
