"""Every default in one place: frozen dataclasses, loaded from YAML, validated once.

A config is built from (lowest to highest priority) the defaults, a YAML
file (``--config FILE``) and ``key=value`` overrides from the command line
(``--set train.epochs=20 adele.correction.tau_fg=0.8``). Unknown keys, wrong
types and out-of-range values raise :class:`~adele.errors.ConfigError` naming
the field. The resolved config is saved as ``config.yaml`` in every run folder.

The settings and their defaults are :mod:`adele.config.settings`'s, the checks :mod:`adele.config.validation`'s,
and where a config comes from :mod:`adele.config.loading`'s; every name below is imported from ``adele.config``.
"""
from ..errors import ConfigError, RunError
from .loading import PRESETS_DIR, available_presets, flatten, load_config, parse_override, resolve_config_path, saved_config
from .settings import (EXECUTION_KEYS, AdeleConfig, Config, ConsistencyConfig, CorrectionConfig, DataConfig, DetectionConfig,
                       ModelConfig, OptimConfig, QualityConfig, TrainConfig, from_dict)
from .validation import MAX_SIDE, SEED_MAX, validate

__all__ = ["AdeleConfig", "Config", "ConfigError", "ConsistencyConfig", "CorrectionConfig", "DataConfig", "DetectionConfig",
           "EXECUTION_KEYS", "MAX_SIDE", "ModelConfig", "OptimConfig", "PRESETS_DIR", "QualityConfig", "RunError",
           "SEED_MAX", "TrainConfig", "available_presets", "flatten", "from_dict", "load_config", "parse_override",
           "resolve_config_path", "saved_config", "validate"]
