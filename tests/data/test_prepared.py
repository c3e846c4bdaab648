"""Splits prepared on disk (data.memory_budget_mb exceeded): the in-memory values bit for bit, the cache reused
while the source and the settings are unchanged and rebuilt otherwise, a one-line error when the disk is full."""
import os
import shutil
from collections import namedtuple

import numpy as np
import pytest
import torch

import adele.data.prepared as prepared
from adele.config import Config
from adele.data.dataset import PreparedSplit
from adele.errors import DatasetError
from adele.run import files
from adele.run.data import load_run_data
from adele.testing import make_dataset, small_colin27


def _cfg(path, cache, **extra) -> Config:
    return Config().replace(**{"data.path": str(path), "data.size": None, "data.memory_budget_mb": 0.0, "data.cache_dir": str(cache),
                               "train.batch_size": 2, **extra})


def _same_split(a: PreparedSplit, b: PreparedSplit) -> None:
    assert list(a.ids) == list(b.ids) and a.shapes == b.shapes and a.noise_events == b.noise_events
    for i in range(len(a)):
        x, y = a.images[i], b.images[i]
        assert x.dtype == y.dtype and torch.equal(x, y)
    for kind in ("labels", "original", "clean", "noisy"):
        u, v = getattr(a, kind), getattr(b, kind)
        assert (u is None) == (v is None), kind
        if u is not None:
            assert all(u[i].dtype == v[i].dtype == np.uint8 and np.array_equal(u[i], v[i]) for i in range(len(a))), kind


@pytest.mark.parametrize("extra", [
    {"data.noise": "final:target_area=100", "data.noise_seed": 3},  # noise drawn per image; val's noisy labels too
    {"data.normalize": "unit", "data.train_labels": "clean"},  # 8-bit images kept as uint8, normalized on access
    {"data.normalize": "imagenet", "data.size": (16, 12), "data.noise": "final:target_area=100", "data.val_labels": "noisy"},
])
def test_disk_split_equals_in_memory(tmp_path, extra):
    ds = make_dataset(tmp_path / "ds", n_train=5, clean=True)
    on_disk = load_run_data(_cfg(ds, tmp_path / "cache", **extra))
    in_memory = load_run_data(_cfg(ds, tmp_path / "cache", **extra, **{"data.memory_budget_mb": 1024.0}))
    assert on_disk.train.on_disk and not in_memory.train.on_disk
    for name in ("train", "val", "test"):
        _same_split(getattr(on_disk, name), getattr(in_memory, name))


def test_embedded_set_on_disk_equals_in_memory(tmp_path):
    src = small_colin27(n_train=6, n_eval=2)
    cfg = Config().replace(**{"data.size": (28, 24), "data.noise": "final:target_area=200", "data.memory_budget_mb": 0.0,
                              "data.cache_dir": str(tmp_path)})
    a, b = load_run_data(cfg, src), load_run_data(cfg.replace(**{"data.memory_budget_mb": 1024.0}), src)
    for name in ("train", "val", "test"):
        _same_split(getattr(a, name), getattr(b, name))


def test_default_budget_keeps_embedded_sets_in_memory():
    assert not load_run_data(Config(), small_colin27(n_train=4, n_eval=2)).train.on_disk


def _entries(cache):
    return sorted(p.name for p in cache.iterdir() if not p.name.startswith("."))


def test_cache_reused_when_unchanged_rebuilt_when_a_setting_or_file_changes(tmp_path, monkeypatch):
    ds = make_dataset(tmp_path / "ds", n_train=4)
    cache = tmp_path / "cache"
    writes = []
    write_split = prepared.write_split
    monkeypatch.setattr(prepared, "write_split", lambda tmp, src, split, *a, **k: writes.append(split) or write_split(tmp, src, split, *a, **k))
    load_run_data(_cfg(ds, cache))
    assert sorted(writes) == ["test", "train", "val"] and len(_entries(cache)) == 3
    writes.clear()
    load_run_data(_cfg(ds, cache, **{"train.threads": 1}))  # unchanged source, a setting that does not shape the data
    assert writes == []
    load_run_data(_cfg(ds, cache, **{"data.size": (16, 16)}))  # a shaping setting: every split anew
    assert sorted(writes) == ["test", "train", "val"]
    writes.clear()
    load_run_data(_cfg(ds, cache, **{"data.noise": "final:target_area=50"}))  # noise on train, and val's noisy labels
    assert sorted(writes) == ["train", "val"]
    writes.clear()
    lab_path = ds / "train" / "labels" / "im01.png"
    from adele.data.io import read_label, write_array

    lab = read_label(lab_path)
    lab[:2, :2] = 1 - np.minimum(lab[:2, :2], 1)
    write_array(lab_path, lab)
    os.utime(lab_path, ns=(1, 1))  # a different modification time, whatever the clock's resolution
    data = load_run_data(_cfg(ds, cache))
    assert writes == ["train"]
    assert np.array_equal(data.train.original[1], lab)


