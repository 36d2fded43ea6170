"""Answer extraction and checking on real-format cases (GSM8K, MATH, CommonsenseQA, StrategyQA, teachers)."""
import pytest

from compact.data import answers as A
from compact.data.answers import answer_line, extract_lenient, extract_strict, is_correct, last_boxed, normalize_number


@pytest.mark.parametrize("text,expected", [
    ("72", "72"), ("$1,234.50", "1234.5"), ("1,000,000", "1000000"), ("50%", "50"), ("3/4", "0.75"),
    ("-7.0", "-7"), ("-3", "-3"), ("\u22125", "-5"), ("0.10", "0.1"), ("12.", "12"), ("+4", "4"),
    ("\\frac{3}{4}", "0.75"), ("-\\frac{1}{2}", "-0.5"), ("\\dfrac12", "0.5"), ("\\$18", "18"), ("$ 5", "5"),
    ("1/3", "0.3333333333"), ("2.500", "2.5"), ("007", "7"), ("1e3", "1000"), ("18.00", "18"),
])
def test_normalize_number(text, expected):
    assert normalize_number(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "1,23", "1/0", "x+1", "12 apples and 3", "--4", "3/4/5"])
def test_normalize_number_rejects(text):
    assert normalize_number(text) is None


def test_answer_line_roundtrip():
    for ans, typ in (("57", "number"), ("B", "choice"), ("yes", "yesno"), ("\\frac{1}{2}", "latex")):
        text = f"Step 1: something.\n{answer_line(ans)}"
        assert extract_strict(text, typ) == ans


@pytest.mark.parametrize("text,typ,expected", [
    ("Step 1: 3 + 4 = 7.\nThe answer is 7.", "number", "7"),
    ("So she earns $18 every day.\nThe answer is $18.", "number", "18"),
    ("The answer is 1,200.", "number", "1200"),
    ("reasoning\nThe answer is -12", "number", "-12"),
    ("reasoning\n\nThe answer is 18 dollars.\n\n", "number", "18"),
    ("Therefore, the answer is 42.", "number", "42"),          # answer line after text on the final line
    ("The answer is: 5.", "number", "5"),
    ("the answer is 25%.", "number", "25"),
    ("Thus the answer is (B).", "choice", "B"),
    ("The answer is B) ignorance.", "choice", "B"),
    ("The answer is c.", "choice", "C"),
    ("The answer is Yes.", "yesno", "yes"),
    ("The answer is no", "yesno", "no"),
    ("The answer is \\frac{1}{2}.", "latex", "\\frac{1}{2}"),
    ("The answer is $\\frac{\\sqrt{3}}{2}$.", "latex", "\\frac{\\sqrt{3}}{2}"),
    ("The answer is \\boxed{\\frac{1}{\\sqrt{2}}}.", "latex", "\\frac{1}{\\sqrt{2}}"),
    # MATH convention: the last \boxed{} marks the answer, nested braces included
    ("so $x = \\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}$ ok", "latex", "\\left( 3, \\frac{\\pi}{2} \\right)"),
])
def test_extract_strict(text, typ, expected):
    assert extract_strict(text, typ) == expected


@pytest.mark.parametrize("text,typ", [
    ("The answer is 7.\nBut wait, maybe not.", "number"),   # the answer line must be the final line
    ("I think it's 7.", "number"),
    ("The answer is unclear.", "number"),
    ("", "number"),
    ("The answer is F.", "choice"),
    ("The answer is maybe.", "yesno"),
    ("no boxed here", "latex"),
])
def test_extract_strict_none(text, typ):
    assert extract_strict(text, typ) is None


def test_extract_strict_non_string():
    assert extract_strict(None, "number") is None
    assert extract_lenient(12, "number") is None


