"""Volumes end to end: prepare (generic and nnU-Net layouts) -> tiny training -> predict volumes -> export labels in native space."""
import csv
import json

import nibabel as nib
import numpy as np
import pytest
import torch

from adele.cli import main
from adele.data.volumes import read_volume, to_canonical, to_slices
from adele.errors import DatasetError
from adele.testing import make_volume_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["train.epochs=1", "data.size=[16,16]", "model.width=4", "model.depth=2", "train.device=cpu", "train.batch_size=8"]
HEADER_FIELDS = ("dim", "pixdim", "qform_code", "sform_code", "srow_x", "srow_y", "srow_z", "quatern_b", "quatern_c", "quatern_d",
                 "qoffset_x", "qoffset_y", "qoffset_z", "xyzt_units")


def _train(data, out, *extra):
    from adele.config import load_config
    from adele.engine import Trainer

    cfg = load_config(None, TINY + [f"data.path={data}", *extra])
    tr = Trainer(cfg, out, log=lambda m: None)
    tr.prepare_run_dir(resume=False, overwrite=True)
    tr.fit()
    return out


@pytest.fixture(scope="module")
def generic(tmp_path_factory):
    """Generic layout, noisy labels beside the originals; trained on the clean reference (no correction)."""
    root = tmp_path_factory.mktemp("generic")
    src = make_volume_dataset(root / "src", noisy=True, seed=1)
    assert main(["data", "prepare", "volumes", str(src), str(root / "prep"), "--size", "20", "20"]) == 0
    return src, root / "prep", _train(root / "prep", root / "run", "data.train_labels=clean")


@pytest.fixture(scope="module")
def nnunet(tmp_path_factory):
    """nnU-Net layout, two channels, one neighbour slice per side as context, imagesTs for prediction."""
    root = tmp_path_factory.mktemp("nnunet")
    src = make_volume_dataset(root / "Dataset001_Tiny", layout="nnunet", channels=2, test_cases=2, seed=2)
    assert main(["data", "prepare", "volumes", str(src), str(root / "prep"), "--context", "1"]) == 0
    return src, root / "prep", _train(root / "prep", root / "run")


def _same_grid_and_header(out_path, ref_path):
    a, b = nib.load(out_path), nib.load(ref_path)
    assert a.shape == b.shape
    np.testing.assert_allclose(a.affine, b.affine)
    for f in HEADER_FIELDS:
        np.testing.assert_array_equal(a.header[f], b.header[f], err_msg=f)


def _dice(a, b, classes):
    return np.mean([2 * ((a == c) & (b == c)).sum() / max(1, (a == c).sum() + (b == c).sum()) for c in classes])


@pytest.mark.parametrize("layout", ["generic", "nnunet"])
def test_predict_volume_on_its_own_grid(layout, generic, nnunet, tmp_path, capsys):
    src, prep, run = generic if layout == "generic" else nnunet
    inp = src / "imagesTs" if layout == "nnunet" else src / "images" / "sub04.nii.gz"
    out = tmp_path / "masks"
    assert main(["predict", str(run), "--input", str(inp), "--out", str(out), "--probs", "--device", "cpu"]) == 0
    assert "back on each input's grid" in capsys.readouterr().out
    if layout == "nnunet":
        assert sorted(p.name for p in out.glob("*.nii.gz")) == ["test00.nii.gz", "test01.nii.gz"]  # channels -> one case
        ref = src / "imagesTs" / "test00_0000.nii.gz"
        mask_path = out / "test00.nii.gz"
    else:
        ref, mask_path = inp, out / "sub04.nii.gz"
    _same_grid_and_header(mask_path, ref)
    mask = nib.load(mask_path)
    assert mask.get_data_dtype() == np.uint8 and np.asarray(mask.dataobj).max() < 3
    probs = np.load(out / "probs" / (mask_path.name[:-7] + ".npy"))
    assert probs.shape == (3, *mask.shape)


