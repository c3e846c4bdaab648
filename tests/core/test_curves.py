import json
import math

import numpy as np
import pytest
from scipy.optimize import OptimizeWarning

import adele.core.curves as curves
from adele.config import DetectionConfig
from adele.core.curves import (
    CurveFit,
    curve,
    curve_derivative,
    fit_curve,
    flat_start_length,
)

#: the detection rule's defaults, from the config (the core functions take them explicitly)
RULE = DetectionConfig().fit_settings()


def detect_onset(ious, current_epoch, horizon, dt=1.0, **kw):
    return curves.detect_onset(ious, current_epoch, horizon, curves.OnsetRule(**{**RULE, **kw}), dt)


def MemorizationDetector(num_classes, horizon, classes_to_watch=None, dt=1.0, **kw):  # noqa: N802 - stands for the class
    return curves.MemorizationDetector(num_classes, horizon, curves.OnsetRule(**{**RULE, **kw}), classes_to_watch=classes_to_watch, dt=dt)


def onset_epoch(a, b, c, horizon, r=RULE["r"]):
    return curves.onset_epoch(a, b, c, horizon, r)


def b1_curve(T, a, c):
    """y on the fit's own grid t = linspace(0, T, T), b = 1."""
    return curve(np.linspace(0, T, T), a, 1.0, c)


def closed_form_onset(c, horizon, r=0.9):
    limit = 1 + c * math.log(1 / (1 - r))
    return 1 + sum(1 for t in range(1, horizon) if t <= limit)


# ---------------------------------------------------------------- the curve
def test_curve_derivative_matches_finite_difference():
    t, (a, b, c) = np.array([0.5, 2.0, 7.0]), (0.7, 0.6, 3.0)
    h = 1e-5
    numeric = (curve(t + 1e-6 + h, a, b, c) - curve(t + 1e-6 - h, a, b, c)) / (2 * h)
    np.testing.assert_allclose(curve_derivative(t, a, b, c), numeric, rtol=1e-5)
    assert np.isfinite(curve_derivative(0.0, a, b, c))


@pytest.mark.parametrize("a,c", [(0.8, 5.0), (0.6, 2.3), (0.95, 11.7)])
def test_fit_recovers_b1_parameters(a, c):
    fit = fit_curve(b1_curve(30, a, c))
    assert fit.ok, fit.reason
    np.testing.assert_allclose([fit.a, fit.b, fit.c], [a, 1.0, c], rtol=1e-3)


@pytest.mark.parametrize("c,horizon", [(5.0, 100), (2.3, 100), (11.7, 100), (5.0, 10), (5.0, 2)])
def test_onset_epoch_closed_form_b1(c, horizon):
    assert onset_epoch(0.8, 1.0, c, horizon) == closed_form_onset(c, horizon)


def test_onset_epoch_steep_fit_does_not_underflow():
    # f'(1) underflows to 0 in linear space; in log space the onset is 2.
    assert onset_epoch(0.9, 1.0, 1e-4, 100) == 2


@pytest.mark.parametrize("params", [(0.0, 1.0, 1.0), (0.5, 0.0, 1.0), (0.5, 1.0, 0.0), (np.nan, 1, 1)])
def test_onset_epoch_degenerate_raises(params):
    with pytest.raises(ValueError, match="degenerate"):
        onset_epoch(*params, horizon=50)


@pytest.mark.parametrize("a,c", [(0.8, 5.0), (0.6, 2.3), (0.95, 11.7)])
def test_detect_onset_closed_form(a, c):
    T, H = 30, 100
    expected = closed_form_onset(c, H)
    res = detect_onset(b1_curve(T, a, c), current_epoch=T, horizon=H, trim_flat=None)
    assert res.onset == expected
    assert res.flagged == (T >= expected)
    assert res.trimmed == 0


def test_horizon_is_the_planned_length_not_the_curve_length():
    y = b1_curve(8, 0.8, 5.0)  # closed-form onset 13 for a long run
    planned = detect_onset(y, current_epoch=8, horizon=100, trim_flat=None)
    assert planned.onset == 13 and not planned.flagged
    # the pitfall: horizon = current length forces onset <= current epoch
    pitfall = detect_onset(y, current_epoch=8, horizon=8, trim_flat=None, flag_offset=0)
    assert pitfall.onset <= 8 and pitfall.flagged


