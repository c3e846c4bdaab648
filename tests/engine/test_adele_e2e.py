import json

import numpy as np

from adele.config import load_config
from adele.engine import Trainer, load_run_data
from adele.run.files import load_labels, read_adele_log

from adele.testing import small_colin27
from test_train_e2e import FAST

ADELE = FAST + [
    "method=adele",
    "data.noise=final",
    "adele.detection.min_peak_iou=0.05",
    "adele.detection.min_rise=0.0",
    "adele.detection.trim_flat=null",
    "adele.detection.horizon=3",
    "adele.correction.every=1",
    "adele.correction.tau_fg=0.5",
    "adele.correction.tau_bg=0.5",
    "adele.consistency.every_steps=1",
]


def _trainer(cfg, run, data, resume=False):
    t = Trainer(cfg, run, data=load_run_data(cfg, data), log=lambda m: None)
    t.prepare_run_dir(resume=resume, overwrite=False)
    if resume:
        t.resume()
    return t


def test_adele_corrects_and_resumes_exactly(tmp_path):
    data = small_colin27(8, 4)
    cfg = load_config(None, ADELE + ["train.epochs=8"])
    full = _trainer(cfg, tmp_path / "full", data)
    res_full = full.fit()
    rounds = res_full["adele"]["rounds"]
    assert rounds, "a correction round must have happened"
    print([(r["epoch"], r["flagged"], r["pixels_changed"]) for r in rounds])
    first = next(r for r in rounds if r["pixels_changed"] > 0)
    assert 0 <= first["precision"] <= 1
    assert sum(first["changed_per_class"].values()) == first["pixels_changed"]
    # corrected labels live in the run folder; the originals are untouched
    saved = load_labels(tmp_path / "full" / "labels" / f"round_{len(rounds):03d}.npz")
    assert all(np.array_equal(a, b) for a, b in zip(saved, full.data.train.labels))
    assert any(not np.array_equal(a, b) for a, b in zip(full.data.train.labels, full.data.train.original))
    log = [json.loads(line) for line in (tmp_path / "full" / "adele_log.jsonl").read_text().splitlines()]
    assert len(log) == 8 and "classes" in log[0]

    # interrupt after the epoch of the first round, resume in a fresh process state
    stop = first["epoch"]
    part = _trainer(cfg.replace(**{"train.epochs": stop}), tmp_path / "part", data)
    part.fit()
    resumed = _trainer(cfg, tmp_path / "part", data, resume=True)
    assert resumed.method.round == sum(1 for r in rounds if r["epoch"] <= stop)
    res_resumed = resumed.fit()
    assert res_resumed["test"]["dice"] == res_full["test"]["dice"]
    assert res_resumed["adele"]["rounds"] == rounds
    assert all(np.array_equal(a, b) for a, b in zip(resumed.data.train.labels, full.data.train.labels))


def test_ablation_switches(tmp_path):
    data = small_colin27(4, 2)
    cfg = load_config(None, ADELE + ["train.epochs=2", "adele.correction.enabled=false", "adele.consistency.enabled=false"])
    t = _trainer(cfg, tmp_path / "r", data)
    res = t.fit()
    assert res["adele"]["rounds"] == []
    assert not (tmp_path / "r" / "labels").exists()
    assert all(np.array_equal(a, b) for a, b in zip(t.data.train.labels, t.data.train.original))
    assert all("consistency" not in row for row in t.history)  # the multi-scale term never ran
    on = _trainer(load_config(None, ADELE + ["train.epochs=1", "adele.consistency.mask=none"]), tmp_path / "on", data)
    on.fit()
    assert on.history[0]["consistency"] > 0