def test_predict_averages_the_probabilities_of_several_runs(nnunet, tmp_path, capsys):
    """nnU-Net's fold ensembling: several runs given to predict -> the mean of their probabilities, its argmax as the mask."""
    src, prep, run = nnunet
    other = _train(prep, tmp_path / "run2", "train.seed=1")
    outs = {}
    for name, runs in (("a", [run]), ("b", [other]), ("ab", [run, other])):
        assert main(["predict", *map(str, runs), "--input", str(src / "imagesTs"), "--out", str(tmp_path / name), "--probs", "--device", "cpu"]) == 0
        outs[name] = np.load(tmp_path / name / "probs" / "test00.npy").astype(np.float32)
    assert "ensemble of 2 runs" in capsys.readouterr().out
    assert not np.allclose(outs["a"], outs["b"], atol=1e-2)  # two different models
    np.testing.assert_allclose(outs["ab"], (outs["a"] + outs["b"]) / 2, atol=2e-3)  # float16 files
    mask = np.asarray(nib.load(tmp_path / "ab" / "test00.nii.gz").dataobj)
    agree = (mask == outs["ab"].argmax(0)).mean()
    assert agree > 0.999  # ties within float16 rounding aside
    # runs that do not predict the same classes from the same inputs are refused
    wide = _train(prep, tmp_path / "run3", "data.size=[20,20]")
    assert main(["predict", str(run), str(wide), "--input", str(src / "imagesTs"), "--out", str(tmp_path / "bad"), "--device", "cpu"]) == 2
    assert "data.size" in capsys.readouterr().err and not (tmp_path / "bad").exists()


@pytest.mark.parametrize("layout", ["generic", "nnunet"])
def test_predicted_volume_equals_the_model_on_the_prepared_slices(layout, generic, nnunet):
    """predict repeats the training data's steps exactly: slice k of the mask, taken back to the slicing frame, is the model's
    argmax on the prepared training slice k, resized to the native in-plane size."""
    from adele.data import read_image
    from adele.data.volumes import VolumeSpec
    from adele.predict_files import _to_model_input, predict_volume
    from adele.probabilities import predict_probs
    from adele.run import RunFolder

    src, prep, run = generic if layout == "generic" else nnunet
    idx = json.loads((prep / "volumes.json").read_text())
    subject, rec = next((s, r) for s, r in idx["subjects"].items() if r["split"] == "train")
    spec = VolumeSpec.from_dict(idx["spec"])
    lm = RunFolder.open(run).model("cpu")
    mask, _ = predict_volume(lm, rec["images"], spec)
    back = to_slices(to_canonical(mask, np.asarray(rec["ornt"])), spec.axis)
    for sid, k in list(rec["slices"].items())[:4]:
        img = read_image(prep / "train" / "images" / f"{sid}.npy")
        x = _to_model_input(img, lm, prep)[None]
        expect = predict_probs(lm.model, x, rec["native_hw"]).argmax(1)[0].numpy()
        np.testing.assert_array_equal(back[k], expect)