def test_flagged_one_epoch_after_onset_as_official():
    # official: if_update(ious, epoch - 1) -> flagged once epoch - 1 >= onset
    y = b1_curve(20, 0.8, 5.0)  # onset 13
    assert detect_onset(y, current_epoch=13, horizon=100, trim_flat=None).onset == 13
    assert not detect_onset(y, current_epoch=13, horizon=100, trim_flat=None).flagged
    assert detect_onset(y, current_epoch=14, horizon=100, trim_flat=None).flagged
    # flag_offset=0 keeps the earlier convention: flagged in the onset epoch itself
    assert not detect_onset(y, current_epoch=12, horizon=100, trim_flat=None, flag_offset=0).flagged
    assert detect_onset(y, current_epoch=13, horizon=100, trim_flat=None, flag_offset=0).flagged


def test_points_every_k_steps_are_placed_in_epoch_units():
    # 10 checks per epoch (dt = 0.1) of the same underlying curve as one check per epoch:
    # the onset is the same epoch, not 10x earlier in "check" units
    c, H = 5.0, 100
    fine = curve(np.linspace(0, 20, 200), 0.8, 1.0, c)
    res = detect_onset(fine, current_epoch=20, horizon=H, trim_flat=None, dt=0.1)
    assert res.fit.ok and abs(res.fit.c - c) < 0.1
    assert abs(res.onset - closed_form_onset(c, H)) <= 0.1
    assert not detect_onset(fine[:120], current_epoch=12, horizon=H, trim_flat=None, dt=0.1).flagged
    assert detect_onset(fine[:150], current_epoch=15, horizon=H, trim_flat=None, dt=0.1).flagged


def test_trim_shift_is_in_epochs_for_checks_every_k_steps():
    c, H = 5.0, 100
    y = np.concatenate([np.zeros(10), curve(np.linspace(0, 20, 200), 0.8, 1.0, c)])
    res = detect_onset(y, current_epoch=21, horizon=H, trim_flat=0.01, dt=0.1)
    assert res.trimmed >= 10
    assert abs(res.onset - (res.trimmed * 0.1 + closed_form_onset(c, H))) <= 0.1 + 1e-9


def test_flat_start_is_never_flagged_as_officially():
    # IoU 0.87 -> 0.92, learned within epoch 1: no rise of 0.1 between two points, so the official
    # trim leaves one point and the class is never flagged; without the trim it is flagged at epoch 3
    y = np.array([0.87, 0.90, 0.91, 0.915, 0.92])
    for n in range(3, 6):
        res = detect_onset(y[:n], current_epoch=n, horizon=20)
        assert not res.flagged and res.trimmed == n - 1 and "flat start" in res.reason
    assert detect_onset(y[:3], current_epoch=3, horizon=20, trim_flat=None).flagged
    # a slow riser (0 -> 0.8 in steps < 0.1): never flagged officially, flagged without the trim
    slow = 0.8 * (1 - np.exp(-np.arange(30) / 8.0))  # steps of < 0.1
    assert not any(detect_onset(slow[:n], current_epoch=n, horizon=100).flagged for n in range(3, 31))
    assert any(detect_onset(slow[:n], current_epoch=n, horizon=100, trim_flat=None).flagged for n in range(3, 31))
    # the measured pitfall stays blocked: flat near zero, or a low start that never rises
    assert "not risen" in detect_onset(np.full(10, 0.05), current_epoch=10, horizon=20).reason
    assert "not risen" in detect_onset(np.linspace(0.15, 0.24, 10), current_epoch=10, horizon=20).reason


# ---------------------------------------------------------------- flat-start trim
def test_flat_start_length():
    assert flat_start_length(np.array([0.0, 0.05, 0.1, 0.4, 0.5]), 0.1) == 2
    assert flat_start_length(np.array([0.0, 0.3, 0.35]), 0.1) == 0
    assert flat_start_length(np.array([0.0, 0.05, 0.1]), 0.1) == 2  # never rises: all but last


def test_trim_shifts_onset_by_trimmed_epochs():
    c, H = 5.0, 100
    y = np.concatenate([[0.0, 0.0, 0.0], b1_curve(25, 0.8, c)])
    res = detect_onset(y, current_epoch=y.size, horizon=H, trim_flat=0.1)
    assert res.trimmed == 3
    assert res.onset == closed_form_onset(c, H) + 3  # official: the full horizon, then shifted
    assert res.fit.ok and abs(res.fit.c - c) < 1e-2


def test_trim_leaving_fewer_than_min_points_blocks_the_flag():
    y = np.array([0.0, 0.0, 0.0, 0.5, 0.7, 0.75, 0.76, 0.76])  # the trim drops 2 and keeps the last flat point
    res = detect_onset(y, current_epoch=8, horizon=10, trim_flat=0.1, min_points=6)
    assert res.trimmed == 2 and res.fit is not None  # 6 points left: fitted
    res = detect_onset(y, current_epoch=8, horizon=10, trim_flat=0.1, min_points=7)
    assert res.trimmed == 2 and res.fit is None and not res.flagged and "flat start" in res.reason


