"""SIGKILL at the worst moments, then --resume: the result equals an uninterrupted run."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from adele.run.files import early_probs_path
from adele.run.files import load_labels
from adele.run.files import list_checkpoints

from adele.testing import make_dataset
from test_distributed import SETTINGS

ARGS = ["--method", "adele", "--batch-size", "4", "--set", *SETTINGS, "train.epochs=5"]


CRASHRUN = os.path.join(os.path.dirname(__file__), "crashrun.py")


def _cmd(data, out, resume=False, crash_at=None, disk=None):
    """``disk``: a cache folder; the dataset is then prepared on disk (``data.memory_budget_mb=0``) and the run's
    labels live in labels/current.rank0.u8."""
    prefix = [sys.executable, CRASHRUN, crash_at] if crash_at else [sys.executable, "-m", "adele"]
    args = ARGS + ([f"data.memory_budget_mb=0", f"data.cache_dir={disk}"] if disk else [])
    return prefix + ["train", "--data", str(data), "--out", str(out), *args] + (["--resume"] if resume else [])


def _env(**extra):
    return dict(os.environ, OMP_NUM_THREADS="1", ADELE_NO_PROGRESS="1", **extra)


def _final(out):
    metrics = json.loads((out / "metrics.json").read_text())
    rounds = metrics["adele"]["rounds"]
    labels = load_labels(out / "labels" / f"round_{len(rounds):03d}.npz") if rounds else None
    return metrics, labels, np.load(early_probs_path(out))["q"]


def _same(a, b):
    (ma, la, qa), (mb, lb, qb) = a, b
    assert np.array_equal(qa, qb)  # the label-quality average too
    assert ma["test"]["dice"] == mb["test"]["dice"]
    assert ma["adele"]["rounds"] == mb["adele"]["rounds"]
    assert (la is None) == (lb is None)
    if la is not None:
        assert all(np.array_equal(x, y) for x, y in zip(la, lb))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash")
    data = make_dataset(root / "ds", n_train=8, n_val=2, n_test=2, size=(24, 20), clean=True)
    out = root / "ref"
    subprocess.run(_cmd(data, out), env=_env(), check=True, capture_output=True, timeout=300)
    ref = _final(out)
    assert ref[0]["adele"]["rounds"], "the reference run must make correction rounds"
    return data, ref


@pytest.mark.slow
@pytest.mark.parametrize("point", ["batch:2", "correction:{round_epoch}", "checkpoint:3"])
def test_kill_and_resume_equals_uninterrupted(reference, tmp_path, point):
    data, ref = reference
    round_epoch = ref[0]["adele"]["rounds"][-1]["epoch"]
    point = point.format(round_epoch=round_epoch)
    out = tmp_path / "run"
    crashed = subprocess.run(_cmd(data, out, crash_at=point), env=_env(), capture_output=True, timeout=300)
    assert crashed.returncode == -9, f"expected SIGKILL at {point}"
    assert not (out / "metrics.json").exists()
    done = subprocess.run(_cmd(data, out, resume=True), env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    _same(_final(out), ref)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["correction:{round_epoch}", "batch:{after_round}"])
def test_on_disk_kill_and_resume_equals_in_memory(reference, tmp_path, point):
    """The dataset served from disk, the current labels in the run folder: killed in a round (the labels file
    rewritten, the round's npz not saved) or in the epoch after it, then resumed: the in-memory run's result."""
    data, ref = reference
    round_epoch = ref[0]["adele"]["rounds"][-1]["epoch"]
    point = point.format(round_epoch=round_epoch, after_round=min(round_epoch + 1, 5))
    out, cache = tmp_path / "run", tmp_path / "cache"
    crashed = subprocess.run(_cmd(data, out, crash_at=point, disk=cache), env=_env(), capture_output=True, timeout=300)
    assert crashed.returncode == -9, f"expected SIGKILL at {point}: {crashed.stderr[-2000:]}"
    assert (out / "labels" / "current.rank0.u8").is_file() and list(cache.iterdir())
    done = subprocess.run(_cmd(data, out, resume=True, disk=cache), env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    _same(_final(out), ref)


@pytest.mark.slow
def test_kill_at_random_moments(reference, tmp_path):
    data, ref = reference
    out = tmp_path / "run"
    rng = np.random.default_rng(0)
    proc = subprocess.Popen(_cmd(data, out), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for attempt in range(20):
        time.sleep(float(rng.uniform(0.5, 4.0)))
        if proc.poll() is not None:
            break
        proc.kill()
        proc.wait()
        if not list_checkpoints(out):  # killed before the first checkpoint: start again
            proc = subprocess.Popen(_cmd(data, out) + ["--overwrite"], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            proc = subprocess.Popen(_cmd(data, out, resume=True), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert proc.wait(timeout=300) == 0
    _same(_final(out), ref)


@pytest.mark.slow
def test_truncated_checkpoint_falls_back_to_previous(reference, tmp_path):
    data, ref = reference
    out = tmp_path / "run"
    crashed = subprocess.run(_cmd(data, out, crash_at="batch:4"), env=_env(), capture_output=True, timeout=300)
    assert crashed.returncode == -9
    ckpts = list_checkpoints(out)
    assert [e for e, _ in ckpts][-1] == 3
    path = ckpts[-1][1]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    done = subprocess.run(_cmd(data, out, resume=True), env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "unreadable checkpoint" in done.stderr
    _same(_final(out), ref)