def test_detection_every_k_steps(tmp_path):
    data = small_colin27(8, 2)
    cfg = load_config(None, ADELE + ["train.epochs=3", "adele.detection.every_steps=1", "adele.detection.horizon=null"])
    t = _trainer(cfg, tmp_path / "k", data)
    t.fit()
    log = [json.loads(line) for line in (tmp_path / "k" / "adele_log.jsonl").read_text().splitlines()]
    # one decision per epoch, holding that epoch's IoU points (8 images / batch 4 = 2 steps per epoch)
    assert [r["epoch"] for r in log] == [1, 2, 3]
    assert [[c["step"] for c in r["checks"]] for r in log] == [[1, 2], [3, 4], [5, 6]]
    assert t.method.detector.history.shape == (6, 10)
    assert t.method.detector.settings["horizon"] == 3  # epochs, not checks
    assert t.method.detector.settings["dt"] == 0.5  # every_steps / steps per epoch


def test_official_voc_rule_and_loss_train_and_record_the_guard(tmp_path):
    data = small_colin27(6, 2)
    cfg = load_config(None, ADELE + ["train.epochs=4", "adele.correction.rule=voc", "adele.correction.classes=flagged",
                                     "adele.correction.restart_from_original=true", "adele.consistency.form=voc"])
    res = _trainer(cfg, tmp_path / "voc", data).fit()
    rounds = res["adele"]["rounds"]
    assert rounds and all("images_held" in r and r["corrected"] == r["flagged"] for r in rounds)
    assert any(r["pixels_changed"] > 0 for r in rounds)


def test_area_guard_stops_a_class_and_says_so(tmp_path):
    data = small_colin27(6, 2)
    cfg = load_config(None, ADELE + ["train.epochs=4", "adele.correction.guard_area=0.0001"])  # any change fires
    tr = _trainer(cfg, tmp_path / "g", data)
    res = tr.fit()
    rounds = res["adele"]["rounds"]
    fired = {name for r in rounds for name in r["guard"]}
    assert rounds and fired and set(res["adele"]["guard_stopped"]) == fired
    assert {tr.classes[k] for k in tr.method.stopped} == fired
    later = [r for r in rounds if r["epoch"] > min(res["adele"]["guard_stopped"].values())]
    assert all(not (set(r["corrected"]) & fired) for r in later)  # a stopped class is not corrected again
    # its changes were rolled back: its area stays that of the noisy labels
    k = next(iter(tr.method.stopped))
    assert sum(int((x == k).sum()) for x in tr.data.train.labels) == sum(int((x == k).sum()) for x in tr.data.train.original)
    # every round records each class's area against the noisy labels; a rolled-back class is back at 1.0
    assert all(r["area_vs_noisy"][tr.classes[k]] == 1.0 for r in rounds if tr.classes[k] in r["guard"])
    assert all(set(r["area_vs_noisy"]) <= set(tr.classes[1:]) for r in rounds)
    # and what the network predicted before it, per class: its area vs the labels and vs the truth, and the share of
    # each class it called background with confidence (the erasure's diagnostics)
    for r in rounds:
        assert set(r["predicted_area_vs_labels"]) == set(r["confident_background_share"]) <= set(tr.classes[1:])
        assert all(0 <= v <= 1 for v in r["confident_background_share"].values())
        assert all(v >= 0 for v in r["predicted_area_vs_clean"].values())
    assert all(len(e["train_area_ratio"]) == len(tr.classes) for e in read_adele_log(tmp_path / "g"))
    # the report says what the guard rolled back and shows each class's area against the noisy labels
    from adele.reporting.html import build_report

    page = build_report([tmp_path / "g"], tmp_path / "report", examples=0, log=lambda m: None).read_text()
    assert "area guard rolled back" in page and "x its noisy area" in page and "stopped: " in page
    assert "area in the given (noisy) labels" in page