# ---------------------------------------------------------------- degenerate input
@pytest.mark.parametrize(
    "ious,reason",
    [
        ([], "absent"),
        ([np.nan] * 6, "absent"),
        ([0.1, 0.6], "too short"),
        ([np.nan, 0.2, np.nan, 0.7, np.nan], "too short"),
        (np.zeros(15), "not risen"),
        (np.full(15, 0.15), "not risen"),
        (np.full(15, 0.05) + np.linspace(0, 0.1, 15), "not risen"),  # peak < 0.2
        (np.linspace(0.9, 0.3, 15), "decreasing"),
    ],
)
def test_degenerate_curves_are_not_flagged(ious, reason):
    res = detect_onset(ious, current_epoch=len(ious), horizon=100)
    assert not res.flagged and res.onset is None
    assert reason in res.reason


def test_nan_entries_are_dropped_and_onset_mapped_to_epochs():
    c, H = 5.0, 100
    y = np.concatenate([[np.nan, np.nan], b1_curve(25, 0.8, c)])
    res = detect_onset(y, current_epoch=y.size, horizon=H, trim_flat=None)
    assert res.onset == closed_form_onset(c, H - 2) + 2
    y_mid = y.copy()
    y_mid[10] = np.nan  # an interior gap: still a valid fit, never an exception
    assert detect_onset(y_mid, current_epoch=y.size, horizon=H).onset is not None


def test_decreasing_curve_is_fittable_but_not_flagged():
    y = np.linspace(0.9, 0.3, 15)
    assert isinstance(fit_curve(y), CurveFit)  # no exception
    res = detect_onset(y, current_epoch=15, horizon=100, min_rise=0.0)
    assert not res.flagged and res.reason


def test_constant_curve_not_flagged_even_without_min_rise():
    res = detect_onset(np.full(15, 0.15), current_epoch=15, horizon=100, min_rise=0.0)
    assert not res.flagged and "not risen" in res.reason


def test_rise_then_collapse_gives_near_flat_fit():
    y = np.array([0.0, 0.3, 0.25, 0.15, 0.1, 0.05, 0.05, 0.04])
    res = detect_onset(y, current_epoch=8, horizon=100)
    assert not res.flagged and "near-flat" in res.reason


#: the official code's detection: no refusals before or after the fit
OFFICIAL = dict(min_peak_iou=0.0, min_rise=0.0, refuse_decreasing=False)


def _official_onset(y, horizon, r=0.9):
    """The official ``label_update_epoch`` (fit on all points, onset counted over epochs 1..horizon-1)."""
    fit = fit_curve(np.asarray(y, dtype=np.float64))
    return onset_epoch(fit.a, fit.b, fit.c, horizon, r)


@pytest.mark.parametrize("name, y", [
    ("decreasing", np.linspace(0.9, 0.3, 15)),
    ("not risen", np.full(15, 0.05) + np.linspace(0, 0.1, 15)),
    ("near-flat", np.array([0.0, 0.3, 0.25, 0.15, 0.1, 0.05, 0.05, 0.04])),
])
def test_refusals_off_give_the_official_onset(name, y):
    """Each refusal fires by default; with the official settings the curve is fitted and its onset is the official one."""
    horizon = 12
    assert name in detect_onset(y, current_epoch=y.size, horizon=horizon, trim_flat=None).reason
    res = detect_onset(y, current_epoch=y.size, horizon=horizon, trim_flat=None, **OFFICIAL)
    assert res.fit is not None and res.onset == _official_onset(y, horizon)
    assert res.flagged == (y.size - 1 >= res.onset)


def test_refuse_decreasing_alone_switches_the_decreasing_refusal():
    y = np.linspace(0.9, 0.3, 15)
    kept = detect_onset(y, current_epoch=15, horizon=12, trim_flat=None, min_peak_iou=0.0, min_rise=0.0)
    assert "decreasing" in kept.reason and kept.fit is None
    off = detect_onset(y, current_epoch=15, horizon=12, trim_flat=None, min_peak_iou=0.0, min_rise=0.0, refuse_decreasing=False)
    assert "decreasing" not in off.reason and off.fit is not None


@pytest.mark.parametrize("exc", [RuntimeError("no convergence"), ValueError("bad"),
                                 OptimizeWarning("covariance")])
def test_fit_failure_is_reported(monkeypatch, exc):
    def boom(*args, **kwargs):
        raise exc

    monkeypatch.setattr(curves, "curve_fit", boom)
    fit = fit_curve(b1_curve(10, 0.8, 3.0))
    assert not fit.ok and "fit failed" in fit.reason
    res = detect_onset(b1_curve(10, 0.8, 3.0), current_epoch=10, horizon=100)
    assert not res.flagged and "fit failed" in res.reason


