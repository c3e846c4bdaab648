"""Properties of ADELE in the training loop that a wrong implementation would break silently."""
import numpy as np
import pytest
import torch

from adele.config import load_config
from adele.core import OnsetResult
from adele.engine import Trainer, load_run_data
from adele.engine.method import AdeleState
from adele.probabilities import multiscale_probs
from adele.testing import small_colin27
from test_adele_e2e import ADELE


def _fit(cfg, run, data):
    t = Trainer(cfg, run, data=data, log=lambda m: None)
    t.prepare_run_dir(resume=False, overwrite=False)
    return t, t.fit()


def test_clean_labels_never_influence_training(tmp_path):
    """Clean reference labels may only be *measured against*: weights, corrected labels and onsets
    are bit-identical when they are replaced by random labels."""
    src = small_colin27(8, 2)
    cfg = load_config(None, ADELE + ["train.epochs=8"])
    a_data, b_data = load_run_data(cfg, src), load_run_data(cfg, src)
    rng = np.random.default_rng(0)
    b_data.train.clean = [rng.integers(0, 10, lab.shape).astype(lab.dtype) for lab in b_data.train.clean]
    a, ra = _fit(cfg, tmp_path / "a", a_data)
    b, rb = _fit(cfg, tmp_path / "b", b_data)
    assert ra["adele"]["rounds"] and any(r["pixels_changed"] for r in ra["adele"]["rounds"])
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    assert all(np.array_equal(x, y) for x, y in zip(a.data.train.labels, b.data.train.labels))
    assert ra["adele"]["onsets"] == rb["adele"]["onsets"] and ra["adele"]["flag_epochs"] == rb["adele"]["flag_epochs"]
    assert ra["test"] == rb["test"]
    # only what is measured against the clean labels differs
    assert [r["precision"] for r in ra["adele"]["rounds"]] != [r["precision"] for r in rb["adele"]["rounds"]]


class ScriptedDetector:
    """Stands in for MemorizationDetector: class c is flagged at epoch flags[c]."""

    def __init__(self, num_classes, flags):
        self.num_classes, self.flags, self._on, self.newly_flagged = num_classes, flags, set(), []
        self.last_results = []

    def update(self, epoch, ious, decide=True):
        return self.decide(epoch)

    def decide(self, epoch):
        self.newly_flagged = [c for c, e in self.flags.items() if e == epoch]
        self._on |= set(self.newly_flagged)
        self.last_results = [OnsetResult(c in self._on) for c in range(self.num_classes)]
        return self.last_results

    def recheck(self, epoch, c):
        return c in self.flags and epoch >= self.flags[c]

    @property
    def flagged(self):
        return np.array([c in self._on for c in range(self.num_classes)])

    @property
    def onsets(self):
        return {c: self.flags[c] - 1 for c in sorted(self._on)}


@pytest.mark.parametrize("every,flags,expected", [
    (10, {1: 3, 4: 7, 2: 7}, [3, 7, 10, 20, 30]),
    (5, {3: 12}, [12, 15, 20, 25, 30]),
    (1, {1: 28}, [28, 29, 30]),
    (7, {}, []),
])
def test_correction_rounds_in_the_flag_epoch_and_every_n_epochs_after(tmp_path, every, flags, expected):
    src = small_colin27(4, 2)
    cfg = load_config(None, ADELE + [f"adele.correction.every={every}", "train.epochs=30"])
    data = load_run_data(cfg, src)
    state = AdeleState(cfg, 10, 255, tmp_path, data.train, list(src.classes), log=lambda m: None)
    state.detector = ScriptedDetector(10, flags)
    done = []
    state.correction_round = lambda epoch, *a: done.append(epoch) or {"round": len(done), "pixels_changed": 0}
    cm = np.eye(10, dtype=np.int64)
    for epoch in range(1, 31):
        state.after_epoch(epoch, cm, None, torch.device("cpu"), state.dist)
    assert done == expected


