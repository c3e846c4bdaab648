"""Memorization onset detection (ADELE section 1).

Per class, the training IoU between predictions and the current labels is
tracked once per epoch. The curve is fitted with

    f(t) = a * (1 - exp(-t**b / c)),   a in [0, 1], b in [0, 1], c >= 0,

and the class is flagged once the fitted slope has dropped far below its
slope at t = 1 ("the class has been learned; what follows is memorization").

    relative_change(t) = | |f'(t)| - |f'(1)| | / |f'(1)|,  t = 1 .. horizon-1
    onset = 1 + #{t : relative_change(t) <= r}      (values > 1 count as 0)
    flagged  <=>  current_epoch - flag_offset >= onset

Time is in epochs throughout, as in the official code: T points recorded
every ``dt`` epochs (dt = 1 for one check per epoch; K / steps_per_epoch for
a check every K steps, the official VOC setting) sit at
t = linspace(0, T * dt, T), f' is evaluated at epochs 1 .. horizon-1, and
points trimmed from a flat start shift the onset by trimmed * dt epochs.
``flag_offset = 1`` is the official convention (``if_update(ious, epoch - 1)``:
a class with onset k is flagged after epoch k + 1); 0 flags it one epoch earlier.

Guards beyond the paper's rule (each one a measured or stated pitfall):
  * the horizon is the *planned* number of epochs, not the current curve length;
  * a class whose IoU has not risen meaningfully is never flagged: its peak
    must reach ``min_peak_iou`` and rise by ``min_rise`` above its early level
    (the first point when that is below ``min_peak_iou``; otherwise the class
    was learned within the first check and its early level is the untrained
    network's IoU, 0, as f(0) = 0 in the fitted model), and the fitted curve
    must end at or above ``min_peak_iou`` (a near-flat fit is not flagged);
    ``min_peak_iou = min_rise = 0`` turns these checks off, as in the official code;
  * a decreasing curve (it never rose above its first point by more than
    ``min_rise`` and ends below it) is not flagged while ``refuse_decreasing``
    is set; the official code fits it like any other;
  * the official flat-start trim (``trim_flat``, optional): leading points are cut while the IoU
    rose by < trim_flat from one point to the next, however few points that leaves (at least
    one), as officially; with fewer than ``min_points`` left the class is not flagged. So a
    class whose IoU never rises by trim_flat between two points (learned within the first
    epoch, or a slow riser) is never flagged, as in the official code. (The official fit also
    runs on 1 or 2 points, but cannot flag them: relative_change(1) = 0 always counts, so
    the local onset is >= 2 while a flag needs onset <= points - 1.)
  * NaN (class absent), short and flat curves and fit failures give
    ``flagged=False`` with a reason instead of an exception.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields
from typing import Optional, Sequence

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

_T_EPS = 1e-6  # added to t in f'(t) so that t = 0 with b < 1 stays finite


# --------------------------------------------------------------------------
# The curve
# --------------------------------------------------------------------------
def curve(t, a: float, b: float, c: float):
    """f(t) = a * (1 - exp(-t**b / c)).  t: scalar or (T,) float -> same shape."""
    return a * (1.0 - np.exp(-np.power(t, b) / c))


def curve_derivative(t, a: float, b: float, c: float):
    """f'(t) = (a*b/c) * t**(b-1) * exp(-t**b / c), evaluated at t + 1e-6.

    t: scalar or (T,) float -> same shape, float64.
    """
    t = np.asarray(t, dtype=np.float64) + _T_EPS
    return (a * b / c) * np.power(t, b - 1.0) * np.exp(-np.power(t, b) / c)


@dataclass(frozen=True)
class CurveFit:
    """Result of :func:`fit_curve`. a, b, c are NaN when ``ok`` is False."""

    a: float
    b: float
    c: float
    ok: bool
    reason: str = ""


def _failed(reason: str) -> CurveFit:
    return CurveFit(np.nan, np.nan, np.nan, ok=False, reason=reason)


def fit_curve(y: np.ndarray, dt: float = 1.0) -> CurveFit:
    """Fit f(t) to a curve of T >= 3 finite values; never raises.

    y: (T,) float, one point every ``dt`` epochs. Points are placed at
    t = linspace(0, T * dt, T) (epoch units, as in the official code:
    ``linspace(0, len * eval_interval / iters_per_epoch, len)``) with sigma = geomspace(1, 0.1, T) so that late
    points weigh more; trust-region least squares from (1, 1, 1) within
    a in [0, 1], b in [0, 1], c in [0, inf).
    """
    y = np.asarray(y, dtype=np.float64).ravel()
    T = y.size
    if T < 3:
        return _failed(f"fit needs >= 3 points, got {T}")
    if not np.all(np.isfinite(y)):
        return _failed("curve contains NaN/inf")
    t = np.linspace(0, T * float(dt), T)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", OptimizeWarning)
            params, _ = curve_fit(
                curve, t, y, p0=(1.0, 1.0, 1.0),
                bounds=([0.0, 0.0, 0.0], [1.0, 1.0, np.inf]),
                sigma=np.geomspace(1.0, 0.1, T), absolute_sigma=True,
                method="trf",
            )
    except (RuntimeError, ValueError, TypeError, OptimizeWarning,
            FloatingPointError, np.linalg.LinAlgError) as err:
        return _failed(f"fit failed: {type(err).__name__}: {err}")
    a, b, c = (float(p) for p in params)
    if not np.all(np.isfinite(params)):
        return _failed(f"fit gave non-finite parameters {params}")
    return CurveFit(a, b, c, ok=True)


# --------------------------------------------------------------------------
# Onset
# --------------------------------------------------------------------------
def _check_settings(horizon: int, r: float, min_points: int) -> None:
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 (planned number of epochs), got {horizon}")
    if not 0.0 < r < 1.0:
        raise ValueError(f"r must be in (0, 1), got {r}")
    if min_points < 3:
        raise ValueError(f"min_points must be >= 3 (three curve parameters), got {min_points}")


def onset_epoch(a: float, b: float, c: float, horizon: int, r: float) -> int:
    """1 + #{t in 1..horizon-1 : relative_change(t) <= r}; relative_change > 1 counts as 0.

    ``horizon`` is the planned total number of epochs (NOT the current curve
    length). The ratio f'(t)/f'(1) is computed in log space, so a steep fit
    (tiny c, where f' underflows) still gives the right count; ``a`` cancels.
    Raises ValueError when f' is identically zero or undefined (a, b or c <= 0,
    or non-finite), or when horizon < 1 or r is outside (0, 1).
    For b = 1: onset = 1 + #{t in 1..H-1 : t <= 1 + c * ln(1 / (1 - r))}.
    """
    _check_settings(horizon, r, 3)
    if not all(np.isfinite([a, b, c])) or min(a, b, c) <= 0.0:
        raise ValueError(f"degenerate fit (f' is zero or undefined): a={a}, b={b}, c={c}")
    t = np.arange(1, horizon, dtype=np.float64) + _T_EPS
    t1 = 1.0 + _T_EPS
    with np.errstate(all="ignore"):
        log_ratio = (b - 1.0) * np.log(t / t1) - (np.power(t, b) - t1**b) / c
        rel = np.abs(np.exp(log_ratio) - 1.0)  # = | |f'(t)| - |f'(1)| | / |f'(1)|
    rel[rel > 1.0] = 0.0
    return 1 + int(np.count_nonzero(rel <= r))


@dataclass(frozen=True)
class OnsetRule:
    """The detection rule's settings (module doc), one object for :func:`detect_onset` and
    :class:`MemorizationDetector`. No defaults here: they are those of :class:`adele.config.DetectionConfig`
    (the one place they are written; ``OnsetRule(**DetectionConfig().fit_settings())``)."""

    #: relative derivative change threshold
    r: float
    #: valid points (after the trim) a curve needs before it is fitted; >= 3
    min_points: int
    #: cut leading points while the IoU rose by less than this to the next one; None = no trim
    trim_flat: Optional[float]
    #: the peak, and the fitted curve's end, must reach this; 0 = off
    min_peak_iou: float
    #: the IoU must rise by this above its early level; 0 = off
    min_rise: float
    #: refuse a curve that never rose by ``min_rise`` and ends below its start
    refuse_decreasing: bool
    #: flagged once current_epoch - flag_offset >= onset (1 = official)
    flag_offset: int

    def plain(self) -> "OnsetRule":
        """The same rule with plain Python values (numpy scalars in, JSON-ready out), each of its field's type."""
        cast = {"float": float, "int": int, "bool": bool, "Optional[float]": lambda v: None if v is None else float(v)}
        return OnsetRule(**{f.name: cast[f.type](getattr(self, f.name)) for f in fields(self)})


