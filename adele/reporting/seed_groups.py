"""Which runs of a report are seeds of one setting, and the names the report gives them.

Runs are opened with :meth:`adele.run.RunFolder.open`.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..config import EXECUTION_KEYS
from ..run import RunFolder

#: config fields that are seeds (train.seed; data.noise_seed, the realization of synthetic noise) or change
#: how a run executes but not what it computes: runs equal in everything else are seeds of one setting
SEED_AND_EXECUTION_KEYS = ("train.seed", "data.noise_seed") + EXECUTION_KEYS


def setting_key(config: dict) -> str:
    """The config as canonical text without :data:`SEED_AND_EXECUTION_KEYS` (runs with equal keys differ only by seed)."""
    cfg = json.loads(json.dumps(config))
    for key in SEED_AND_EXECUTION_KEYS:
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    return json.dumps(cfg, sort_keys=True)


def group_by_setting(runs: list[RunFolder]) -> list[list[RunFolder]]:
    """Groups of runs whose configs differ at most in train.seed / data.noise_seed (and execution fields), in input order."""
    groups: dict[str, list[RunFolder]] = {}
    for r in runs:
        groups.setdefault(setting_key(r.resolved_config), []).append(r)
    return list(groups.values())


def unique_names(paths: list[Path]) -> list[str]:
    """Folder names, prefixed by the parent folder where two runs share a name."""
    names = [p.name for p in paths]
    out = []
    for p, n in zip(paths, names):
        out.append(f"{p.parent.name}/{n}" if names.count(n) > 1 else n)
    if len(set(out)) < len(out):
        out = [f"{n} ({i + 1})" for i, n in enumerate(out)]
    return out
