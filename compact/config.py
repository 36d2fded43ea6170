"""Typed configs: dataclasses filled from YAML, with type-checked ``key.sub=value`` overrides.

Configs are data. Every run config is a dataclass; :func:`load` reads a YAML file (with an optional
``base:`` chain of other YAML files), applies command-line overrides, and type-checks every key
against the dataclass annotations. Unknown keys and wrong types raise :class:`ConfigError` with a
one-line message naming the key. :func:`config_hash` names artifacts by what produced them.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from .data.records import decode_utf8
from .errors import ConfigError, DataError
from .paths import resolve

T = TypeVar("T")
_FLOAT_RE = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against annotation ``tp`` (converting only lossless cases: int->float, list->tuple)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"config key '{key}': expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"config key '{key}': expected one of {list(get_args(tp))}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}': expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, prefix=key)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}': expected a list, got {type(value).__name__} {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"config key '{key}': expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}': expected a mapping, got {type(value).__name__} {value!r}")
        kt, vt = get_args(tp) or (Any, Any)
        return {_coerce(k, kt, f"{key}.<key>"): _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        # YAML 1.1 reads "1e-3" (no dot) as a string; accept exactly the numeric literals
        if isinstance(value, str) and _FLOAT_RE.fullmatch(value.strip()):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"config key '{key}': expected {_type_name(tp)}, got {type(value).__name__} {value!r}")


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"config '{prefix or cls.__name__}': expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"unknown config key '{full}' (known at this level: {known})")
        kwargs[key] = _coerce(value, hints[key], full)
    try:
        obj = cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"config '{prefix or cls.__name__}': {exc}") from None
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except (ValueError, AssertionError) as exc:
            raise ConfigError(f"config '{prefix or cls.__name__}': {exc}") from None
    return obj


def to_dict(cfg: Any) -> Any:
    """A plain, JSON/YAML-serialisable copy of a (nested) dataclass."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {str(k): to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, Path):
        return str(cfg)
    return cfg


def hash_view(cfg: Any) -> Any:
    """:func:`to_dict` without the fields a config class lists in ``HASH_DEFAULTS`` while they hold that value: a
    field added later, whose default reproduces what every earlier config did, leaves their names unchanged."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        skip = getattr(type(cfg), "HASH_DEFAULTS", {})
        return {f.name: hash_view(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)
                if not (f.name in skip and getattr(cfg, f.name) == skip[f.name])}
    if isinstance(cfg, (list, tuple)):
        return [hash_view(v) for v in cfg]
    if isinstance(cfg, dict):
        return {str(k): hash_view(v) for k, v in cfg.items()}
    return to_dict(cfg)


def config_hash(cfg: Any, length: int = 12) -> str:
    """A stable content hash of a config (canonical JSON), used to name artifacts."""
    blob = json.dumps(hash_view(cfg), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def read_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a YAML mapping; a top-level ``base: other.yaml`` (relative to this file) is merged under it."""
    p = resolve(path).resolve()  # normalised: "a/../b.yaml" and "b.yaml" are one file (cycle detection)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    if p in _seen:
        loop = " -> ".join(str(q) for q in _seen[_seen.index(p):] + (p,))
        raise ConfigError(f"config file {p}: 'base' chain loops back to itself ({loop})")
    try:
        text = decode_utf8(p.read_bytes(), p)
    except DataError as exc:  # "<file>: not valid UTF-8 (byte 0x.. at line L, column C); ..."
        raise ConfigError(f"config file {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {p}: cannot read ({exc.strerror or type(exc).__name__})") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        raise ConfigError(f"config file {p}: invalid YAML" + (f" at line {line + 1}" if line is not None else "")) from None
    except RecursionError:
        raise ConfigError(f"config file {p}: invalid YAML (nested too deeply)") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p}: top level must be a mapping")
    base = data.pop("base", None)
    if base is not None:
        bases = base if isinstance(base, list) else [base]
        merged: dict[str, Any] = {}
        for b in bases:
            if not isinstance(b, str) or not b.strip():
                raise ConfigError(f"config file {p}: 'base' must be a file name or a list of file names, got {b!r}")
            merged = _deep_merge(merged, read_yaml(p.parent / b, _seen + (p,)))
        data = _deep_merge(merged, data)
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (['a','b','c'], value parsed as a YAML scalar/list)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}': expected key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}': empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    out = json.loads(json.dumps(data, default=str))  # deep copy of plain data
    for text in overrides or []:
        parts, value = parse_override(text)
        node = out
        for part in parts[:-1]:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override '{text}': '{part}' is not a section")
            node = nxt
        node[parts[-1]] = value
    return out


def load(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Load dataclass ``cls`` from an optional YAML file plus ``key=value`` overrides."""
    data = read_yaml(path) if path is not None else {}
    data = apply_overrides(data, overrides)
    return from_dict(cls, data)


def save_yaml(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def replace(cfg: T, **changes: Any) -> T:
    """``dataclasses.replace`` that also accepts dotted keys for nested sections (type-checked)."""
    data = to_dict(cfg)
    data = apply_overrides(data, [f"{k}={json.dumps(v)}" for k, v in changes.items()])
    return from_dict(type(cfg), data)


__all__ = [
    "ConfigError", "from_dict", "to_dict", "config_hash", "read_yaml", "load", "apply_overrides",
    "parse_override", "save_yaml", "replace", "add_config_arguments",
]

# keep typing import used for forward references in subclasses' annotations
_ = typing


def add_config_arguments(parser: argparse.ArgumentParser, *, config_required: bool = False) -> None:
    """The options every config-driven subcommand shares."""
    parser.add_argument("--config", required=config_required, help="YAML config file (relative to the repo root or absolute)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key (dotted, type-checked); repeatable")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