@pytest.mark.parametrize("layout", ["generic", "nnunet"])
def test_export_labels_round_trip_is_exact_without_correction(layout, generic, nnunet, tmp_path):
    src, prep, run = generic if layout == "generic" else nnunet
    out = tmp_path / "export"
    assert main(["export-labels", str(run), "--out", str(out), "--device", "cpu"]) == 0
    idx = json.loads((prep / "volumes.json").read_text())
    train_subjects = sorted(s for s, r in idx["subjects"].items() if r["split"] == "train")
    assert sorted(p.name[:-7] for p in (out / "original" / "labels").iterdir()) == train_subjects
    # the generic run trained on the clean reference (labels/), the nnU-Net run on labelsTr/
    lab_dir = src / ("labels" if layout == "generic" else "labelsTr")
    for s in train_subjects:
        exp, orig = out / "original" / "labels" / f"{s}.nii.gz", lab_dir / f"{s}.nii.gz"
        _same_grid_and_header(exp, orig)
        a, b = np.asarray(nib.load(exp).dataobj), np.asarray(nib.load(orig).dataobj)
        assert _dice(a, b, (1, 2)) == 1.0 and np.array_equal(a, b)
        assert nib.load(exp).header["descrip"] == nib.load(orig).header["descrip"]
    rows = list(csv.DictReader((out / "label_quality_subjects.csv").open()))
    assert sorted(r["subject"] for r in rows) == train_subjects and all(int(r["changed_voxels"]) == 0 for r in rows)
    per_slice = list(csv.DictReader((out / "label_quality.csv").open()))
    assert {r["subject"] for r in per_slice} == set(train_subjects)
    assert all(r["id"] == f"{r['subject']}_z{int(r['slice']):03d}" for r in per_slice)
    # splits of the prepared data never share a subject
    owners = {}
    for split in ("train", "val", "test"):
        for f in (prep / split / "images").iterdir():
            owners.setdefault(f.name.rsplit("_z", 1)[0], set()).add(split)
    assert all(len(v) == 1 for v in owners.values())


def test_corrections_land_on_the_native_grid():
    """Only the pixels the correction changed (resized nearest) replace the source labels; all others stay as given."""
    from adele.labels.source_space import corrected_in_original

    base = np.zeros((40, 30), np.uint8)
    base[10:30, 5:20] = 1
    initial = np.zeros((20, 15), np.uint8)
    initial[5:15, 2:10] = 1
    final = initial.copy()
    final[0:4, 10:15] = 2  # the correction adds a region of class 2
    out = corrected_in_original(base, initial, final, synthetic_noise=False)
    assert (out[0:8, 20:30] == 2).all() and (out[8:, :] == base[8:, :]).all() and (out[:, :20] == base[:, :20]).all()
    np.testing.assert_array_equal(corrected_in_original(base, initial, initial, False), base)


def test_python_api_on_a_volume_run(nnunet):
    import adele

    src, prep, run = nnunet
    r = adele.load_run(run, device="cpu")
    assert r.classes == ["background", "left_blob", "right_blob"] and r.volume_spec.context == 1
    m = r.predict_file(src / "imagesTs" / "test01_0000.nii.gz")  # the T2 channel is found beside it
    assert m.shape == (14, 20, 24) and m.dtype == np.uint8
    chans = [np.asarray(nib.load(src / "imagesTs" / f"test01_{c:04d}.nii.gz").dataobj) for c in range(2)]
    aff = nib.load(src / "imagesTs" / "test01_0000.nii.gz").affine
    np.testing.assert_array_equal(r.predict(np.stack(chans, -1), affine=aff), m)
    # a nibabel image brings its own affine; channels-first arrays and 2D slices are named
    img = nib.Nifti1Image(np.stack(chans, -1), aff)
    np.testing.assert_array_equal(r.predict(img), m)
    with pytest.raises(DatasetError, match="channels-first"):
        r.predict(np.zeros((2, 20, 24), np.float32))
    with pytest.raises(DatasetError, match="numpy array"):
        r.predict("scan.nii.gz")
    with pytest.warns(UserWarning, match="not reoriented"), pytest.raises(DatasetError, match="channels"):
        r.predict(np.zeros((20, 24), np.float32))  # and this run needs 2 channels x 3 context slices
    rows = r.label_quality()
    assert [x["rank"] for x in rows] == list(range(1, len(rows) + 1)) and rows[0]["score"] <= rows[-1]["score"]
    assert r.verdict().startswith("labels: ") and "verdict: " in r.verdict()  # the line export-labels ends with
    labels = r.corrected_labels(space="original")
    ref = read_volume(src / "labelsTr" / "sub00.nii.gz", "label").data
    np.testing.assert_array_equal(labels["sub00"], ref)
    assert set(r.corrected_labels()) == set(x["id"] for x in rows)


