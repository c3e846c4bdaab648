"""Two processes with torchrun (gloo, CPU) must match one process with the same global batch."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from adele.run.files import early_probs_path
from adele.run.files import load_labels

from adele.testing import make_dataset

SETTINGS = [
    "model.width=8", "model.depth=2", "model.norm=group", "data.size=null", "optim.name=adam", "optim.lr=0.01",
    "train.epochs=4", "train.eval_every=2", "train.device=cpu", "train.threads=1",
    "adele.detection.min_peak_iou=0.05", "adele.detection.min_rise=0", "adele.detection.trim_flat=null",
    "adele.detection.horizon=2", "adele.correction.every=1", "adele.correction.tau_bg=0.5", "adele.correction.tau_fg=0.5", "adele.consistency.every_steps=1",
    "train.steps_per_epoch=3",  # epochs of a fixed number of steps: the same images per step under any world size
]


def _train(data, out, nproc, batch, extra=()):
    env = dict(os.environ, OMP_NUM_THREADS="1", ADELE_NO_PROGRESS="1")
    args = ["-m", "adele", "train", "--data", str(data), "--method", "adele", "--out", str(out), "--batch-size", str(batch), "--no-plan",
            "--set", *SETTINGS, *extra]
    if nproc == 1:
        cmd = [sys.executable, *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_two_process_gloo_matches_one_process(tmp_path):
    data = make_dataset(tmp_path / "ds", n_train=8, n_val=2, n_test=2, size=(24, 20), clean=True)
    one = _train(data, tmp_path / "one", 1, 4)
    two = _train(data, tmp_path / "two", 2, 2)
    for split in ("val", "test"):
        for c, v in one[split]["dice"].items():
            w = two[split]["dice"][c]
            assert (v is None and w is None) or abs(v - w) < 1e-3, (split, c, v, w)
    assert [r["pixels_changed"] for r in one["adele"]["rounds"]] == [r["pixels_changed"] for r in two["adele"]["rounds"]]
    rounds = len(one["adele"]["rounds"])
    assert rounds > 0, "the comparison must cover a correction round"
    if rounds:
        a = load_labels(tmp_path / "one" / "labels" / f"round_{rounds:03d}.npz")
        b = load_labels(tmp_path / "two" / "labels" / f"round_{rounds:03d}.npz")
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
    # the label-quality snapshots: each process predicts its share, then they are summed
    qa, qb = np.load(early_probs_path(tmp_path / "one")), np.load(early_probs_path(tmp_path / "two"))
    np.testing.assert_array_equal(qa["epochs"], qb["epochs"])
    assert np.abs(qa["q"].astype(int) - qb["q"].astype(int)).max() <= 2  # the two weights differ in rounding only


@pytest.mark.slow
def test_two_processes_reading_the_data_from_disk_match_one_in_memory(tmp_path):
    """The prepared on-disk form under torchrun: written once (both ranks wait on one entry), each rank reads its own
    images and keeps its own current labels on disk; the rounds and scores equal one process holding the data in memory."""
    data = make_dataset(tmp_path / "ds", n_train=8, n_val=2, n_test=2, size=(24, 20), clean=True)
    one = _train(data, tmp_path / "one", 1, 4)
    cache = tmp_path / "cache"
    two = _train(data, tmp_path / "two", 2, 2, ["data.memory_budget_mb=0", f"data.cache_dir={cache}"])
    assert sum(1 for _ in cache.rglob("index*")) > 0 or any(cache.iterdir()), "the data must have been prepared on disk"
    for split in ("val", "test"):
        for c, v in one[split]["dice"].items():
            w = two[split]["dice"][c]
            assert (v is None and w is None) or abs(v - w) < 1e-3, (split, c, v, w)
    rounds = len(one["adele"]["rounds"])
    assert rounds > 0 and [r["pixels_changed"] for r in one["adele"]["rounds"]] == [r["pixels_changed"] for r in two["adele"]["rounds"]]
    a = load_labels(tmp_path / "one" / "labels" / f"round_{rounds:03d}.npz")
    b = load_labels(tmp_path / "two" / "labels" / f"round_{rounds:03d}.npz")
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert sorted(p.name for p in (tmp_path / "two" / "labels").glob("current.rank*")) == ["current.rank0.u8", "current.rank1.u8"]  # no working copy left


@pytest.mark.slow
def test_resume_across_world_size_change(tmp_path):
    """Epochs 1-2 with one process, 3-4 resumed with two: same result as one process throughout."""
    data = make_dataset(tmp_path / "ds", n_train=8, n_val=2, n_test=2, size=(24, 20), clean=True)
    one = _train(data, tmp_path / "one", 1, 4)
    env = dict(os.environ, OMP_NUM_THREADS="1", ADELE_NO_PROGRESS="1")
    base = ["-m", "adele", "train", "--data", str(data), "--method", "adele", "--out", str(tmp_path / "mixed"), "--no-plan"]
    first = subprocess.run([sys.executable, *base, "--batch-size", "4", "--set", *SETTINGS, "train.epochs=2"], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    second = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *base, "--resume",
                             "--batch-size", "2", "--set", *SETTINGS], env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    mixed = json.loads((tmp_path / "mixed" / "metrics.json").read_text())
    for c, v in one["test"]["dice"].items():
        w = mixed["test"]["dice"][c]
        assert (v is None and w is None) or abs(v - w) < 1e-3, (c, v, w)