def test_full_disk_is_one_line_error_before_writing(tmp_path, monkeypatch):
    ds = make_dataset(tmp_path / "ds", n_train=4)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(prepared.shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(DatasetError, match=r"needs about .* GiB on disk, only .* free there; .*data\.cache_dir") as err:
        load_run_data(_cfg(ds, tmp_path / "cache"))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "cache").exists() or _entries(tmp_path / "cache") == []


def test_killed_preparation_leaves_no_entry(tmp_path, monkeypatch):
    ds = make_dataset(tmp_path / "ds", n_train=4)
    cache = tmp_path / "cache"

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepared, "write_split", boom)
    with pytest.raises(KeyboardInterrupt):
        load_run_data(_cfg(ds, cache))
    assert not any(p.is_dir() for p in cache.iterdir())


def test_labels_on_disk_written_through_and_saved_as_a_list_would_be(tmp_path):
    ds = make_dataset(tmp_path / "ds", n_train=3)
    train = load_run_data(_cfg(ds, tmp_path / "cache")).train
    with pytest.raises(TypeError):
        train.labels[0] = train.labels[0]  # the shared cache is read-only
    train.own_labels(files.current_labels_path(tmp_path / "run"))
    new = np.full(train.shapes[1], 2, np.uint8)
    train.set_label(1, new)
    assert np.array_equal(train.labels[1], new) and not np.array_equal(train.original[1], new)
    files.save_labels(train.labels, tmp_path / "a.npz")  # streamed
    as_list = [np.array(x) for x in train.labels]
    files.save_labels(as_list, tmp_path / "b.npz")
    for path in ("a.npz", "b.npz"):
        back = files.load_labels(tmp_path / path)
        assert all(np.array_equal(x, y) for x, y in zip(back, as_list))
        assert all(np.array_equal(x, y) for x, y in zip(files.iter_labels(tmp_path / path), as_list))


def test_flat_arrays_reopen_after_pickling(tmp_path):
    """DataLoader workers get the sequences pickled or forked: each opens its own descriptor."""
    import pickle

    ds = make_dataset(tmp_path / "ds", n_train=3)
    train = load_run_data(_cfg(ds, tmp_path / "cache")).train
    again = pickle.loads(pickle.dumps(train.images))
    assert torch.equal(again[2], train.images[2])
    shutil.rmtree(tmp_path / "ds")  # served from the cache alone
    assert torch.equal(again[0], train.images[0])


def test_volume_dataset_on_disk_equals_in_memory(tmp_path):
    """An nnU-Net folder of volumes, cut into slices by `adele data prepare volumes` (context channels from the slices
    beside each): the same slices, labels and noise from disk as in memory."""
    from adele.data.volumes import prepare_volumes
    from adele.testing import make_volume_dataset

    vols = make_volume_dataset(tmp_path / "Dataset001_Tiny", layout="nnunet", n_subjects=4, test_cases=1)
    src = tmp_path / "slices"
    prepare_volumes(vols, src, context=1, log=lambda m: None)
    extra = {"data.noise": "final:target_area=100", "data.noise_seed": 1}
    on_disk = load_run_data(_cfg(src, tmp_path / "cache", **extra))
    in_memory = load_run_data(_cfg(src, tmp_path / "cache", **extra, **{"data.memory_budget_mb": 1024.0}))
    assert on_disk.train.on_disk and not in_memory.train.on_disk and len(on_disk.train) > 10
    for name in ("train", "val", "test"):
        a, b = getattr(on_disk, name), getattr(in_memory, name)
        assert (a is None) == (b is None)
        if a is not None:
            _same_split(a, b)


def test_unwritable_cache_folder_is_one_line_error(tmp_path):
    """A cache folder that cannot be created (here under a file: refused even to root) names data.cache_dir."""
    ds = make_dataset(tmp_path / "ds", n_train=3, clean=True)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(DatasetError, match="set data.cache_dir to a writable folder") as err:
        load_run_data(_cfg(ds, tmp_path / "a-file" / "cache"))
    assert "\n" not in str(err.value)