@pytest.mark.parametrize("text,typ,expected", [
    # GSM8K reference solution format: lenient takes the last number
    ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips.\n#### 72",
     "number", "72"),
    ("She pays $1,250 in total, so she keeps $3,750", "number", "3750"),
    ("The result is 4.5 cups.", "number", "4.5"),
    ("The answer is 7.\nBut wait, 8.", "number", "8"),
    ("I'd go with (C) because", "choice", "C"),
    ("my answer: D", "choice", "D"),
    ("Yes, because... so no.", "yesno", "no"),
    ("the result is \\boxed{5}", "latex", "5"),
    ("we get $x^2+1$ finally", "latex", "x^2+1"),
])
def test_extract_lenient(text, typ, expected):
    assert extract_lenient(text, typ) == expected


def test_lenient_prefers_strict():
    text = "First 3 then 10.\nThe answer is 3."
    assert extract_lenient(text, "number") == "3"


@pytest.mark.parametrize("pred,gold,typ,ok", [
    ("72", "72", "number", True), ("72.0", "72", "number", True), ("$72", "72", "number", True),
    ("0.75", "3/4", "number", True), ("1,000", "1000", "number", True), ("73", "72", "number", False),
    ("-5", "5", "number", False), ("0.3333333333", "1/3", "number", True), ("abc", "1", "number", False),
    (None, "1", "number", False), ("", "1", "number", False),
    ("18 dollars", "18", "number", True),
    ("B", "B", "choice", True), ("(b)", "B", "choice", True), ("C", "B", "choice", False),
    ("yes", "yes", "yesno", True), ("Yes.", "yes", "yesno", True), ("no", "yes", "yesno", False),
    ("true", "yes", "yesno", True),
    ("\\frac{1}{2}", "\\frac{1}{2}", "latex", True), ("\\dfrac{1}{2}", "\\frac12", "latex", True),
    ("0.5", "\\frac{1}{2}", "latex", True), ("2\\sqrt{2}", "\\sqrt{8}", "latex", True),
    ("1+x", "x+1", "latex", True), ("\\frac{1}{3}", "\\frac{1}{2}", "latex", False),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})", "latex", True),
    ("10", "10^{\\circ}", "latex", True),
])
def test_is_correct(pred, gold, typ, ok):
    assert is_correct(pred, gold, typ) is ok


def test_latex_uses_math_verify_when_installed():
    pytest.importorskip("math_verify")
    # not textually equal after normalisation: only a math-equivalence library decides these
    assert A._math_verify_equal("\\frac{2}{4}", "\\frac{1}{2}") is True
    assert A._math_verify_equal("x^2 - 1", "(x-1)(x+1)") is True
    assert A._math_verify_equal("3", "4") is False


@pytest.mark.parametrize("backend", ["sympy", "string"])
def test_latex_fallbacks_without_math_verify(monkeypatch, backend):
    """Without math-verify: sympy's LaTeX parser if it has a backend, else normalised text + numeric value."""
    monkeypatch.setattr(A, "_LATEX_BACKEND", backend)
    assert is_correct("\\dfrac{1}{2}", "\\frac{1}{2}", "latex")       # textual normal form
    assert is_correct("0.5", "\\frac{1}{2}", "latex")                  # numeric value
    assert not is_correct("\\frac{1}{3}", "\\frac{1}{2}", "latex")
    if backend == "sympy" and A._sympy_equal("2", "2") is not None:
        assert is_correct("1+x", "x+1", "latex")


def test_never_evaluates_text(monkeypatch):
    """Answer checking must not execute model output: eval/exec are never reached."""
    import builtins

    def boom(*a, **k):
        raise AssertionError("eval called")

    monkeypatch.setattr(builtins, "eval", boom)
    monkeypatch.setattr(builtins, "exec", boom)
    assert is_correct("__import__('os').system('true')", "1", "number") is False
    assert normalize_number("__import__('os')") is None
    extract_lenient("The answer is __import__('os').", "number")


def test_last_boxed_nested_and_unbalanced():
    assert last_boxed("\\boxed{1} and \\boxed{\\frac{a}{b^{2}}}") == "\\frac{a}{b^{2}}"
    assert last_boxed("\\boxed{2} then \\boxed{oops") == "2"
    assert last_boxed("nothing") is None


def test_unknown_answer_type():
    with pytest.raises(ValueError):
        is_correct("1", "1", "essay")
    with pytest.raises(ValueError):
        extract_strict("The answer is 1.", "essay")
