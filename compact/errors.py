"""User-facing errors: one line, a non-zero exit, never a traceback wall (see compact.cli)."""
from __future__ import annotations


class CompactError(Exception):
    """Base class of every error caused by input the user controls (configs, files, records)."""

    exit_code = 2


class ConfigError(CompactError):
    """An unknown key, a wrong type or an impossible value in a config or override."""


class DataError(CompactError):
    """A malformed file or record; the message names the file, the record and the field."""

    def __init__(self, message: str, *, path: str | None = None, record: str | int | None = None,
                 field: str | None = None):
        where = []
        if path is not None:
            where.append(str(path))
        if record is not None:
            where.append(f"record {record}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{': '.join([', '.join(where), message]) if where else message}")
        self.path, self.record, self.field = path, record, field


class ArtifactError(CompactError):
    """An artifact is missing, was produced by another config, or does not belong with its partner."""


class TrainingError(CompactError):
    """Training cannot go on (NaN loss, incompatible model); the last good checkpoint is kept."""
