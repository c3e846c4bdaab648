import json

import numpy as np
import pytest
import torch

from adele.core.store import PredictionStore

SHAPES = [(3, 4), (5, 2), (6, 7)]


def random_probs(rng, c, h, w):
    logits = rng.normal(size=(c, h, w)) * 3
    e = np.exp(logits - logits.max(axis=0))
    return (e / e.sum(axis=0)).astype(np.float32)


def expected(probs):
    return probs.argmax(axis=0).astype(np.uint8), PredictionStore.quantize(probs.max(axis=0))


def test_round_trip_through_files(tmp_path):
    rng = np.random.default_rng(0)
    probs = [random_probs(rng, 5, h, w) for h, w in SHAPES]
    store = PredictionStore.create(tmp_path / "store", SHAPES)
    store.write(0, probs[0])
    store.write(1, torch.from_numpy(probs[1]))  # torch input
    store.write(2, probs[2])
    store.flush()
    del store

    reopened = PredictionStore.open(tmp_path / "store", mode="r")
    assert len(reopened) == 3 and reopened.shapes == SHAPES
    for i, p in enumerate(probs):
        pred, conf = reopened.read(i)
        want_pred, want_conf = expected(p)
        assert pred.dtype == np.uint8 and conf.dtype == np.uint8 and pred.shape == SHAPES[i]
        np.testing.assert_array_equal(pred, want_pred)
        np.testing.assert_array_equal(conf, want_conf)


def test_files_are_two_bytes_per_pixel(tmp_path):
    store = PredictionStore.create(tmp_path, SHAPES)
    total = sum(h * w for h, w in SHAPES)
    assert store.bytes_per_pixel == 2.0 and store.total_pixels == total
    assert (tmp_path / "pred.u8").stat().st_size == total
    assert (tmp_path / "conf.u8").stat().st_size == total
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["offsets"] == [0, 12, 22]


def test_write_batch_and_unwritten_images(tmp_path):
    rng = np.random.default_rng(1)
    store = PredictionStore.create(tmp_path, [(4, 4)] * 4)
    batch = np.stack([random_probs(rng, 3, 4, 4) for _ in range(2)])
    store.write_batch([3, 1], torch.from_numpy(batch))
    for i, p in zip([3, 1], batch):
        np.testing.assert_array_equal(store.read(i)[0], expected(p)[0])
    pred, conf = store.read(0)  # never written: class 0 with confidence 0 (never confident)
    assert not pred.any() and not conf.any()


def test_ties_go_to_the_lowest_class(tmp_path):
    store = PredictionStore.create(tmp_path, [(2, 2)])
    probs = np.array([[[0.2, 0.5], [0.4, 0.1]], [[0.4, 0.5], [0.2, 0.45]], [[0.4, 0.0], [0.4, 0.45]]])
    store.write(0, probs)
    assert store.read(0)[0].tolist() == probs.argmax(axis=0).tolist() == [[1, 0], [0, 1]]


def test_read_returns_copies(tmp_path):
    store = PredictionStore.create(tmp_path, [(2, 2)])
    store.write(0, np.array([[[0.9, 0.2], [0.3, 0.4]], [[0.1, 0.8], [0.7, 0.6]]]))
    pred, _ = store.read(0)
    pred[:] = 7
    assert store.read(0)[0].tolist() == [[0, 1], [1, 1]]


def test_quantize_dequantize():
    p = np.linspace(0, 1, 1001)
    q = PredictionStore.quantize(p)
    assert q.dtype == np.uint8 and q[0] == 0 and q[-1] == 255
    assert np.abs(PredictionStore.dequantize(q) - p).max() <= 0.5 / 255 + 1e-7
    assert PredictionStore.quantize(np.array([-0.1, 1.2])).tolist() == [0, 255]


def test_errors(tmp_path):
    store = PredictionStore.create(tmp_path / "s", [(2, 3)])
    with pytest.raises(ValueError, match="shape"):
        store.write(0, np.ones((2, 3, 2)) / 2)
    with pytest.raises(IndexError):
        store.read(1)
    with pytest.raises(FileNotFoundError, match="create"):
        PredictionStore.open(tmp_path / "missing")
    with pytest.raises(ValueError):
        PredictionStore.create(tmp_path / "e", [])