def test_cache_command_lists_and_clears_entries_by_last_use(tmp_path, capsys):
    """`adele data cache`: the entries a run wrote, each with its size, images and last use (a run that reuses an
    entry marks it used); `clear --older-than` deletes those unused that long, `clear` the rest; a partial entry
    whose writer died goes, one whose writer runs (this process) or whose lock is held stays."""
    import fcntl
    import time

    from adele.cli import main
    from adele.data.cache import clear, list_entries

    ds = make_dataset(tmp_path / "ds", n_train=4)
    cache = tmp_path / "cache"
    load_run_data(_cfg(ds, cache))
    entries = {e.name.split("-")[-2]: e for e in list_entries(cache)}  # by split
    assert set(entries) == {"train", "val", "test"} and all(e.complete and e.bytes > 0 for e in entries.values())
    assert entries["train"].images == 4
    old = time.time() - 40 * 86400
    for e in entries.values():
        os.utime(e.path / "meta.json", (old, old))
    load_run_data(_cfg(ds, cache))  # reused: marked used now
    assert all(time.time() - e.last_used < 3600 for e in list_entries(cache))
    os.utime(entries["test"].path / "meta.json", (old, old))  # one entry left unused for 40 days
    dead = cache / f".{entries['val'].name}.tmp999999999"  # a writer killed mid-way (no such process)
    live = cache / f".{entries['val'].name}.tmp{os.getpid()}"  # one still writing
    for d in (dead, live):
        d.mkdir()
        (d / "images.bin").write_bytes(b"x" * 10)
    # folders that are not the cache's (a --cache-dir pointed at the wrong place): never listed, never deleted
    mine = cache / "my-results"
    mine.mkdir()
    (mine / "meta.json").write_text('{"ids": [1]}')
    (mine / "images.idx.npy").write_bytes(b"")
    notes = cache / ".notes.tmp1"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep")
    assert main(["data", "cache", "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "4 images" in out and "(partial: its writer died)" in out and "(being written)" in out and "5 entries" in out
    assert main(["data", "cache", "clear", "--older-than", "30", "--dry-run", "--cache-dir", str(cache)]) == 0
    assert "would delete 2 entries" in capsys.readouterr().out and dead.exists()
    assert main(["data", "cache", "clear", "--older-than", "30", "--cache-dir", str(cache)]) == 0
    assert not dead.exists() and live.exists() and not entries["test"].path.exists() and entries["train"].path.exists()
    with open(cache / f".{entries['train'].name}.lock", "a") as lock:  # an entry being (re)built keeps its lock
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert [e.name for e in clear(cache)] == [entries["val"].name]
    assert {e.path for e in list_entries(cache)} == {entries["train"].path, live}
    assert (mine / "meta.json").is_file() and (notes / "todo.txt").is_file()
    load_run_data(_cfg(ds, cache))  # a cleared entry is prepared again by the next run
    assert (entries["val"].path / "meta.json").is_file() and (entries["test"].path / "meta.json").is_file()
    assert main(["data", "cache", "list", "--older-than", "3", "--cache-dir", str(cache)]) != 0
    assert "go with `adele data cache clear`" in capsys.readouterr().err


def test_train_prepare_only_writes_the_cache_a_run_then_reuses(tmp_path, capsys):
    """`adele train --prepare-only`: the splits prepared as the run would (planned recipe, same settings), on disk when
    over data.memory_budget_mb; a training run with the same settings then reads those entries (none added); within
    the budget it says nothing was cached; no run folder is written, and without it --out is required."""
    from adele.cli import main
    from adele.data.cache import list_entries

    ds = make_dataset(tmp_path / "ds", n_train=4)
    cache = tmp_path / "cache"
    sets = ["--set", "data.memory_budget_mb=0", f"data.cache_dir={cache}", "train.epochs=1", "train.steps_per_epoch=1",
            "train.device=cpu", "model.width=4", "model.depth=2"]
    assert main(["train", "--data", str(ds), "--prepare-only", *sets]) == 0
    assert "on disk under" in capsys.readouterr().out
    before = {e.path: e for e in list_entries(cache)}
    assert len(before) == 3 and all(e.complete for e in before.values())
    assert main(["train", "--data", str(ds), "--out", str(tmp_path / "run"), *sets]) == 0
    assert {e.path for e in list_entries(cache)} == set(before)  # the run reused them
    assert main(["train", "--data", str(ds), "--prepare-only", "--set", f"data.cache_dir={tmp_path / 'c2'}"]) == 0
    assert "nothing was cached" in capsys.readouterr().out and not (tmp_path / "c2").exists()
    assert main(["train", "--data", str(ds)]) == 2
    assert "--out is required" in capsys.readouterr().err
    assert main(["train", "--data", str(ds), "--prepare-only", "--overwrite"]) == 2
    assert "--prepare-only writes no run" in capsys.readouterr().err