@pytest.mark.parametrize("mode,expected", [
    ("new", {7: [1], 10: [1], 12: [2], 15: [3], 20: [1, 2, 3], 24: [4], 30: [1, 2, 3, 4], 40: [1, 2, 3, 4]}),
    ("flagged", {7: [1], 10: [1], 12: [1, 2], 15: [1, 2, 3], 20: [1, 2, 3], 24: [1, 2, 3, 4], 30: [1, 2, 3, 4],
                 40: [1, 2, 3, 4]}),
])
def test_which_classes_each_round_corrects(tmp_path, mode, expected):
    """Official SegTHOR (``new``): a newly flagged class alone, the others frozen until the 10th epoch."""
    src = small_colin27(4, 2)
    cfg = load_config(None, ADELE + [f"adele.correction.classes={mode}", "adele.correction.every=10", "train.epochs=40"])
    state = AdeleState(cfg, 10, 255, tmp_path, load_run_data(cfg, src).train, list(src.classes), log=lambda m: None)
    state.detector = ScriptedDetector(10, {1: 7, 2: 12, 3: 15, 4: 24})
    done = {}
    state.correction_round = lambda epoch, net, dev, dist, classes: done.setdefault(epoch, classes) and {"round": 1, "pixels_changed": 0}
    for epoch in range(1, 41):
        state.after_epoch(epoch, np.eye(10, dtype=np.int64), None, torch.device("cpu"), state.dist)
    assert done == expected


def _round(tmp_path, overrides, original, current, store):
    """An AdeleState, ready for a correction round, on 2 training images whose original (noisy) and current labels
    are ``original`` / ``current`` (lists of (H, W) uint8) and whose prediction store reads ``store(i) -> (pred, conf)``
    ((H, W) uint8 each, conf as q = round(255 p))."""
    src = small_colin27(2, 2)
    cfg = load_config(None, ADELE + ["adele.correction.restart_from_original=false"] + overrides)
    data = load_run_data(cfg, src)
    for i in range(2):
        data.train.original[i][...] = original[i]
        data.train.labels[i][...] = current[i]
    state = AdeleState(cfg, 10, 255, tmp_path, data.train, list(src.classes), log=lambda m: None)

    class Store:
        def read(self, i):
            return store(i)

    state._store = Store()
    state.predict_train_set = lambda *a: None
    return state


def _bands(shape, *bands):
    """(H, W) uint8, zero but for rows [start, stop) set to class k for each (k, start, stop)."""
    lab = np.zeros(shape, np.uint8)
    for k, start, stop in bands:
        lab[start:stop] = k
    return lab


SHAPE = (56, 48)  # small_colin27's slices


def test_class_constraint_reads_the_current_labels(tmp_path):
    """Official SegTHOR: a class erased from a slice by an earlier round cannot come back in it; where the current
    labels still hold it, it may grow. The area guard is off: with it, the bug's extra area is rolled back and hides it."""
    c, d = 3, 5
    original = [_bands(SHAPE, (c, 0, 10)), _bands(SHAPE, (c, 0, 10), (d, 20, 30))]
    current = [np.zeros(SHAPE, np.uint8), original[1].copy()]  # an earlier round erased c from image 0
    pred = _bands(SHAPE, (c, 0, 20))  # c, surely, in rows 0-19 of both images; background elsewhere
    state = _round(tmp_path, ["adele.correction.guard_area=null"], original, current,
                   lambda i: (pred, np.full(SHAPE, 255, np.uint8)))
    info = state.correction_round(10, None, torch.device("cpu"), state.dist, [c])
    assert c not in state.train.labels[0]  # not invented where the current labels lack it (the original ones hold it)
    assert np.array_equal(state.train.labels[1], _bands(SHAPE, (c, 0, 20), (d, 20, 30)))  # grown where they hold it
    assert info["pixels_changed"] == 10 * SHAPE[1]


