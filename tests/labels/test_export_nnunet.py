"""`adele export-labels --suspects ignore`: the corrected labels as an nnU-Net raw dataset, suspect pixels as its ignore label."""
import json

import nibabel as nib
import numpy as np
import pytest

from adele.cli import main
from adele.data import read_label
from adele.data.dataset import resize_label
from adele.data.io import _read_raw
from adele.data.volumes import label_slices, read_volume, slices_to_volume
from adele.testing import add_nnunet_ignore, make_volume_dataset

from adele.testing import ADELE_FORCED

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_VOL = ["train.epochs=1", "data.size=[16,16]", "model.width=4", "model.depth=2", "train.device=cpu", "train.batch_size=8"]


def _export(run, out, *extra):
    assert main(["export-labels", str(run), "--out", str(out), "--device", "cpu", *extra]) == 0
    return out


def _both_exports(run, root, name):
    """The default export and the nnU-Net one of ``run``. A tiny run is too unsure to flag any pixel, so a block of every
    training image is added to the suspects the run found (the same in both exports: suspect/ shows it)."""
    import adele.labels.export as export

    real = export.rank_given_labels

    def rank(*args, **kwargs):
        q = real(*args, **kwargs)
        q["suspect"] = [m.copy() for m in q["suspect"]]
        for m in q["suspect"]:
            m[4:9, 5:12] = True
        return q

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(export, "rank_given_labels", rank)
        return _export(run, root / "keep"), _export(run, root / name, "--suspects", "ignore")


def _listing(out):
    return {d: sorted(p.name for p in (out / d).iterdir()) for d in ("imagesTr", "labelsTr")}


# ----------------------------------------------------------------------------- 2D


@pytest.fixture(scope="module")
def export2d(tiny_run, tmp_path_factory):
    run = tiny_run(*ADELE_FORCED)
    return (run, *_both_exports(run, tmp_path_factory.mktemp("nn2d"), "Dataset500_Fixed"))


def test_2d_layout_and_dataset_json(export2d, small_colin27_dir):
    run, keep, out = export2d
    info = json.loads((run / "run.json").read_text())
    ids, classes = sorted(info["train_ids"]), info["classes"]
    assert _listing(out) == {"imagesTr": [f"{i}_0000.png" for i in ids], "labelsTr": [f"{i}.png" for i in ids]}
    assert {p.name for p in out.iterdir() if not p.name.startswith(".")} == {"imagesTr", "labelsTr", "dataset.json", "README.md",
                                                                            "label_quality.csv"}
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["labels"] == {**{c: i for i, c in enumerate(classes)}, "ignore": len(classes)}
    assert meta["channel_names"] == {"0": "image"} and meta["numTraining"] == len(ids) and meta["file_ending"] == ".png"
    # the images are the source images, at their own size
    for i in ids:
        np.testing.assert_array_equal(_read_raw(out / "imagesTr" / f"{i}_0000.png"), _read_raw(small_colin27_dir / "train" / "images" / f"{i}.png"))
    readme = (out / "README.md").read_text()
    assert "source image's own size" in readme and "ignore label **10**" in readme


def test_2d_labels_are_the_corrected_labels_with_suspects_as_ignore(export2d):
    run, keep, out = export2d
    ignore = len(json.loads((run / "run.json").read_text())["classes"])
    n_suspect = 0
    for p in sorted((out / "labelsTr").iterdir()):
        lab = read_label(p)
        corrected = read_label(keep / "original" / "labels" / p.name)  # the corrected labels at the source size
        suspect = resize_label((read_label(keep / "suspect" / p.name) == 255).astype(np.uint8), corrected.shape).astype(bool)
        assert lab.shape == corrected.shape == (217, 181) and set(np.unique(lab)) <= set(range(ignore + 1))
        assert (lab[suspect] == ignore).all()
        np.testing.assert_array_equal(lab[~suspect], np.where(corrected == 255, ignore, corrected)[~suspect])
        n_suspect += int(suspect.sum())
    assert n_suspect > 0, "the test needs suspect pixels"


