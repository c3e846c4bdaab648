"""Where a config comes from: the defaults <- a plan <- a YAML file or installed preset <- ``--set`` overrides
(:func:`load_config`, validated once), or a saved run's config.yaml (:func:`saved_config`); and :func:`flatten`.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Optional

import yaml

from ..errors import ConfigError, RunError
from .settings import Config, from_dict
from .validation import set_dotted


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """A nested config dict as ``{"train.epochs": 100, ...}`` (dotted keys, in order)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def saved_config(data: dict | str | Path) -> Config:
    """The Config of a saved run (a dict, or a config.yaml path), tolerant of settings this version no longer has.

    Keys unknown to this version are dropped (they came from an older or newer
    version of adele) with a warning; values are still validated.
    """
    if not isinstance(data, dict):
        path = Path(data)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            raise RunError(f"{path}: unreadable run config; restore the run's config.yaml") from None
    dropped: list[str] = []

    def keep(saved: dict, ref: dict, prefix: str) -> dict:
        out = {}
        for k, v in saved.items():
            if k not in ref:
                dropped.append(prefix + k)
            elif isinstance(ref[k], dict) and isinstance(v, dict):
                out[k] = keep(v, ref[k], f"{prefix}{k}.")
            else:
                out[k] = v
        return out

    cfg = from_dict(keep(data if isinstance(data, dict) else {}, Config().to_dict(), ""))
    if dropped:
        warnings.warn(f"run config: ignored settings unknown to this version: {', '.join(dropped)}", stacklevel=2)
    return cfg


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.epochs=5"`` -> ``("train.epochs", 5)`` (value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like section.key=value, e.g. train.epochs=20")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


PRESETS_DIR = Path(__file__).parent.with_name("presets")


def available_presets() -> list[str]:
    """Names of the presets installed with the package (``--config NAME``), e.g. ``colin27``."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def resolve_config_path(path: str | Path) -> Path:
    """A YAML file, or the name of an installed preset (``colin27``, ``segthor``, ``voc``, ...)."""
    p = Path(path)
    if p.is_file():
        return p
    if p.suffix == "" and len(p.parts) == 1 and (PRESETS_DIR / f"{p.name}.yaml").is_file():
        return PRESETS_DIR / f"{p.name}.yaml"
    raise ConfigError(f"config file {p} not found; pass an existing YAML file to --config "
                      f"or a preset name ({', '.join(available_presets())})")


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | list[str] | None = None,
                plan: Optional[dict[str, Any]] = None) -> Config:
    """Defaults <- ``plan`` (dotted keys, :mod:`adele.plan`) <- YAML file (or installed preset name) <- overrides;
    validated once."""
    data = Config().to_dict()
    for key, value in (plan or {}).items():
        set_dotted(data, key, value)
    if path is not None:
        path = resolve_config_path(path)
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (UnicodeDecodeError, ValueError):
            raise ConfigError(f"{path}: not a text file; --config takes a YAML file (see `adele config show`)") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot be read ({exc.strerror}); pass a readable YAML file") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{path}{where}: not valid YAML; fix the syntax") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of sections (data:, model:, train:, ...)")
        _merge(data, loaded, "")
    items = overrides.items() if isinstance(overrides, dict) else (parse_override(o) for o in overrides or [])
    for key, value in items:
        set_dotted(data, key, value)
    return from_dict(data)


def _merge(base: dict, new: dict, prefix: str) -> None:
    for key, value in new.items():
        where = f"{prefix}{key}"
        if key not in base:
            raise ConfigError(f"unknown config key '{where}'; valid keys: {', '.join(base)}")
        if isinstance(base[key], dict) and isinstance(value, dict):
            _merge(base[key], value, where + ".")
        else:
            base[key] = value
