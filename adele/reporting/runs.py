"""What the report computes across runs: which runs are seeds of one setting, and each class's fitted curve.

Runs are opened with :meth:`adele.run.RunFolder.open`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import EXECUTION_KEYS, DetectionConfig
from ..core import curve, detect_onset
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


@dataclass
class ClassCurve:
    """Training IoU of one class and its memorization-onset fit.

    ``fit`` = (a, b, c) of f(t) = a (1 - exp(-t^b / c)) fitted to the epochs
    ``fit_epochs`` (t = linspace(0, T, T) over them, T = len(fit_epochs)).
    ``source``: "adele_log" (the fit used in training) or "post-hoc" (refitted
    here from history.csv with the run's detection settings).
    """

    name: str
    epochs: np.ndarray
    iou: np.ndarray
    fit: Optional[tuple[float, float, float]] = None
    fit_epochs: Optional[np.ndarray] = None
    onset: Optional[float] = None
    flagged: bool = False
    flag_epoch: Optional[int] = None
    reason: str = ""
    source: str = "post-hoc"

    def fitted(self, until: float, n: int = 200) -> tuple[np.ndarray, np.ndarray, float]:
        """(epochs, f values, last fitted epoch): the fit drawn against epochs up to ``until``."""
        e0, T = float(self.fit_epochs[0]), len(self.fit_epochs)
        span = max(float(self.fit_epochs[-1]) - e0, 1.0)  # the T points span t = 0..T
        t = np.linspace(0.0, max(until - e0, span) * T / span, n)
        with np.errstate(all="ignore"):
            return e0 + t * span / T, curve(t, *self.fit), float(self.fit_epochs[-1])


def class_curves(run: RunFolder) -> list[ClassCurve]:
    """One :class:`ClassCurve` per foreground class (see its doc for the two sources)."""
    classes = run.classes
    out = []
    last = run.adele_log[-1] if run.adele_log else None
    cfg = run.settings
    horizon = cfg.onset_horizon() if cfg is not None else max(run.epochs_done, 1)
    for ci, name in enumerate(classes[1:], start=1):
        epochs, iou = run.series(f"train_iou/{name}", dropna=False)
        cc = ClassCurve(name, epochs, iou)
        if last is not None:
            rec = last["classes"].get(name, {})
            cc.source, cc.reason, cc.onset, cc.flagged = "adele_log", rec.get("reason", ""), rec.get("onset"), bool(rec.get("flagged"))
            fit_epoch = last["epoch"]
            if cc.flagged:
                fit_epoch = next((r["epoch"] for r in run.adele_log if ci in r.get("flagged", [])), fit_epoch)
                cc.flag_epoch = fit_epoch
            if rec.get("a") is not None:
                valid = [r["epoch"] for r in run.adele_log if r["epoch"] <= fit_epoch and r["train_iou"][ci] is not None]
                cc.fit = (rec["a"], rec["b"], rec["c"])
                cc.fit_epochs = np.asarray(valid[int(rec.get("trimmed") or 0):], dtype=float)
        elif iou.size:
            res = detect_onset(iou, len(iou), int(horizon), **(cfg.adele.detection if cfg is not None else DetectionConfig()).fit_settings())
            cc.onset, cc.flagged, cc.reason = res.onset, res.flagged, res.reason
            if res.fit is not None and res.fit.ok:
                cc.fit = (res.fit.a, res.fit.b, res.fit.c)
                cc.fit_epochs = epochs[np.isfinite(iou)][res.trimmed:]
        if cc.fit is not None and (cc.fit_epochs is None or len(cc.fit_epochs) < 2):
            cc.fit = None
        out.append(cc)
    return out