def test_2d_round_trip_through_evaluate_reads_the_ignore_label(export2d, tmp_path):
    """`adele evaluate` reads the folder's dataset.json: the ignore label is not counted, every other pixel is the corrected label."""
    run, keep, out = export2d
    summary = tmp_path / "summary.json"
    assert main(["evaluate", str(keep / "original" / "labels"), str(out / "labelsTr"), "--out", str(summary)]) == 0
    s = json.loads(summary.read_text())
    assert s["ignore_index"] == 10 and s["num_cases"] == len(list((out / "labelsTr").iterdir()))
    assert all(m["FP"] == 0 and m["FN"] == 0 for case in s["metric_per_case"] for m in case["metrics"].values())


# ----------------------------------------------------------------------------- volumes


@pytest.fixture(scope="module")
def export3d(tmp_path_factory):
    """An nnU-Net source with an ignore label -> prepare -> a tiny run -> both exports."""
    from adele.config import load_config
    from adele.engine import Trainer

    root = tmp_path_factory.mktemp("nn3d")
    src = add_nnunet_ignore(make_volume_dataset(root / "Dataset001_Tiny", layout="nnunet", n_subjects=6, seed=3))
    assert main(["data", "prepare", "volumes", str(src), str(root / "prep"), "--size", "16", "16"]) == 0
    cfg = load_config(None, TINY_VOL + [f"data.path={root / 'prep'}"])
    tr = Trainer(cfg, root / "run", log=lambda m: None)
    tr.prepare_run_dir(resume=False, overwrite=True)
    tr.fit()
    return (src, root / "prep", *_both_exports(root / "run", root, "Dataset501_Fixed"))


def test_volume_layout_dataset_json_and_images(export3d):
    src, prep, keep, out = export3d
    idx = json.loads((prep / "volumes.json").read_text())
    subjects = sorted(s for s, r in idx["subjects"].items() if r["split"] == "train")
    assert _listing(out) == {"imagesTr": [f"{s}_0000.nii.gz" for s in subjects], "labelsTr": [f"{s}.nii.gz" for s in subjects]}
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "left_blob": 1, "right_blob": 2, "ignore": 3}
    assert meta["channel_names"] == {"0": "T1"} and meta["numTraining"] == len(subjects) and meta["file_ending"] == ".nii.gz"
    for s in subjects:  # the source volumes, byte for byte
        assert (out / "imagesTr" / f"{s}_0000.nii.gz").read_bytes() == (src / "imagesTr" / f"{s}_0000.nii.gz").read_bytes()
    assert "voxel grid" in (out / "README.md").read_text()


def test_volume_labels_are_the_corrected_volumes_with_suspects_as_ignore(export3d):
    src, prep, keep, out = export3d
    idx = json.loads((prep / "volumes.json").read_text())
    axis = idx["spec"]["axis"]
    n_suspect = 0
    for s, rec in ((s, r) for s, r in idx["subjects"].items() if r["split"] == "train"):
        exported = nib.load(out / "labelsTr" / f"{s}.nii.gz")
        given = nib.load(src / "labelsTr" / f"{s}.nii.gz")
        assert exported.shape == given.shape and np.allclose(exported.affine, given.affine)
        lab = np.asarray(exported.dataobj)
        corrected = read_volume(keep / "original" / "labels" / f"{s}.nii.gz", "label")
        ornt = np.asarray(rec["ornt"])
        mask = np.zeros(label_slices(corrected, ornt, axis).shape, np.uint8)
        for sid, k in rec["slices"].items():
            mask[k] = resize_label((read_label(keep / "suspect" / f"{sid}.png") == 255).astype(np.uint8), mask.shape[1:])
        suspect = slices_to_volume(mask, ornt, axis).astype(bool)
        assert set(np.unique(lab)) <= {0, 1, 2, 3} and (lab[suspect] == 3).all()
        np.testing.assert_array_equal(lab[~suspect], np.where(corrected.data == 255, 3, corrected.data)[~suspect])
        assert (lab[np.asarray(given.dataobj) == 3] == 3).all()  # the source's own ignore voxels stay ignore
        n_suspect += int(suspect.sum())
    assert n_suspect > 0, "the test needs suspect voxels"