@dataclass(frozen=True)
class OnsetResult:
    """Onset decision for one class.

    flagged: current_epoch - flag_offset >= onset.  onset: epoch (1-based;
    an int for one check per epoch, possibly fractional for checks every K
    steps) or None when no valid fit.  fit: the curve fit or None.
    trimmed: leading flat points dropped before fitting.  reason: why.
    """

    flagged: bool
    onset: Optional[float] = None
    fit: Optional[CurveFit] = None
    trimmed: int = 0
    reason: str = ""


def flat_start_length(y: np.ndarray, trim_flat: float) -> int:
    """Number of leading points of y (T,) while the IoU rose by < trim_flat to the next point."""
    steps = np.diff(np.asarray(y, dtype=np.float64))
    rising = np.flatnonzero(steps >= trim_flat)
    return int(rising[0]) if rising.size else int(steps.size)


def _as_epoch(x: float) -> float:
    """An onset as an int when it is a whole epoch (the per-epoch case), else rounded to 1e-6."""
    x = float(x)
    return int(round(x)) if abs(x - round(x)) < 1e-9 else round(x, 6)


def detect_onset(
    ious: Sequence[float],
    current_epoch: float,
    horizon: int,
    rule: OnsetRule,
    dt: float = 1.0,
) -> OnsetResult:
    """Decide whether one class has started memorizing. Never raises on ``ious``.

    ious: (E,) float, train IoU of one class, one point every ``dt`` epochs
    (dt = 1: one per epoch, epoch 1 first); NaN or inf = class absent at that
    check (dropped; the onset is mapped back to real time).
    current_epoch: number of completed epochs (the official ``epoch_number``).
    horizon: planned total number of epochs. rule: the settings (:class:`OnsetRule`; flagged once
    current_epoch - rule.flag_offset >= onset). Raises ValueError only for invalid settings (horizon < 1,
    min_points < 3, r outside (0, 1), dt <= 0).
    """
    r, min_points, trim_flat, min_peak_iou, min_rise = rule.r, rule.min_points, rule.trim_flat, rule.min_peak_iou, rule.min_rise
    _check_settings(horizon, r, min_points)
    if not dt > 0:
        raise ValueError(f"dt must be > 0 (epochs between two checks), got {dt}")
    y = np.asarray(ious, dtype=np.float64).ravel()
    valid = np.isfinite(y)
    index = np.flatnonzero(valid) + 1  # 1-based check number of each valid point
    y = y[valid]
    if y.size == 0:
        return OnsetResult(False, reason="class absent (no finite IoU)")
    if y.size < min_points:
        return OnsetResult(False, reason=f"too short ({y.size} < {min_points} valid points)")

    peak = float(y.max())
    start_rise = peak - float(y[0])
    if rule.refuse_decreasing and start_rise <= min_rise and y[-1] < y[0]:
        return OnsetResult(False, reason=f"decreasing curve (rise {start_rise:.3f} <= {min_rise}, "
                                         f"ends below its start)")
    early = float(y[0]) if y[0] < min_peak_iou else 0.0
    rise = peak - early
    if peak < min_peak_iou or rise < min_rise:  # with either > 0, a rise <= 0 is refused too
        return OnsetResult(False, reason=f"not risen (peak {peak:.3f}, rise {rise:.3f} above early level {early:.3f})")

    trimmed = 0
    if trim_flat is not None:  # official: cut the flat start, however little it leaves
        trimmed = flat_start_length(y, trim_flat)
        if y.size - trimmed < min_points:
            return OnsetResult(False, trimmed=trimmed,
                               reason=f"flat start: no rise of >= {trim_flat} from one point to the next "
                                      f"before the last {y.size - trimmed} point(s) (< {min_points} to fit)")
    n = y.size - trimmed
    fit = fit_curve(y[trimmed:], dt)
    if not fit.ok:
        return OnsetResult(False, fit=fit, trimmed=trimmed, reason=fit.reason)

    with np.errstate(all="ignore"):  # last fitted point sits at t = n * dt (linspace(0, n dt, n))
        fitted_end = float(curve(n * float(dt), fit.a, fit.b, fit.c))
    if not fitted_end >= min_peak_iou:
        return OnsetResult(False, fit=fit, trimmed=trimmed,
                           reason=f"fit near-flat (fitted IoU {fitted_end:.3f} < {min_peak_iou})")
    try:
        local = onset_epoch(fit.a, fit.b, fit.c, horizon, r)
    except ValueError as err:
        return OnsetResult(False, fit=fit, trimmed=trimmed, reason=str(err))
    # official: onset = trimmed * dt + local. Checks with NaN (class absent) are not in the fit;
    # the time they took is added back by mapping the local onset to the check it falls on.
    k = max(1, int(round(local / dt)))  # 1-based fitted point at the local onset
    fitted_index = index[trimmed:]
    check = int(fitted_index[k - 1]) if k <= n else int(fitted_index[-1]) + (k - n)
    onset = _as_epoch((check - k) * dt + local)
    flagged = current_epoch - rule.flag_offset >= onset
    return OnsetResult(flagged, onset, fit, trimmed, "memorization onset reached" if flagged else "onset not reached yet")