def test_area_guard_measures_against_the_noisy_labels_not_the_rounds_start(tmp_path):
    """correction.guard_area: a class's area after the round is compared with its area in the original (noisy)
    labels, not with the labels the round started from (an earlier round already moved both classes here)."""
    c1, c2 = 1, 2
    original = [_bands(SHAPE, (c1, 0, 20), (c2, 30, 50)), np.zeros(SHAPE, np.uint8)]
    current = [_bands(SHAPE, (c1, 0, 16), (c2, 30, 44)), np.zeros(SHAPE, np.uint8)]  # 0.8 and 0.7 x the noisy area
    # the round would leave c1 at 13 / 20 = 0.65 x its noisy area (13 / 16 = 0.81 x the round's start) and bring c2
    # back to 20 / 20 = 1.0 x (20 / 14 = 1.43 x the round's start)
    pred = [_bands(SHAPE, (c1, 0, 13), (c2, 30, 50)), np.zeros(SHAPE, np.uint8)]
    state = _round(tmp_path, ["adele.correction.guard_area=0.25"], original, current,
                   lambda i: (pred[i], np.full(SHAPE, 255, np.uint8)))
    info = state.correction_round(10, None, torch.device("cpu"), state.dist, [c1, c2])
    assert info["guard"] == {state.classes[c1]: 0.65}
    assert state.stopped == {c1}
    assert np.array_equal(state.train.labels[0], _bands(SHAPE, (c1, 0, 16), (c2, 30, 50)))  # c1 rolled back, c2 kept
    assert info["area_vs_noisy"][state.classes[c1]] == 0.8 and info["area_vs_noisy"][state.classes[c2]] == 1.0


def test_per_class_bars_come_from_the_predictions(tmp_path):
    """correction.class_share with bars_over=predicted: class k's bar is read from the confidences of the pixels the
    network PREDICTS as k (over the training set), not of the pixels labelled k."""
    from adele.core import class_thresholds, confidence_histogram

    rows, cols = np.indices(SHAPE)
    pred = [((cols + i) % 10).astype(np.uint8) for i in range(2)]  # every class predicted, in stripes
    conf = [(130 + 12 * p + rows % 5).astype(np.uint8) for p in pred]  # each class its own confidence range
    original = [_bands(SHAPE, (1, 0, 10), (4, 30, 40)), _bands(SHAPE, (2, 5, 25))]
    state = _round(tmp_path, ["adele.correction.class_share=0.5", "adele.correction.bars_over=predicted"], original,
                   [x.copy() for x in original], lambda i: (pred[i], conf[i]))
    info = state.correction_round(10, None, torch.device("cpu"), state.dist, [1, 2, 4])

    cor = state.a.correction

    def bars(maps):
        hist = sum(confidence_histogram(m, q, 10) for m, q in zip(maps, conf))
        return {n: round(float(t), 4) for n, t in zip(state.classes, class_thresholds(hist, 0.5, cor.tau_bg, cor.tau_fg))}

    assert info["thresholds"] == bars(pred)
    assert info["thresholds"] != bars(original)  # (the labels' confidences would give other bars)
    assert info["thresholds"][state.classes[9]] == round((130 + 12 * 9 + 2 - 0.5) / 255, 4)  # the median of 9's range


