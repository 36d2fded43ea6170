r"""Answer extraction and checking, shared by teachers, training and evaluation.

Every rationale in this project ends with one line, ``The answer is X.``, where X is canonical for its
answer type: a number (``57``, ``-3``, ``0.75``), a LaTeX expression (``\frac{1}{2}``), a choice letter
(``A``..``E``) or ``yes``/``no``.

* :func:`extract_strict` reads X only from the final answer line, as lm-evaluation-harness's strict match
  and math-verify's anchored patterns do: ``The answer is X``, ``The final answer is X``, ``Final Answer:
  X``, GSM8K's ``#### X``. The line may be followed by blank lines and sign-off lines (``I hope it is
  correct.``, end-of-turn tokens), X by a sign-off (Minerva's ``... is $24$. I hope it is correct.``), a
  second sentence or a parenthetical (``The answer is 5. (8 - 3 = 5)``); X may carry math delimiters,
  ``\boxed{}``, a currency sign, a unit word or a LaTeX unit (``$18 \text{ apples}$`` -> ``18``). For
  LaTeX answers without an answer line the last ``\boxed{...}`` counts (the MATH convention, nested
  braces included). A rationale that never commits to an answer line yields ``None``; so does one whose
  answer line is followed by anything but sign-offs (``But wait, ...``).
* :func:`extract_lenient` falls back to the last number / choice letter (``(C)``, ``answer: D``, a
  standalone capital) / yes-no (``true``/``false`` included) / boxed expression anywhere in the text
  (the usual "last number" rule for GSM8K-style evaluation).
* :func:`normalize_number` maps ``$1,234.50`` -> ``1234.5``, ``50%`` -> ``50``, ``3/4`` -> ``0.75``,
  ``-7.0`` -> ``-7`` with exact rational arithmetic (:class:`fractions.Fraction`); numbers longer than
  100 characters or beyond 1e300 are not numbers here (``1e99999999`` would stall the arithmetic).
* :func:`is_correct` compares numbers by value (relative tolerance 1e-6), LaTeX by ``math-verify`` when it
  is installed, else by ``sympy``'s LaTeX parser (it needs ``antlr4-python3-runtime`` 4.11, pinned in the
  ``math``/``test`` extras), else by normalised strings. Model output is parsed, never ``eval()``-ed.

Every extraction runs in time linear in the length of the text (no regular expression that backtracks
over a run more than a bounded number of times, no scan restarted from each candidate): model output is
untrusted and may be 100k characters of anything (< 50 ms each on one core).
"""
from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from fractions import Fraction
from typing import Optional

ANSWER_PREFIX = "The answer is"
CHOICE_LETTERS = "ABCDE"

# A number as written in text: optional sign and currency (``$``, ``\$``), digits (thousands commas
# grouped by three), decimals, a fraction, %. Every token normalises (or, for ``1/0``, its part before the
# slash does) unless it is longer than _MAX_NUMBER_CHARS. The pattern starts with a character class so the
# scanner skips other text in C, then checks what precedes the number (not a letter, digit or '.') and
# what the first character was.
_NUM_TOKEN_RE = re.compile(
    r"[-\u2212\\$\d](?<![\w.][\s\S])"
    r"(?:(?<=[-\u2212])(?:\\?\$)?\d|(?<=\\)\$\d|(?<=\$)\d|(?<=\d))"
    r"(?:\d{0,2}(?:,\d{3})+(?!\d)|\d*)(?:\.\d+)?(?:\s*/\s*\d+)?%?")
# A place no number token spans, searched for in the reversed text (so "followed by" reads "preceded by"):
# a character that is never inside a token; a comma not followed by a group of three digits; a point
# without a digit on both sides; '$' or a backslash without a sign before it; '%' (always a token's last
# character); a whitespace run with no '/' next to it.
_NUM_SAFE_RE = re.compile(
    r"[^\d,./%\s\\$]|,(?<!\D\d\d\d,)(?<!^\d\d\d,)|(?<!\d)\.|\.(?!\d)|%"
    r"|\$(?![-\u2212\\])|\\(?![-\u2212])|(?<![\s/])\s+(?![\s/])")
