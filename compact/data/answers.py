r"""Answer extraction and checking, shared by teachers, training and evaluation.

Every rationale in this project ends with one line, ``The answer is X.``, where X is canonical for its
answer type: a number (``57``, ``-3``, ``0.75``), a LaTeX expression (``\frac{1}{2}``), a choice letter
(``A``..``E``) or ``yes``/``no``.

* :func:`extract_strict` reads X only from that final line (for LaTeX answers also the last
  ``\boxed{...}``, nested braces included), so a rationale that never commits to an answer yields ``None``.
* :func:`extract_lenient` falls back to the last number / choice letter / yes-no / boxed expression
  anywhere in the text (the usual "last number" rule for GSM8K-style evaluation).
* :func:`normalize_number` maps ``$1,234.50`` -> ``1234.5``, ``50%`` -> ``50``, ``3/4`` -> ``0.75``,
  ``-7.0`` -> ``-7`` with exact rational arithmetic (:class:`fractions.Fraction`).
* :func:`is_correct` compares numbers by value (relative tolerance 1e-6), LaTeX by ``math-verify`` when it
  is installed, else by ``sympy``'s LaTeX parser, else by normalised strings. Model output is parsed,
  never ``eval()``-ed.
"""
from __future__ import annotations

import re
import threading
from fractions import Fraction
from typing import Optional

ANSWER_PREFIX = "The answer is"
CHOICE_LETTERS = "ABCDE"

_ANSWER_LINE_RE = re.compile(r"the answer is\s*:?\s*(.+?)\s*\.?\s*$", re.IGNORECASE)
# a number as written in text: optional sign/currency, digits with thousands commas, decimals, %, fraction
_NUM_TOKEN_RE = re.compile(r"(?<![\w.])[-\u2212]?\\?\$?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?%?")
_PLAIN_NUM_RE = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$")
_FRAC_RE = re.compile(r"^\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}$")
_FRAC_SHORT_RE = re.compile(r"^\\[dt]?frac(\d)(\d)$")


def answer_line(answer: str) -> str:
    """The final line every rationale ends with: ``The answer is X.``"""
    return f"{ANSWER_PREFIX} {answer}."


# ---------------------------------------------------------------------------------------------------------
# numbers

def _to_fraction(s: str) -> Optional[Fraction]:
    """Parse a cleaned numeric string (no commas/currency) into an exact Fraction, or None."""
    s = s.strip()
    if not s:
        return None
    m = _FRAC_RE.match(s) or _FRAC_SHORT_RE.match(s)
    if m:
        num, den = _to_fraction(m.group(1)), _to_fraction(m.group(2))
        if num is None or den is None or den == 0:
            return None
        return num / den
    if s.startswith("-") and s[1:].startswith("\\"):  # -\frac{1}{2}
        inner = _to_fraction(s[1:])
        return -inner if inner is not None else None
    if "/" in s:
        parts = s.split("/")
        if len(parts) != 2:
            return None
        num, den = _to_fraction(parts[0]), _to_fraction(parts[1])
        if num is None or den is None or den == 0:
            return None
        return num / den
    if not _PLAIN_NUM_RE.match(s):
        return None
    try:
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