# --------------------------------------------------------------------------
# Stateful tracker
# --------------------------------------------------------------------------
class MemorizationDetector:
    """Track per-class IoU curves and flag classes once memorization starts.

    Call :meth:`update` once per check. With one check per epoch (``dt = 1``)
    it records the point and decides; with checks every K steps (``dt = K /
    steps_per_epoch``) call ``update(..., decide=False)`` at each check and
    :meth:`decide` once at the end of each epoch, as the official VOC code
    does. ``horizon`` and the onsets are in epochs. A flagged class stays
    flagged. Background (class 0) is not watched by default and never flagged.
    The rule (:class:`OnsetRule`) has no defaults here: they come from
    :class:`adele.config.DetectionConfig`.
    """

    def __init__(
        self,
        num_classes: int,
        horizon: int,
        rule: OnsetRule,
        *,
        classes_to_watch: Optional[Sequence[int]] = None,
        dt: float = 1.0,
    ):
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 (background + 1), got {num_classes}")
        watch = range(1, num_classes) if classes_to_watch is None else classes_to_watch
        watch = sorted({int(c) for c in watch})
        if any(not 1 <= c < num_classes for c in watch):
            raise ValueError(f"classes_to_watch must be in 1..{num_classes - 1} "
                             f"(background 0 is never flagged), got {watch}")
        if not dt > 0:
            raise ValueError(f"dt must be > 0 (epochs between two checks), got {dt}")
        if rule.flag_offset < 0:
            raise ValueError(f"flag_offset must be >= 0, got {rule.flag_offset}")
        self.num_classes = int(num_classes)
        self.watch = watch
        self.horizon, self.rule, self.dt = int(horizon), rule.plain(), float(dt)
        _check_settings(self.horizon, self.rule.r, self.rule.min_points)
        self._history: list[np.ndarray] = []
        self._epochs: list[int] = []
        self._flagged: dict[int, OnsetResult] = {}
        self._flag_epoch: dict[int, int] = {}
        self.newly_flagged: list[int] = []
        self.last_results: list[OnsetResult] = []

    def update(self, epoch: int, ious: np.ndarray, decide: bool = True) -> list[OnsetResult]:
        """Append one check; with ``decide`` (default) also :meth:`decide` at ``epoch``.

        epoch: completed epochs at this check (the flag epoch when it decides).
        ious: (C,) float, per-class train IoU, NaN = class absent.
        Returns (C,) list of OnsetResult indexed by class (``last_results``).
        """
        ious = np.asarray(ious, dtype=np.float64).ravel()
        if ious.size != self.num_classes:
            raise ValueError(f"ious has {ious.size} entries, detector expects {self.num_classes}")
        self._history.append(ious.copy())
        self._epochs.append(int(epoch))
        if decide:
            return self.decide(epoch)
        self.newly_flagged = []
        return self.last_results

    def decide(self, epoch: int) -> list[OnsetResult]:
        """Re-evaluate the not-yet-flagged watched classes after ``epoch`` completed epochs."""
        hist = self.history
        self.newly_flagged = []
        results = []
        for c in range(self.num_classes):
            if c in self._flagged:
                results.append(self._flagged[c])
            elif c not in self.watch:
                results.append(OnsetResult(False, reason="not watched"))
            else:
                res = detect_onset(hist[:, c], epoch, self.horizon, self.rule, self.dt)
                if res.flagged:
                    self._flagged[c], self._flag_epoch[c] = res, int(epoch)
                    self.newly_flagged.append(c)
                results.append(res)
        self.last_results = results
        return results

    def recheck(self, epoch: int, c: int) -> bool:
        """The rule applied afresh to class ``c`` at ``epoch``, whether or not it was flagged before.

        Nothing is stored: the official SegTHOR code re-checks a corrected class before each of
        its later rounds (see :class:`adele.core.schedule.RoundSchedule`). Unwatched classes: False.
        """
        if c not in self.watch:
            return False
        return detect_onset(self.history[:, c], epoch, self.horizon, self.rule, self.dt).flagged

    @property
    def flagged(self) -> np.ndarray:
        """(C,) bool, True for classes flagged so far."""
        out = np.zeros(self.num_classes, dtype=bool)
        out[list(self._flagged)] = True
        return out

    @property
    def onsets(self) -> dict[int, float]:
        """{class: onset epoch} for flagged classes."""
        return {c: res.onset for c, res in sorted(self._flagged.items())}

    @property
    def flag_epochs(self) -> dict[int, int]:
        """{class: epoch label of the update() that flagged it}."""
        return dict(sorted(self._flag_epoch.items()))

    @property
    def history(self) -> np.ndarray:
        """(E, C) float64, one row per update(); NaN = class absent."""
        if not self._history:
            return np.zeros((0, self.num_classes))
        return np.stack(self._history)

    @property
    def settings(self) -> dict:
        """The horizon, the rule and dt as one plain dict (the checkpoint's ``settings``, in its key order)."""
        rule = asdict(self.rule)
        flag_offset = rule.pop("flag_offset")
        return dict(horizon=self.horizon, **rule, dt=self.dt, flag_offset=flag_offset)

    # ---- checkpointing (plain python types only, JSON-serializable) ----
    def state_dict(self) -> dict:
        hist = [[None if not np.isfinite(v) else float(v) for v in row] for row in self._history]
        flagged = [
            dict(cls=c, onset=res.onset, epoch=self._flag_epoch[c], trimmed=res.trimmed,
                 reason=res.reason, a=res.fit.a, b=res.fit.b, c=res.fit.c)
            for c, res in sorted(self._flagged.items())
        ]
        return dict(num_classes=self.num_classes, watch=list(self.watch),
                    settings=dict(self.settings), epochs=list(self._epochs),
                    history=hist, flagged=flagged)

    def load_state_dict(self, state: dict) -> None:
        if int(state["num_classes"]) != self.num_classes:
            raise ValueError(f"state has {state['num_classes']} classes, "
                             f"detector has {self.num_classes}")
        self._history = [np.array([np.nan if v is None else v for v in row], dtype=np.float64)
                         for row in state["history"]]
        self._epochs = [int(e) for e in state["epochs"]]
        self._flagged, self._flag_epoch = {}, {}
        for rec in state["flagged"]:
            c = int(rec["cls"])
            fit = CurveFit(float(rec["a"]), float(rec["b"]), float(rec["c"]), ok=True)
            self._flagged[c] = OnsetResult(True, _as_epoch(rec["onset"]), fit,
                                           int(rec["trimmed"]), str(rec["reason"]))
            self._flag_epoch[c] = int(rec["epoch"])
        self.newly_flagged, self.last_results = [], []