def test_bars_over_the_candidate_changes_rank_only_the_pixels_whose_label_differs(tmp_path):
    """correction.bars_over=changes: class k's bar is read from the pixels predicted k whose current label differs
    (and is not ignore), not from every pixel predicted k."""
    from adele.core import class_thresholds, confidence_histogram

    rows, cols = np.indices(SHAPE)
    pred = [((cols + i) % 10).astype(np.uint8) for i in range(2)]
    original = [_bands(SHAPE, (1, 0, 10), (4, 30, 40)), _bands(SHAPE, (2, 5, 25))]
    # the network is surer where it agrees with the labels (the interior), as on real data
    conf = [(100 + 12 * p + rows % 5 + 30 * (p == o)).astype(np.uint8) for p, o in zip(pred, original)]
    state = _round(tmp_path, ["adele.correction.class_share=0.5", "adele.correction.bars_over=changes"], original,
                   [x.copy() for x in original], lambda i: (pred[i], conf[i]))
    info = state.correction_round(10, None, torch.device("cpu"), state.dist, [1, 2, 4])
    cor = state.a.correction
    keep = [(p != o) & (o != 255) for p, o in zip(pred, original)]
    hist = sum(confidence_histogram(p[k], q[k], 10) for p, q, k in zip(pred, conf, keep))
    want = {n: round(float(t), 4) for n, t in zip(state.classes, class_thresholds(hist, 0.5, cor.tau_bg, cor.tau_fg))}
    every = sum(confidence_histogram(p, q, 10) for p, q in zip(pred, conf))
    assert info["thresholds"] == want
    assert want != {n: round(float(t), 4) for n, t in zip(state.classes, class_thresholds(every, 0.5, cor.tau_bg, cor.tau_fg))}


