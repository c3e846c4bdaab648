"""Each class's training IoU and its memorization-onset fit, from a run's adele_log or refitted from its history.

Runs are opened with :meth:`adele.run.RunFolder.open`; which runs are seeds of one setting is
:mod:`adele.reporting.seed_groups`'s.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..config import DetectionConfig
from ..core import OnsetRule, curve, detect_onset
from ..run import RunFolder


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
            res = detect_onset(iou, len(iou), int(horizon), OnsetRule(**(cfg.adele.detection if cfg is not None else DetectionConfig()).fit_settings()))
            cc.onset, cc.flagged, cc.reason = res.onset, res.flagged, res.reason
            if res.fit is not None and res.fit.ok:
                cc.fit = (res.fit.a, res.fit.b, res.fit.c)
                cc.fit_epochs = epochs[np.isfinite(iou)][res.trimmed:]
        if cc.fit is not None and (cc.fit_epochs is None or len(cc.fit_epochs) < 2):
            cc.fit = None
        out.append(cc)
    return out