def test_volume_predict_errors_are_one_line(nnunet, tmp_path, capsys):
    src, prep, run = nnunet
    inp = tmp_path / "in"
    inp.mkdir()
    v = nib.load(src / "imagesTs" / "test00_0000.nii.gz")
    nib.save(v, inp / "case_0000.nii.gz")  # the second channel is missing
    assert main(["predict", str(run), "--input", str(inp), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "case_0001.nii.gz: missing channel file" in err and len(err.strip().splitlines()) == 1
    a = np.asarray(v.dataobj).copy()
    a[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(a, v.affine), inp / "case_0001.nii.gz")
    assert main(["predict", str(run), "--input", str(inp), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "case_0001.nii.gz: image contains 1 NaN" in err and len(err.strip().splitlines()) == 1
    assert not list((tmp_path / "o").glob("*.nii.gz"))


def test_2d_run_warns_when_given_a_volume(tiny_run, tmp_path, capsys):
    run = tiny_run()
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((30, 30, 3)).astype(np.float32), np.eye(4)), tmp_path / "v.nii.gz")
    assert main(["predict", str(run), "--input", str(tmp_path / "v.nii.gz"), "--out", str(tmp_path / "o"), "--device", "cpu"]) == 0
    assert "was not trained on a volume dataset" in capsys.readouterr().out


@pytest.mark.slow
def test_colin27_volume_workflow_from_the_readme(tmp_path, capsys):
    """The volume workflow of docs/own-data.md on the embedded data, through the CLI."""
    vols, prep, run = tmp_path / "c27-volumes", tmp_path / "c27-slices", tmp_path / "run"
    assert main(["data", "export", "colin27", str(vols), "--volumes"]) == 0
    assert main(["data", "prepare", "volumes", str(vols), str(prep), "--size", "56", "48", "--split-file", str(vols / "split.json")]) == 0
    assert main(["train", "--data", str(prep), "--method", "adele", "--out", str(run), "--noise", "final", "--device", "cpu",
                 "--set", "train.epochs=3", "data.size=[56,48]", "model.width=4", "train.threads=1", "adele.detection.trim_flat=null",
                 "adele.detection.min_peak_iou=0", "adele.detection.min_rise=0", "adele.detection.horizon=3", "adele.correction.every=1"]) == 0
    assert main(["predict", str(run), "--input", str(vols / "images" / "c27_b15.nii.gz"), "--out", str(tmp_path / "masks")]) == 0
    _same_grid_and_header(tmp_path / "masks" / "c27_b15.nii.gz", vols / "images" / "c27_b15.nii.gz")
    assert main(["export-labels", str(run), "--out", str(tmp_path / "fixed")]) == 0
    split = json.loads((vols / "split.json").read_text())
    assert sorted(p.name[:-7] for p in (tmp_path / "fixed" / "original" / "labels").iterdir()) == sorted(split["train"])
    for s in split["train"][:2]:
        _same_grid_and_header(tmp_path / "fixed" / "original" / "labels" / f"{s}.nii.gz", vols / "labels" / f"{s}.nii.gz")
    assert torch.get_num_threads() == 1


def test_labels_are_upsampled_smoothly_through_their_one_hot_maps():
    from adele.data.dataset import resize_label, smooth_resize_label

    yy, xx = np.mgrid[:120, :120]
    disc = (((yy - 60) ** 2 + (xx - 57) ** 2) <= 40 ** 2).astype(np.uint8)
    disc[:5, :5] = 255  # ignore survives as its own value
    small = resize_label(disc, (15, 15))
    near, smooth = resize_label(small, (120, 120)), smooth_resize_label(small, (120, 120))
    err = lambda x: int((x != disc).sum())  # noqa: E731
    assert err(smooth) < err(near) and set(np.unique(smooth)) == {0, 1, 255}
    np.testing.assert_array_equal(smooth_resize_label(disc, disc.shape), disc)