class Recorder(torch.nn.Module):
    """Logits that reveal the input: channel 0 = the image, channel 1 = its mirror image, channel 2 = 0."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.modes = []

    def forward(self, x):
        self.modes.append(self.training)
        return torch.cat([x * self.scale, x.flip(-1), torch.zeros_like(x)], 1)


def _softmax(*logits, t=1.0):
    return torch.stack(logits).div(t).softmax(0)


def test_multiscale_probs_restores_mode_and_undoes_flips():
    model = Recorder().train()
    x = torch.arange(12.0).view(1, 1, 3, 4) / 4
    p = multiscale_probs(model, x, hflip=True)
    assert model.training and model.modes == [False, False]  # eval for the views, train mode restored
    # the flipped view predicts (flip(x), x, 0) and is flipped back to (x, flip(x), 0): same as unflipped
    ref = _softmax(x[0, 0], x[0, 0].flip(-1), torch.zeros(3, 4))
    torch.testing.assert_close(p[0], ref)
    model.eval()
    multiscale_probs(model, x)
    assert not model.training


def test_multiscale_probs_temperature_and_the_two_averages():
    model = Recorder()
    x = torch.randn(2, 1, 4, 6, generator=torch.Generator().manual_seed(0)) * 3
    p = multiscale_probs(model, x, temperature=3.0)
    ref = torch.stack([x[:, 0], x.flip(-1)[:, 0], torch.zeros_like(x[:, 0])], 1).div(3.0).softmax(1)
    torch.testing.assert_close(p, ref)
    # two scales: each view's logits are resized back to (H, W); 'probs' averages softmaxes,
    # 'logits' averages logits before one softmax (official VOC)
    probs = multiscale_probs(model, x, scales=(1.0, 0.5), temperature=2.0, average="probs")
    logits = multiscale_probs(model, x, scales=(1.0, 0.5), temperature=2.0, average="logits")
    assert probs.shape == logits.shape == (2, 3, 4, 6)
    torch.testing.assert_close(probs.sum(1), torch.ones(2, 4, 6))
    torch.testing.assert_close(logits.sum(1), torch.ones(2, 4, 6))
    assert not torch.allclose(probs, logits)
    small = torch.nn.functional.interpolate(x, size=(2, 3), mode="bilinear", align_corners=False)
    views = [torch.cat([v, v.flip(-1), torch.zeros_like(v)], 1) for v in (x, small)]
    views = [views[0], torch.nn.functional.interpolate(views[1], size=(4, 6), mode="bilinear", align_corners=False)]
    torch.testing.assert_close(probs, sum((v / 2.0).softmax(1) for v in views) / 2)
    torch.testing.assert_close(logits, (sum(views) / 2 / 2.0).softmax(1))


@pytest.mark.parametrize("world,expected_dt", [(1, 3 / 2), (2, 3 / 1), (3, 3 / 1)])
def test_check_interval_counts_steps_per_process_under_torchrun(tmp_path, world, expected_dt):
    """8 images, batch 4 per process: 2 steps per epoch on one process, 1 on two or three (each takes ceil(8 / world))."""
    from adele.engine.distributed import DistInfo, steps_per_epoch

    src = small_colin27(8, 2)
    cfg = load_config(None, ADELE + ["adele.detection.every_steps=3"])
    data = load_run_data(cfg, src)
    state = AdeleState(cfg, 10, 255, tmp_path, data.train, list(src.classes), log=lambda m: None,
                       dist=DistInfo(rank=0, world_size=world))
    assert state.check_dt == pytest.approx(expected_dt)
    assert steps_per_epoch(8, 4, world) == {1: 2, 2: 1, 3: 1}[world]
    assert steps_per_epoch(10, 2, 3) == 2 and steps_per_epoch(1, 5, 4) == 1


@pytest.mark.parametrize("overrides,expected", [
    ([], 1 / 3),                                          # consistency on: the official raw-logit softmax
    (["adele.consistency.enabled=false"], 1.0),           # off: the official network trains on raw logits
    (["adele.correction.temperature=2.0"], 2.0),
])
def test_correction_pass_reads_the_official_logit_scale(tmp_path, monkeypatch, overrides, expected):
    import adele.engine.method as engine_adele
    src = small_colin27(2, 2)
    cfg = load_config(None, ADELE + overrides)
    state = AdeleState(cfg, 10, 255, tmp_path, load_run_data(cfg, src).train, list(src.classes), log=lambda m: None)
    seen = []

    def fake(model, images, scales, hflip, temperature, average):
        seen.append(temperature)
        return torch.full((images.shape[0], 10) + tuple(images.shape[-2:]), 0.1)

    monkeypatch.setattr(engine_adele, "multiscale_probs", fake)
    state.predict_train_set(torch.nn.Identity(), torch.device("cpu"), state.dist)
    assert seen and all(t == pytest.approx(expected) for t in seen)


def test_round_counts_image_by_image_equal_those_of_the_concatenated_labels():
    """A round's record (changes per class, pixels changed, change precision, the labels' Dice before and after) is
    accumulated image by image; it equals what the whole training set's labels, concatenated, give."""
    from adele.core.correction import change_precision, class_change_counts
    from adele.engine.method import _change_counts
    from adele.metrics import mean_dice

    rng = np.random.default_rng(0)
    shapes = [(7, 5), (4, 9), (6, 6)]  # images of different shapes, as a folder dataset has
    clean = [rng.integers(0, 4, s).astype(np.uint8) for s in shapes]
    clean[1][0, :3] = 255  # ignore pixels are left out of the precision and the Dice
    current = [np.where(rng.random(s) < 0.3, rng.integers(0, 4, s), c).astype(np.uint8) for s, c in zip(shapes, clean)]
    after = [np.where(rng.random(s) < 0.2, c, x).astype(np.uint8) for s, c, x in zip(shapes, clean, current)]
    counts, changed, prec, before, aft = _change_counts(current, after, current, clean, 4, 255)
    flat = [np.concatenate([x.ravel() for x in xs]) for xs in (current, after, clean)]
    whole = change_precision(*flat, 4, 255)
    assert counts.tolist() == class_change_counts(flat[0], flat[1], 4).tolist() and changed == int((flat[0] != flat[1]).sum()) > 0
    assert prec.overall == whole.overall and np.array_equal(prec.per_class, whole.per_class, equal_nan=True)
    assert before == mean_dice(flat[0], flat[2], 4, 255) and aft == mean_dice(flat[1], flat[2], 4, 255) and aft > before
    assert _change_counts(current, after, current, None, 4, 255)[2:] == (None, None, None)
