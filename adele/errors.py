"""Typed user errors. Each carries a one-line message that says what to do.

The CLI catches :class:`AdeleError`, prints ``error: <message>`` and exits with
code 2, before anything is written. Programming errors are not wrapped.
"""
from __future__ import annotations


class AdeleError(Exception):
    """A mistake the user can fix; the message names the file/field and the fix."""

    exit_code = 2


class ConfigError(AdeleError):
    """Bad configuration value, unknown key or unreadable YAML."""


class DatasetError(AdeleError):
    """A dataset folder that does not follow the documented format."""


class RunError(AdeleError):
    """A run folder problem: exists without --overwrite, missing checkpoint, ..."""


class OutputError(RunError):
    """An output location that would lose data or cannot be written."""


class TrainingDiverged(RunError):
    """Non-finite loss or weights: training stops; checkpoints on disk are all finite."""


class RecipeError(AdeleError, ValueError):
    """A noise recipe spec or dict is malformed; the message names the bad part."""


class LabelError(AdeleError, ValueError):
    """A label map (or its declared class count) is not usable for noise synthesis."""