def test_non_finite_parameters_are_a_failure(monkeypatch):
    monkeypatch.setattr(curves, "curve_fit", lambda *a, **k: (np.array([np.nan, 1, 1]), None))
    assert not fit_curve(b1_curve(10, 0.8, 3.0)).ok


def test_degenerate_fit_parameters_are_not_flagged(monkeypatch):
    monkeypatch.setattr(curves, "fit_curve", lambda y, dt=1.0: CurveFit(0.9, 0.0, 0.5, ok=True))
    res = detect_onset(b1_curve(10, 0.8, 3.0), current_epoch=10, horizon=100)
    assert not res.flagged and "degenerate" in res.reason


def test_detect_onset_never_raises_on_random_input():
    rng = np.random.default_rng(0)
    for _ in range(40):
        y = rng.uniform(-0.2, 1.2, size=rng.integers(0, 12))
        y[rng.random(y.size) < 0.2] = np.nan
        y[rng.random(y.size) < 0.05] = np.inf
        res = detect_onset(y, current_epoch=y.size, horizon=30)
        assert isinstance(res.flagged, bool) and res.reason


def test_invalid_settings_raise():
    with pytest.raises(ValueError, match="horizon"):
        detect_onset([0.1, 0.5, 0.7], 3, horizon=0)
    with pytest.raises(ValueError, match="min_points"):
        detect_onset([0.1, 0.5, 0.7], 3, horizon=10, min_points=2)


# ---------------------------------------------------------------- detector
def detector_run(det, epochs, rng):
    """Class 1 learns fast (c=3), class 2 stays near zero, class 3 absent, 0 rises too."""
    fast = b1_curve(40, 0.8, 3.0)
    for e in range(1, epochs + 1):
        ious = np.array([fast[e - 1], fast[e - 1], 0.02 * rng.random(), np.nan])
        det.update(e, ious)


def test_detector_flags_and_stays_flagged():
    det = MemorizationDetector(num_classes=4, horizon=40)
    rng = np.random.default_rng(0)
    detector_run(det, 10, rng)
    assert det.flagged.tolist() == [False, True, False, False]  # background never
    onset, flag_epoch = det.onsets[1], det.flag_epochs[1]
    assert flag_epoch == onset + 1  # flagged one epoch after the onset (official convention)
    replay = detect_onset(det.history[:onset + 1, 1], current_epoch=onset + 1, horizon=40)
    assert replay.flagged and replay.onset == onset
    res = det.update(11, np.array([0.0, 0.0, 0.0, np.nan]))  # IoU collapses afterwards
    assert det.flagged[1] and det.onsets[1] == onset and det.flag_epochs[1] == flag_epoch
    assert res[1].flagged and det.newly_flagged == []
    assert "not watched" in res[0].reason and not res[2].flagged
    assert det.history.shape == (11, 4)


def test_detector_newly_flagged_only_once():
    det = MemorizationDetector(num_classes=4, horizon=40)
    rng = np.random.default_rng(0)
    seen = []
    fast = b1_curve(40, 0.8, 3.0)
    for e in range(1, 12):
        det.update(e, np.array([0.0, fast[e - 1], 0.01 * rng.random(), np.nan]))
        seen += det.newly_flagged
    assert seen == [1]


def test_detector_state_dict_json_round_trip():
    det = MemorizationDetector(num_classes=4, horizon=40)
    detector_run(det, 10, np.random.default_rng(0))
    state = json.loads(json.dumps(det.state_dict(), allow_nan=False))
    clone = MemorizationDetector(num_classes=4, horizon=40)
    clone.load_state_dict(state)
    np.testing.assert_array_equal(clone.history, det.history)  # NaN positions equal too
    assert clone.onsets == det.onsets and clone.flag_epochs == det.flag_epochs
    nxt = np.array([0.5, 0.7, 0.3, 0.1])
    assert [r.flagged for r in clone.update(11, nxt)] == [r.flagged for r in det.update(11, nxt)]


def test_detector_rejects_bad_arguments():
    with pytest.raises(ValueError, match="background"):
        MemorizationDetector(num_classes=3, horizon=10, classes_to_watch=[0, 1])
    det = MemorizationDetector(num_classes=3, horizon=10)
    with pytest.raises(ValueError, match="expects 3"):
        det.update(1, np.zeros(4))
    with pytest.raises(ValueError, match="classes"):
        det.load_state_dict(MemorizationDetector(num_classes=5, horizon=10).state_dict())