def _clean_number_text(s: str) -> str:
    s = s.strip().replace("\u2212", "-").replace("\u2013", "-")
    s = s.replace("\\!", "").replace("\\,", "").replace("{,}", "").replace("\\%", "%").replace("\\$", "$")
    s = s.strip("$ ").strip()
    s = s.rstrip(".,;:")
    s = s.replace("$", "").replace(" ", "")
    if s.endswith("%"):
        s = s[:-1]
    if re.fullmatch(r"[-+]?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    if s.startswith("+"):
        s = s[1:]
    return s


def number_value(s: str) -> Optional[Fraction]:
    """The exact value of a number written in text (currency, commas, %, fractions), or None."""
    if not isinstance(s, str):
        return None
    return _to_fraction(_clean_number_text(s))


def format_number(value: Fraction | int | float) -> str:
    """Canonical text of a number: integers without ``.0``; terminating decimals exactly; else 10 places."""
    if isinstance(value, float):
        value = Fraction(value).limit_denominator(10**12)
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    if den == 1:  # terminating decimal: exact
        sign = "-" if value < 0 else ""
        v = abs(value)
        digits = 0
        while (v * 10**digits).denominator != 1:
            digits += 1
        text = f"{v.numerator * 10**digits // v.denominator:0{digits + 1}d}"
        out = f"{text[:-digits]}.{text[-digits:]}".rstrip("0").rstrip(".")
        return sign + out
    out = f"{float(value):.10f}".rstrip("0").rstrip(".")
    return "0" if out in ("-0", "") else out


def normalize_number(s: str) -> Optional[str]:
    """``'$1,234.50'`` -> ``'1234.5'``, ``'50%'`` -> ``'50'``, ``'3/4'`` -> ``'0.75'``; None if not a number."""
    value = number_value(s)
    return None if value is None else format_number(value)


# ---------------------------------------------------------------------------------------------------------
# LaTeX helpers

def last_boxed(text: str) -> Optional[str]:
    r"""The content of the last ``\boxed{...}`` (or ``\fbox{...}``) in ``text``, nested braces included."""
    if not isinstance(text, str):
        return None
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    for start in reversed(starts):
        depth, i = 1, start
        while i < len(text) and depth:
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
            i += 1
        if depth == 0:
            return text[start:i - 1].strip()
    return None


def _strip_math_delims(s: str) -> str:
    s = s.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
            s = s[len(left):len(s) - len(right)].strip()
            break
    boxed = last_boxed(s) if s.startswith(("\\boxed", "\\fbox")) else None
    return boxed if boxed is not None else s


def normalize_latex(s: str) -> str:
    """A light textual normal form used for the fast path and the last-resort comparison."""
    s = _strip_math_delims(s)
    s = re.sub(r"\\text\{\s*([^{}]*)\}", r"\1", s)
    for old, new in (("\\left", ""), ("\\right", ""), ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"),
                     ("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\ ", ""), ("^\\circ", ""), ("^{\\circ}", ""),
                     ("\\%", ""), ("\\$", "")):
        s = s.replace(old, new)
    s = re.sub(r"\s+", "", s)
    return s.rstrip(".")


# ---------------------------------------------------------------------------------------------------------
# choices and yes/no

def _canon_choice(s: str) -> Optional[str]:
    s = s.strip().strip(".").strip()
    m = re.fullmatch(r"\(?\s*([A-Ea-e])\s*\)?(?:[.:)]\s*.*)?", s)
    if m:
        return m.group(1).upper()
    m = re.fullmatch(r"(?:option|choice)\s+\(?([A-Ea-e])\)?.*", s, re.IGNORECASE)
    return m.group(1).upper() if m else None


_YES = {"yes", "true", "y"}
_NO = {"no", "false", "n"}


def _canon_yesno(s: str) -> Optional[str]:
    s = s.strip().strip(".!").strip().lower()
    s = re.sub(r"[\s,;:]+.*$", "", s) if s.split() and s.split()[0].rstrip(",") in _YES | _NO else s
    s = s.rstrip(",")
    if s in _YES:
        return "yes"
    if s in _NO:
        return "no"
    return None


def canonical(answer: str, answer_type: str) -> Optional[str]:
    """The canonical form of a stated answer of ``answer_type`` (None if it is not one)."""
    if not isinstance(answer, str):
        return None
    if answer_type == "number":
        out = normalize_number(answer)
        if out is None:  # '18 dollars', '$5 per hour': a leading number followed only by unit words
            m = re.fullmatch(r"\s*(\\?\$?\s?[-\u2212]?[\d,./]*\d%?)\s+[A-Za-z][A-Za-z /]*\.?\s*", answer)
            out = normalize_number(m.group(1)) if m else None
        return out
    if answer_type == "latex":
        s = _strip_math_delims(answer)
        return s or None
    if answer_type == "choice":
        return _canon_choice(answer)
    if answer_type == "yesno":
        return _canon_yesno(answer)
    raise ValueError(f"unknown answer_type {answer_type!r}")


# ---------------------------------------------------------------------------------------------------------
# extraction

def _final_line(text: str) -> Optional[str]:
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()
    return None


def extract_strict(text: str, answer_type: str) -> Optional[str]:
    r"""The canonical answer stated on the final ``The answer is X.`` line, else None.

    For LaTeX answers a ``\boxed{...}`` inside X is unwrapped, and without an answer line the last
    ``\boxed{...}`` of the text counts (the MATH convention of marking the final answer).
    """
    if not isinstance(text, str):
        return None
    line = _final_line(text)
    if line is not None:
        idx = line.lower().rfind(ANSWER_PREFIX.lower())
        if idx >= 0:
            m = _ANSWER_LINE_RE.match(line[idx:])
            if m:
                got = canonical(m.group(1), answer_type)
                if got is not None:
                    return got
    if answer_type == "latex":
        boxed = last_boxed(text)
        if boxed:
            return boxed
    return None


def extract_lenient(text: str, answer_type: str) -> Optional[str]:
    """:func:`extract_strict` first, then the last number / choice letter / yes-no / boxed expression."""
    if not isinstance(text, str):
        return None
    got = extract_strict(text, answer_type)
    if got is not None:
        return got
    if answer_type in ("number", "latex"):
        if answer_type == "latex":
            maths = re.findall(r"\$([^$]+)\$", text)
            if maths:
                return _strip_math_delims(maths[-1])
        for m in reversed(list(_NUM_TOKEN_RE.finditer(text))):
            value = normalize_number(m.group(0))
            if value is not None:
                return value
        return None
    if answer_type == "choice":
        for pattern in (r"\(([A-E])\)", r"(?:answer|option|choice)\s*(?:is|:)?\s*\(?([A-E])\b", r"\b([A-E])\b"):
            hits = re.findall(pattern, text, flags=re.IGNORECASE if "answer" in pattern else 0)
            if hits:
                return hits[-1].upper()
        return None
    if answer_type == "yesno":
        hits = re.findall(r"\b(yes|no)\b", text, flags=re.IGNORECASE)
        return hits[-1].lower() if hits else None
    raise ValueError(f"unknown answer_type {answer_type!r}")


# ---------------------------------------------------------------------------------------------------------
# checking

def _numbers_equal(a: Fraction, b: Fraction) -> bool:
    if a == b:
        return True
    return abs(a - b) <= Fraction(1, 10**6) * max(Fraction(1), abs(b))


def _math_verify_equal(pred: str, gold: str) -> Optional[bool]:
    """math-verify's verdict, or None when it is not installed or cannot parse either side."""
    try:
        from math_verify import parse, verify
    except ImportError:
        return None
    # math-verify's timeouts use SIGALRM, which exists only in the main thread
    main = threading.current_thread() is threading.main_thread()
    kw_parse = {} if main else {"parsing_timeout": None}
    kw_verify = {} if main else {"timeout_seconds": None}
    try:
        g = parse(f"${gold}$", **kw_parse)
        p = parse(f"${pred}$", **kw_parse)
        if not g or not p:
            return None
        return bool(verify(g, p, **kw_verify))
    except Exception:  # a parser failure is "cannot decide", not a crash of the evaluation
        return None


def _sympy_equal(pred: str, gold: str) -> Optional[bool]:
    """sympy's LaTeX parser (antlr or lark backend) then symbolic simplification; None if unavailable."""
    try:
        import sympy
        from sympy.parsing.latex import parse_latex
    except ImportError:
        return None
    try:
        a, b = parse_latex(pred), parse_latex(gold)
        return bool(sympy.simplify(a - b) == 0)
    except Exception:  # missing parser backend or unparseable text
        return None


_LATEX_BACKEND: Optional[str] = None  # tests force "sympy"/"string" to exercise the fallbacks


def latex_equal(pred: str, gold: str) -> bool:
    """LaTeX equivalence: normalised text, then math-verify, else sympy, else numeric value."""
    p, g = normalize_latex(pred), normalize_latex(gold)
    if p == g:
        return True
    backends = [_LATEX_BACKEND] if _LATEX_BACKEND else ["math_verify", "sympy"]
    for backend in backends:
        verdict = None
        if backend == "math_verify":
            verdict = _math_verify_equal(pred, gold)
        elif backend == "sympy":
            verdict = _sympy_equal(p, g)
        if verdict is not None:
            return verdict
    pv, gv = number_value(p), number_value(g)
    return pv is not None and gv is not None and _numbers_equal(pv, gv)


def is_correct(pred: Optional[str], gold: str, answer_type: str) -> bool:
    """Whether a predicted answer equals the gold one for ``answer_type``."""
    if pred is None or not isinstance(pred, str) or not pred.strip():
        return False
    if answer_type == "number":
        p, g = number_value(pred), number_value(gold)
        if p is None:
            c = canonical(pred, "number")
            p = number_value(c) if c is not None else None
        return p is not None and g is not None and _numbers_equal(p, g)
    if answer_type == "latex":
        return latex_equal(pred, gold)
    if answer_type == "choice":
        p, g = _canon_choice(pred), _canon_choice(gold)
        return p is not None and p == g
    if answer_type == "yesno":
        p, g = _canon_yesno(pred), _canon_yesno(gold)
        return p is not None and p == g
    raise ValueError(f"unknown answer_type {answer_type!r}")


__all__ = [
    "ANSWER_PREFIX", "answer_line", "extract_strict", "extract_lenient", "normalize_number", "number_value",
    "format_number", "is_correct", "last_boxed", "normalize_latex", "latex_equal", "canonical",
]