_NUM_WINDOW = 1024  # characters tokenised first, from the end (each further window twice as long)
_NUM_SAFE_REACH = 256  # how far back from a window's start a safe place is looked for
_PLAIN_NUM_RE = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE]([-+]?\d+))?$")
_THOUSANDS_RE = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_FRAC_RE = re.compile(r"^\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}$")
_FRAC_SHORT_RE = re.compile(r"^\\[dt]?frac(\d)(\d)$")
_MAX_NUMBER_CHARS = 100       # a cleaned number longer than this is not an answer (and int() would be slow)
_MAX_EXPONENT = 300           # 1e400 is not an answer either; 1e99999999 would stall Fraction
_MAX_MAGNITUDE = 10 ** 300


def answer_line(answer: str) -> str:
    """The final line every rationale ends with: ``The answer is X.``"""
    return f"{ANSWER_PREFIX} {answer}."


# ---------------------------------------------------------------------------------------------------------
# numbers

def _to_fraction(s: str) -> Optional[Fraction]:
    """Parse a cleaned numeric string (no commas/currency) into an exact Fraction, or None."""
    s = s.strip()
    if not s or len(s) > _MAX_NUMBER_CHARS:
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
    m = _PLAIN_NUM_RE.match(s)
    if not m or (m.group(1) is not None and abs(int(m.group(1))) > _MAX_EXPONENT):
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
    if _THOUSANDS_RE.fullmatch(s):
        s = s.replace(",", "")
    if s.startswith("+"):
        s = s[1:]
    return s


def number_value(s: str) -> Optional[Fraction]:
    """The exact value of a number written in text (currency, commas, %, fractions), or None."""
    if not isinstance(s, str):
        return None
    value = _to_fraction(_clean_number_text(s))
    if value is None or abs(value) >= _MAX_MAGNITUDE:
        return None
    return value


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
# linear-time scanning helpers

_PAIR_RES = {("{", "}"): re.compile(r"[{}]"), ("(", ")"): re.compile(r"[()]"), (")", "("): re.compile(r"[()]")}
_SCAN_IN_PYTHON = 4096  # shorter ranges are scanned brace by brace; longer ones with numpy's cumulative sum