def test_volume_round_trip_through_prepare_volumes(export3d, tmp_path, capsys):
    src, prep, keep, out = export3d
    back = tmp_path / "back"
    assert main(["data", "prepare", "volumes", str(out), str(back)]) == 0
    assert "3 is nnU-Net's ignore label" in capsys.readouterr().out
    assert json.loads((back / "dataset.json").read_text())["classes"] == ["background", "left_blob", "right_blob"]
    idx = json.loads((back / "volumes.json").read_text())
    n_ignore = 0
    for s, rec in idx["subjects"].items():
        sl = label_slices(read_volume(out / "labelsTr" / f"{s}.nii.gz", "label"), np.asarray(rec["ornt"]), idx["spec"]["axis"])
        for sid, k in rec["slices"].items():
            lab = read_label(back / rec["split"] / "labels" / f"{sid}.png")
            np.testing.assert_array_equal(lab, np.where(sl[k] == 3, 255, sl[k]))
            n_ignore += int((lab == 255).sum())
    assert n_ignore > 0


def test_2d_pixels_ignored_in_the_source_become_the_ignore_label(tiny_run, small_colin27_dir, tmp_path):
    """255 in the labels given (adele's ignore) is written as nnU-Net's ignore label, C."""
    import shutil

    data = tmp_path / "c27ignore"
    shutil.copytree(small_colin27_dir, data)
    first = sorted((data / "train" / "labels").iterdir())[0]
    lab = read_label(first)
    lab[100:120, 60:90] = 255
    from adele.data.io import write_array

    write_array(first, lab)
    run = tiny_run(f"data.path={data}", "train.epochs=1", "data.noise=null")  # the labels as given, not synthetic noise
    out = _export(run, tmp_path / "nn", "--suspects", "ignore")
    got = read_label(out / "labelsTr" / first.name)
    assert (got[100:120, 60:90] == 10).all() and set(np.unique(got)) <= set(range(11))


def test_png_channels_keep_the_values():
    from adele.errors import DatasetError
    from adele.labels.nnunet_dataset import _png_channels

    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (5, 4)).astype(np.uint8)
    (a,) = _png_channels(u8.astype(np.float32) / 255, "x")
    assert a.dtype == np.uint8 and np.array_equal(a, u8)
    u16 = rng.integers(0, 65536, (5, 4)).astype(np.uint16)
    (b,) = _png_channels(u16.astype(np.float32) / 65535, "x")
    assert b.dtype == np.uint16 and np.array_equal(b, u16)
    (rgb,) = _png_channels(np.stack([u8] * 3, -1).astype(np.float32) / 255, "x")
    assert rgb.shape == (5, 4, 3) and rgb.dtype == np.uint8
    two = _png_channels(np.stack([u8, u8], -1).astype(np.float32) / 255, "x")
    assert len(two) == 2 and all(np.array_equal(t, u8) for t in two)
    with pytest.raises(DatasetError, match=r"x: image values -1\.\.2 lie outside \[0, 1\]"):
        _png_channels(np.array([[-1.0, 2.0]], np.float32), "x")


def test_nnunet_labels_follow_nnunets_rules():
    from adele.data.nnunet import nnunet_labels
    from adele.errors import DatasetError

    assert nnunet_labels(["bg", "liver"], ignore=True) == {"background": 0, "liver": 1, "ignore": 2}
    with pytest.raises(DatasetError, match=r"^data/x/dataset.json: class 1 is named 'ignore'"):
        nnunet_labels(["background", "ignore"], True, "data/x/dataset.json")
