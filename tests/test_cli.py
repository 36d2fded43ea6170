import subprocess
import sys


def test_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "compact.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in ("world", "generate", "train", "eval", "pipeline"):
        assert name in out.stdout