def _matching(text: str, open_at: int, stop: int, opener: str = "{", closer: str = "}") -> int:
    """Index of the ``closer`` that balances the ``opener`` at ``open_at`` (before ``stop``), or -1."""
    if text.find(closer, open_at, stop) < 0:
        return -1
    if stop - open_at > _SCAN_IN_PYTHON:
        try:  # a project dependency, imported only when model output of thousands of characters gets here
            import numpy as np
        except ImportError:  # pragma: no cover - the loop below is linear too, ~20x slower
            np = None
        if np is not None:
            codes = np.frombuffer(text[open_at:stop].encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
            depth = np.cumsum((codes == ord(opener)).astype(np.int64) - (codes == ord(closer)))
            closed = np.flatnonzero(depth == 0)
            return open_at + int(closed[0]) if len(closed) else -1
    depth = 0
    for m in _PAIR_RES[opener, closer].finditer(text, open_at, stop):
        if m.group() == opener:
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return m.start()
    return -1


def _last_match(pattern: re.Pattern, text: str) -> Optional[re.Match]:
    """The last match of ``pattern`` in ``text``, looking at growing tails of the text (linear time).

    Only for patterns no match of which can start inside another, so that the last match found in a tail
    is the last match of the whole text (look-behinds see the text before the tail).
    """
    n, width = len(text), 256
    while True:
        start = max(0, n - width)
        last = None
        for last in pattern.finditer(text, start):
            pass
        if last is not None or start == 0:
            return last
        width *= 4


def _ascii_lower(s: str) -> str:
    """``s`` lower-cased with non-ASCII characters as ``?``: the same length (``'İ'.lower()`` has two)."""
    return (s if s.isascii() else s.encode("ascii", "replace").decode("ascii")).lower()


# ---------------------------------------------------------------------------------------------------------
# LaTeX helpers

_BOXED_OPEN_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")


def last_boxed(text: str) -> Optional[str]:
    r"""The content of the last ``\boxed{...}`` (or ``\fbox{...}``) in ``text``, nested braces included.

    Linear time: when a later box never closes, an earlier one can only close before the later box's
    opening brace (past it, the unclosed brace keeps the depth up), so each earlier scan stops there and
    no character is scanned twice.
    """
    if not isinstance(text, str):
        return None
    opens = [m.end() - 1 for m in _BOXED_OPEN_RE.finditer(text)]
    stop = len(text)
    for open_at in reversed(opens):
        close = _matching(text, open_at, stop)
        if close >= 0:
            return text[open_at + 1:close].strip()
        stop = open_at
    return None


def _strip_math_delims(s: str) -> str:
    s = s.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
            s = s[len(left):len(s) - len(right)].strip()
            break
    boxed = last_boxed(s) if s.startswith(("\\boxed", "\\fbox")) else None
    return boxed if boxed is not None else s


# \text{...} and friends around units and words; [^{}]* cannot run past the next brace, so this is linear
_TEXT_CMD_RE = re.compile(r"\\(?:text|textrm|textnormal|textbf|textit|mbox|mathrm)\s*\{([^{}]*)\}")


def normalize_latex(s: str) -> str:
    """A light textual normal form used for the fast path and the last-resort comparison."""
    s = _strip_math_delims(s)
    s = _TEXT_CMD_RE.sub(r"\1", s)
    for old, new in (("\\left", ""), ("\\right", ""), ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"),
                     ("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\ ", ""), ("^\\circ", ""), ("^{\\circ}", ""),
                     ("\\%", ""), ("\\$", "")):
        s = s.replace(old, new)
    s = re.sub(r"\s+", "", s)
    return s.rstrip(".")


# ---------------------------------------------------------------------------------------------------------
# choices, yes/no, numbers with units

_CHOICE_HEAD_RE = re.compile(r"\(?\s*([A-Ea-e])\s*(?:[.:)]|\Z)")
_CHOICE_OPTION_RE = re.compile(r"(?:option|choice)\s+\(?([A-Ea-e])(?![A-Za-z0-9])", re.IGNORECASE)


def _canon_choice(s: str) -> Optional[str]:
    """``B``, ``(b)``, ``B)``, ``B) ignorance``, ``B: ...``, ``option B``, ``choice (c)`` -> the letter."""
    s = s.strip().strip(".").strip()
    m = _CHOICE_HEAD_RE.match(s) or _CHOICE_OPTION_RE.match(s)
    return m.group(1).upper() if m else None


_YES = {"yes", "true", "y"}
_NO = {"no", "false", "n"}
_YESNO_HEAD_RE = re.compile(r"[^\s,;:]*")


def _canon_yesno(s: str) -> Optional[str]:
    """``Yes``, ``no, because ...``, ``True.`` -> ``yes``/``no``: the first word decides."""
    s = s.strip().strip(".!").strip()
    head = _YESNO_HEAD_RE.match(s).group().rstrip(".!").lower()
    if head in _YES:
        return "yes"
    if head in _NO:
        return "no"
    return None


_LEADING_NUMBER_RE = re.compile(r"\\?\$?\s?[-\u2212]?[\d,./]*\d%?")
_UNIT_WORDS_RE = re.compile(r"[A-Za-z][A-Za-z /]*")


def _canon_number(answer: str) -> Optional[str]:
    out = normalize_number(answer)
    if out is not None:
        return out
    # '$18$', '\boxed{18}', '$18 \text{ apples}$', '18 \text{apples}': unwrap, then drop LaTeX text commands
    s = _TEXT_CMD_RE.sub(r" \1 ", _strip_math_delims(answer)).strip()
    if s != answer:
        out = normalize_number(s)
        if out is not None:
            return out
    # '18 dollars', '$5 per hour', '18 apples': a leading number followed only by unit words
    m = _LEADING_NUMBER_RE.match(s)
    if not m or not s[m.end():m.end() + 1].isspace():
        return None
    words = s[m.end():].strip().removesuffix(".")
    if not _UNIT_WORDS_RE.fullmatch(words):
        return None
    return normalize_number(m.group())


def canonical(answer: str, answer_type: str) -> Optional[str]:
    """The canonical form of a stated answer of ``answer_type`` (None if it is not one)."""
    if not isinstance(answer, str):
        return None
    if answer_type == "number":
        return _canon_number(answer)
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

# Where the stated answer starts, on the answer line lower-cased: lm-eval's "The answer is" (gsm8k-cot)
# and "The final answer is" (Minerva, llama CoT), math-verify's "final answer is" / "final answer:", and
# "Answer:" opening the line; the last one on the line wins. Words are one whitespace character apart (as
# in lm-eval's patterns). The pattern starts with a literal, so the scanner jumps between occurrences of
# "answer" and checks the words before it with fixed-width look-behinds.
_ANSWER_PREFIX_RE = re.compile(
    r"answer(?:"
    r"(?:(?<=\bthe\sanswer)|(?<=\bthe\sfinal\sanswer)|(?<=\bthe\scorrect\sanswer)|(?<=\bthe\sright\sanswer)"
    r"|(?<=\bthe\sbest\sanswer)|(?<=\bfinal\sanswer))\sis\b"
    r"|(?<=\bfinal\sanswer)\s?:)")
_ANSWER_AT_START_RE = re.compile(r"[*#>_\s-]*answer\s?:")
_GSM8K_MARK_RE = re.compile(r"#{4}(?!#)")  # the reference solutions' "#### 72"
# a line that only signs off (lm-eval's Minerva prompt ends every answer with "I hope it is correct.")
_SIGN_OFF = (r"(?:i\s+)?hope\s+(?:it|this|that)\s+(?:is|was)\s+(?:correct|right|helpful)"
             r"|(?:i\s+)?hope\s+(?:it|this|that)\s+helps")
_END_TOKENS = ("</s>", "<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<eos>", "<end_of_turn>")
_END_TOKENS_REV_RE = re.compile(rf"(?:\s*(?:{'|'.join(re.escape(t[::-1]) for t in _END_TOKENS)}))+\s*")
_SIGN_OFF_LINE_RE = re.compile(
    rf"[*_\s]*(?:{_SIGN_OFF}|{'|'.join(map(re.escape, _END_TOKENS))})[\s.!*_]*", re.IGNORECASE)
_SIGN_OFF_TAIL_RE = re.compile(rf"(?:{_SIGN_OFF})[\s.!*_]*")  # on lower-cased text
_SENTENCE_END_RE = re.compile(r"[.!](?=\s|\Z)")


def _answer_line(text: str) -> Optional[str]:
    """The last line that is neither blank nor a sign-off."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line and not _SIGN_OFF_LINE_RE.fullmatch(line):
            return line
    return None


def _stated_answer(line: str) -> Optional[str]:
    """What the answer line states after its answer prefix (sign-off removed), or None without a prefix."""
    if line.endswith(_END_TOKENS):  # "The answer is 5.</s>": matched on the reversed line, in one pass
        line = line[:len(line) - _END_TOKENS_REV_RE.match(line[::-1]).end()]
    low = _ascii_lower(line)
    m = _last_match(_ANSWER_PREFIX_RE, low)
    if m is not None:
        start = m.end()
    else:
        m = _ANSWER_AT_START_RE.match(low) or _GSM8K_MARK_RE.match(low)
        if m is None:
            return None
        start = m.end()
    end = len(low)
    hope = low.rfind("hope", start)  # "... is $24$. I hope it is correct."
    if hope >= 0 and _SIGN_OFF_TAIL_RE.fullmatch(low, hope):
        end = hope - 2 if hope - 2 >= start and low[hope - 2] == "i" and low[hope - 1].isspace() else hope
    return line[start:end]


def _trim(s: str) -> str:
    """Whitespace, markdown emphasis and one final full stop off both ends."""
    s = s.strip().rstrip("*_ ").removesuffix(".")
    return s.strip().strip("*_").strip()


_DELIMS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))


def _leading_span(s: str) -> Optional[str]:
    r"""The math (``$...$``, ``\(...\)``, ...) or ``\boxed{...}`` that ``s`` starts with, if it is whole.

    The span must end ``s`` or be followed by a space or punctuation, so ``$18 and $20`` (currency) is
    not read as math.
    """
    end, inner = -1, ""
    m = _BOXED_OPEN_RE.match(s)
    if m:
        close = _matching(s, m.end() - 1, len(s))
        if close >= 0:
            inner, end = s[m.end():close], close + 1
    else:
        for left, right in _DELIMS:
            if s.startswith(left):
                close = s.find(right, len(left))
                if close > len(left):
                    inner, end = s[len(left):close], close + len(right)
                break
    if end < 0 or (end < len(s) and not (s[end].isspace() or s[end] in ".,;:!?)")):
        return None
    return inner.strip() or None


def _drop_parenthetical(s: str) -> Optional[str]:
    """``'5 (8 - 3 = 5)'`` -> ``'5'``: a trailing ``( ... )`` after a space, when something precedes it."""
    if not s.endswith(")"):
        return None
    rev = s[::-1]
    close = _matching(rev, 0, len(rev), ")", "(")
    if close < 0:
        return None
    head = s[:len(s) - 1 - close]
    return head.strip() if head[-1:].isspace() and head.strip() else None


def _answer_candidates(stated: str, answer_type: str) -> Iterator[str]:
    """Readings of what the answer line states, most specific first."""
    stated = stated.strip().lstrip(":*_ ")
    span = _leading_span(stated)
    if span is not None:
        yield span
    m = _SENTENCE_END_RE.search(stated)  # "5. (8 - 3 = 5)", "yes. Because ..."
    sentence = _trim(stated[:m.start()] if m else stated)
    yield sentence
    if answer_type == "latex":  # any text reads as LaTeX: go no further than the first sentence
        return
    stripped = _drop_parenthetical(sentence)  # "5 (8 - 3 = 5)"
    if stripped is not None:
        yield _trim(stripped)
    yield _trim(stated)


def extract_strict(text: str, answer_type: str) -> Optional[str]:
    r"""The canonical answer stated on the final answer line (``The answer is X.``), else None.

    Blank and sign-off lines after it are skipped; X is read up to its sentence end, a trailing sign-off
    or parenthetical, with math delimiters, ``\boxed{}`` and units unwrapped. For LaTeX answers without an
    answer line the last ``\boxed{...}`` of the text counts (the MATH convention of marking the final
    answer).
    """
    if not isinstance(text, str):
        return None
    if answer_type not in ("number", "latex", "choice", "yesno"):
        raise ValueError(f"unknown answer_type {answer_type!r}")
    line = _answer_line(text)
    stated = _stated_answer(line) if line is not None else None
    if stated is not None:
        tried = set()
        for candidate in _answer_candidates(stated, answer_type):
            if candidate and candidate not in tried:
                tried.add(candidate)
                got = canonical(candidate, answer_type)
                if got is not None:
                    return got
    if answer_type == "latex":
        boxed = last_boxed(text)
        if boxed:
            return boxed
    return None


def _last_number(text: str) -> Optional[str]:
    """The last number token of ``text`` that reads as a number, normalised.

    Tokens are read window by window from the end, in linear time. Each window starts at a place no token
    spans (found in the reversed text), so its tokens are those of a scan from the start of the text --
    unless no such place lies within 256 characters before it (only in a long run of digits, slashes,
    dots and commas), where a token across the window's start may be read as two.
    """
    n, rev = len(text), text[::-1]
    end, window = n, _NUM_WINDOW
    while end > 0:
        digit = _DIGIT_RE.search(rev, n - end)  # every token has a digit, at most two characters from its end
        if digit is None:
            return None
        end = min(end, n - digit.start() + 2)
        start = end - window
        if start <= 0:
            start = 0
        else:
            safe = _NUM_SAFE_RE.search(rev, n - start, n - start + _NUM_SAFE_REACH)
            if safe is not None:
                start = n - safe.end()
            elif start <= _NUM_SAFE_REACH:  # the search reached the start of the text, itself a safe place
                start = 0
        for token in reversed(_NUM_TOKEN_RE.findall(text, start, end)):
            value = normalize_number(token)
            if value is None and "/" in token:  # '1/0': the number before the slash
                value = normalize_number(token.split("/")[0])
            if value is not None:
                return value
        end, window = start, 2 * window
    return None


_DIGIT_RE = re.compile(r"\d")
_INLINE_MATH_RE = re.compile(r"\$([^$]+)\$")
# Each lenient pattern starts with a literal or a character class (word boundaries are checked after the
# first character), so the scanner skips other text in C; a whitespace run is scanned only by the keyword
# before it.
_CHOICE_PAREN_RE = re.compile(r"\(([A-E])\)")
# "answer: D", "the answer is (c)", "option B", "choice b." -- a lower-case letter only in parentheses or
# before punctuation / the end, so the article in "this choice is a hard one" is not option A
_CHOICE_KEYWORD_RE = re.compile(
    r"[aAoOcC](?<!\w[aAoOcC])(?:(?<=[aA])(?i:nswer)|(?<=[oO])(?i:ption)|(?<=[cC])(?i:hoice))\b"
    r"(?=(\s*))\1(?:(?i:is)\b(?=(\s*))\2|:(?=(\s*))\3)?"  # (?=(\s*))\N: a whitespace run, taken whole
    r"(?:\((?P<paren>[A-Ea-e])\)|(?P<upper>[A-E])\b|(?P<lower>[a-e])(?=[.,;:!?)]|\Z))")
_CHOICE_BARE_RE = re.compile(r"([A-E])(?<!\w[A-E])(?!\w)")  # a standalone capital letter
_YESNO_WORD_RE = re.compile(r"[ynft](?<!\w[ynft])(?:(?<=y)es|(?<=n)o|(?<=t)rue|(?<=f)alse)(?!\w)")  # lower-cased


def extract_lenient(text: str, answer_type: str) -> Optional[str]:
    """:func:`extract_strict` first, then the last number / choice letter / yes-no / boxed expression."""
    if not isinstance(text, str):
        return None
    got = extract_strict(text, answer_type)
    if got is not None:
        return got
    if answer_type in ("number", "latex"):
        if answer_type == "latex":
            maths = _INLINE_MATH_RE.findall(text)
            if maths:
                return _strip_math_delims(maths[-1])
        return _last_number(text)
    if answer_type == "choice":
        m = _last_match(_CHOICE_PAREN_RE, text)
        if m:
            return m.group(1)
        m = _last_match(_CHOICE_KEYWORD_RE, text)
        if m:
            return (m.group("paren") or m.group("upper") or m.group("lower")).upper()
        m = _last_match(_CHOICE_BARE_RE, text)
        return m.group(1) if m else None
    if answer_type == "yesno":
        m = _last_match(_YESNO_WORD_RE, _ascii_lower(text))
        return _canon_yesno(m.group()) if m else None
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
        from math_verify import parse, verify  # local: optional extra [math]
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
    """sympy's LaTeX parser then symbolic simplification; None if unavailable or unparseable.

    ``parse_latex`` (default antlr backend) needs ``antlr4-python3-runtime`` 4.11 exactly; the ``math`` and
    ``test`` extras pin it (math-verify's parser accepts 4.9-4.13), so this fallback works in the venv.
    """
    try:
        import sympy  # local: heavy import: only for symbolic answers
        from sympy.parsing.latex import (
            parse_latex,  # local: heavy import: only for symbolic answers
        )
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
