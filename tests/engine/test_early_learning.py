"""The early-learning probabilities a run keeps for label quality: written, exact on resume, deterministic, free for training."""
import json

import numpy as np
import pytest

from adele.config import load_config
from adele.engine import Trainer, load_run_data
from adele.labels.ranking import score_given_labels
from adele.run.files import early_probs_path, load_early_probs
from adele.testing import small_colin27

from test_train_e2e import FAST, interrupted_then_resumed

pytestmark = pytest.mark.usefixtures("one_thread")

#: flags early on the small set: a low bar for the peak and the rise, short horizon
EARLY_FLAGS = ["adele.detection.min_peak_iou=0.05", "adele.detection.min_rise=0", "adele.detection.trim_flat=null", "adele.detection.horizon=3",
               "quality.min_points=3"]


def _fit(run, *overrides, epochs=4, data=None):
    cfg = load_config(None, FAST + [f"train.epochs={epochs}", "data.noise=final:variant=painted", *overrides])
    tr = Trainer(cfg, run, data=load_run_data(cfg, data or small_colin27(8, 4)), log=lambda m: None)
    tr.prepare_run_dir(False, True)
    tr.fit()
    return tr


def test_baseline_run_keeps_each_class_at_its_flag_and_scores_are_deterministic(tmp_path, monkeypatch):
    from adele.engine.early_learning import EarlyLearningTracker

    passes = []
    snapshot = EarlyLearningTracker.snapshot
    monkeypatch.setattr(EarlyLearningTracker, "snapshot", lambda self, net, device: passes.append(self.detector._epochs[-1]) or snapshot(self, net, device))
    a = _fit(tmp_path / "a", *EARLY_FLAGS, epochs=6)
    monkeypatch.undo()
    b = _fit(tmp_path / "b", *EARLY_FLAGS, epochs=6)
    probs = load_early_probs(tmp_path / "a")
    assert probs is not None and probs.shapes == a.data.train.shapes
    summary = json.loads((tmp_path / "a" / "metrics.json").read_text())["label_quality"]
    at = summary["snapshot_epoch"]
    assert list(at) == a.classes
    det = a.quality.detector
    flag_epochs = {a.classes[k]: e for k, e in det.flag_epochs.items()}
    assert flag_epochs, "the test needs a flagged class"
    every_fg_flagged = all(det.flagged[k] for k in det.watch)
    for name, e in at.items():
        if name == "background":
            assert e == (max(flag_epochs.values()) if every_fg_flagged else 6)
        else:
            assert e == flag_epochs.get(name, 6)
    assert sorted(summary["at_flag"]) == sorted(flag_epochs) + (["background"] if every_fg_flagged else [])
    np.testing.assert_array_equal(probs.q, load_early_probs(tmp_path / "b").q)
    sa = score_given_labels(tmp_path / "a", a.data.train.original, 255)
    sb = score_given_labels(tmp_path / "b", b.data.train.original, 255)  # the second run scores the same
    np.testing.assert_array_equal(sa[0], sb[0])
    assert all(np.array_equal(x, y) for x, y in zip(sa[2], sb[2]))
    # the tracking passes: only in the flag epochs and at the end
    assert passes == sorted(set(flag_epochs.values()) | {6}) and all(r["quality_s"] >= 0 for r in a.history)


def test_tracking_changes_nothing_in_training_and_can_be_off(tmp_path):
    on = _fit(tmp_path / "on")
    off = _fit(tmp_path / "off", "quality.track=false")
    assert [r["loss"] for r in on.history] == [r["loss"] for r in off.history]
    assert not early_probs_path(tmp_path / "off").exists() and "label_quality" not in json.loads((tmp_path / "off" / "metrics.json").read_text())
    logs = []
    cfg = load_config(None, FAST + ["quality.max_gb=0.000000001"])
    tr = Trainer(cfg, tmp_path / "big", data=load_run_data(cfg, small_colin27(8, 4)), log=logs.append)
    assert tr.quality is None and any("quality.max_gb" in m for m in logs)


def test_resume_continues_the_snapshots_exactly(tmp_path):
    data = small_colin27(8, 4)
    _fit(tmp_path / "full", *EARLY_FLAGS, data=data)
    cfg = load_config(None, FAST + ["train.epochs=4", "data.noise=final:variant=painted", *EARLY_FLAGS])
    interrupted_then_resumed(cfg, data, tmp_path / "part", stop_after=2)
    full, part = load_early_probs(tmp_path / "full"), load_early_probs(tmp_path / "part")
    np.testing.assert_array_equal(full.epochs, part.epochs)
    np.testing.assert_array_equal(full.q, part.q)


def test_adele_run_flags_alike_with_the_same_points_and_later_with_more(tmp_path):
    """Beside ADELE the tracker runs its own detector: with the same settings it flags in the same epochs;
    with quality.min_points above adele.detection.min_points no class is flagged before that many points."""
    tr = _fit(tmp_path / "adele", "method=adele", "adele.consistency.enabled=false", *EARLY_FLAGS, epochs=5)
    assert tr.quality.detector is not tr.method.detector
    metrics = json.loads((tmp_path / "adele" / "metrics.json").read_text())
    at, flag_epochs = metrics["label_quality"]["snapshot_epoch"], metrics["adele"]["flag_epochs"]
    assert flag_epochs and all(at[c] == e for c, e in flag_epochs.items())
    late = _fit(tmp_path / "late", "method=adele", "adele.consistency.enabled=false", *EARLY_FLAGS, "quality.min_points=4", epochs=5)
    q = json.loads((tmp_path / "late" / "metrics.json").read_text())["label_quality"]
    assert q["min_points"] == 4 and late.method.detector.settings["min_points"] == 3
    assert all(e >= 4 for e in q["snapshot_epoch"].values())
