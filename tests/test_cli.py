import subprocess
import sys


def test_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "compact.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in ("world", "generate", "train", "eval", "pipeline"):
        assert name in out.stdout


def test_help_has_no_rest_markup_and_names_real_paths(capsys):
    """Every subcommand's --help reads as plain text: no reST roles, double backticks or directives, and no
    path that does not exist in this layout (runs live in artifacts/runs/<run>)."""
    import pytest

    from compact.cli import SUBCOMMANDS, main

    for name in SUBCOMMANDS:
        with pytest.raises(SystemExit):
            main([name, "--help"])
        text = capsys.readouterr().out
        for markup in ("``", ":func:", ":class:", ":mod:", ":meth:", ":math:", ".. math::", ".. code-block::",
                       "artifacts/train/"):
            assert markup not in text, (name, markup)


def test_plain_text_turns_rest_into_words():
    from compact.cli import plain_text

    doc = "Use :func:`compact.x.y` and ``--set a=b``::\n\n.. math:: a = b\n\nsee `this`."
    assert plain_text(doc) == "Use compact.x.y and --set a=b:\n\n    a = b\n\nsee this."


def test_logging_follows_the_current_stderr(capsys):
    """The package logger writes to the stderr of the moment, so a second in-process CLI call after the first
    call's captured stream was closed (pytest, notebook kernels) logs where it is read, never into a closed file."""
    import io
    import sys

    from compact.log import get_logger, setup_logging

    old = sys.stderr
    first = io.StringIO()
    try:
        sys.stderr = first
        setup_logging("INFO")
        get_logger("test").info("first")
        first.close()
        sys.stderr = second = io.StringIO()
        setup_logging("INFO")
        get_logger("test").info("second")
    finally:
        sys.stderr = old
    assert second.getvalue().endswith("compact.test: second\n")