def test_a_class_the_network_has_not_learned_is_not_corrected(tmp_path):
    """correction.min_learned: a round leaves alone the classes whose predicted area is below that share of their labels."""
    from adele.core import PredictionAreas
    from adele.engine.method import AdeleState

    data = small_colin27(6, 2)
    cfg = load_config(None, ADELE + ["train.epochs=4", "adele.correction.min_learned=0.5"])
    state = AdeleState(cfg, 10, 255, tmp_path / "u", load_run_data(cfg, data).train, list(data.classes), log=lambda m: None)
    seen = PredictionAreas(np.array([900, 100, 100, 100, 0, 100, 100, 100, 100, 100]),  # labelled
                           np.array([900, 10, 49, 50, 5, 200, 0, 100, 100, 100]),  # predicted
                           np.zeros(10, dtype=np.int64))
    assert state.not_learned(seen, [1, 2, 3, 4, 5, 6]) == {1: 0.1, 2: 0.49, 6: 0.0}  # 3 is at the bar; 4 has no label
    assert state.not_learned(seen, [3, 5]) == {}
    off = AdeleState(load_config(None, ADELE), 10, 255, tmp_path / "o", load_run_data(cfg, data).train, list(data.classes),
                     log=lambda m: None)
    assert off.not_learned(seen, [1, 2]) == {}  # null: as officially
    # in a run, every round says which of its classes were left alone, and corrects none of them
    res = _trainer(cfg, tmp_path / "l", data).fit()
    rounds = res["adele"]["rounds"]
    assert rounds and all("not_learned" in r and not set(r["not_learned"]) & set(r["corrected"]) for r in rounds)


def test_per_class_thresholds_are_used_and_recorded(tmp_path, monkeypatch):
    """correction.class_share: each round computes every class's bar from the store (recorded, never below tau) and
    the rule uses it; the config refuses nonsense."""
    import pytest

    import adele.engine.method as engine
    from adele.config import ConfigError
    from adele.core import confidence_histogram

    data = small_colin27(6, 2)
    plain = _trainer(load_config(None, ADELE + ["train.epochs=4"]), tmp_path / "p", data).fit()["adele"]["rounds"]
    assert sum(r["pixels_changed"] for r in plain) > 0
    share = 0.5
    # the bars over every predicted pixel (bars_over=changes ranks only the candidate changes: test_adele_science)
    cfg = load_config(None, ADELE + ["train.epochs=4", f"adele.correction.class_share={share}",
                                     "adele.correction.bars_over=predicted"])
    seen, real = [], engine.class_thresholds

    def bars(hist, share, tau_bg, tau_fg):  # the real bars, recorded; then one no pixel of this small net reaches
        seen.append((hist.copy(), real(hist, share, tau_bg, tau_fg)))
        return np.full(hist.shape[0], 0.999)

    monkeypatch.setattr(engine, "class_thresholds", bars)
    tr = _trainer(cfg, tmp_path / "t", data)
    rounds = tr.fit()["adele"]["rounds"]
    assert len(rounds) == len(plain) == len(seen)
    assert all(r["pixels_changed"] == 0 and set(r["thresholds"].values()) == {0.999} for r in rounds)
    for hist, tau in seen:  # the histogram covers every training pixel; the bars are the share's, never below tau
        assert hist.shape == (len(data.classes), 256) and hist.sum() == sum(x.size for x in load_run_data(cfg, data).train.labels)
        bar = np.floor(tau * 255).astype(int)  # a pixel predicted k passes when its q > bar[k] (the rule on the store)
        for k, h in enumerate(hist):
            if tau[k] > 0.5:  # the share's bar: the class's top share passes, and no higher bar lets that share through
                assert h[bar[k] + 1:].sum() >= share * h.sum() > h[bar[k] + 2:].sum()
            else:  # tau (0.5): no higher bar lets the share through (or the class is never predicted)
                assert h.sum() == 0 or h[129:].sum() < share * h.sum()
    # the last round's histogram is that of the predictions it read (the store keeps them): the pixels the network
    # predicts as each class, not those labelled so
    store = tr.method.store
    assert np.array_equal(seen[-1][0], sum(confidence_histogram(*store.read(i), len(data.classes)) for i in range(len(tr.data.train))))
    for bad in (["adele.correction.class_share=0"], ["adele.correction.class_share=1.5"]):
        with pytest.raises(ConfigError, match="class_share"):
            load_config(None, ADELE + bad)
