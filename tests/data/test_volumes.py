"""Volume datasets: geometry, `adele data prepare volumes` in the generic and nnU-Net layouts, bad inputs."""
import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from adele.cli import main
from adele.data import open_dataset, read_image, read_label
from adele.data.volumes import (AXES, label_slices, orientation, prepare_volumes, read_volume, slices_to_volume, to_canonical,
                                to_slices)
from adele.errors import DatasetError
from adele.testing import make_volume_dataset

QUIET = dict(log=lambda m: None)


def _affines():
    rng = np.random.default_rng(1)
    for perm in ((0, 1, 2), (2, 0, 1), (1, 2, 0)):
        for signs in ((1, 1, 1), (-1, -1, 1), (1, -1, -1)):
            a = np.zeros((4, 4))
            for i, (p, s) in enumerate(zip(perm, signs)):
                a[p, i] = s * rng.uniform(0.5, 3.0)
            a[:3, 3] = rng.normal(0, 20, 3)
            a[3, 3] = 1
            yield a


def test_slices_go_back_to_every_stored_orientation():
    rng = np.random.default_rng(0)
    vol = rng.integers(0, 5, (7, 9, 11)).astype(np.uint8)
    for affine in _affines():
        ornt = orientation(affine)
        ref = np.asarray(nib.as_closest_canonical(nib.Nifti1Image(vol, affine)).dataobj)
        can = to_canonical(vol, ornt)
        np.testing.assert_array_equal(can, ref)  # same frame as nibabel's as_closest_canonical
        for axis in AXES:
            sl = to_slices(can, axis)
            np.testing.assert_array_equal(slices_to_volume(sl, ornt, axis), vol)
            four = np.stack([sl, sl + 1], -1)  # trailing channel axes go back too
            np.testing.assert_array_equal(slices_to_volume(four, ornt, axis)[..., 1], vol + 1)
    # axial slices: anterior up, patient's right on the left (as SegTHOR's preparation always did)
    can = np.zeros((4, 5, 3))
    can[0, 4, 1] = 1  # right-most (x=0), most anterior (y=4), slice z=1
    assert to_slices(can, "axial")[1, 0, -1] == 1


@pytest.fixture
def generic(tmp_path):
    return make_volume_dataset(tmp_path / "src", noisy=True)


def test_prepare_generic_with_noisy_labels(generic, tmp_path):
    out = tmp_path / "prep"
    assert main(["data", "prepare", "volumes", str(generic), str(out), "--size", "16", "16"]) == 0
    src = open_dataset(out)  # a valid dataset in the generic format
    assert src.classes == ("background", "left_blob", "right_blob") and src.splits["train"].has_clean
    idx = json.loads((out / "volumes.json").read_text())
    spec = idx["spec"]
    assert spec["axis"] == "axial" and spec["modality"] == ["mr"] and spec["size"] == [16, 16] and spec["storage"] == "npy"
    owners = {}
    for split, s in src.splits.items():
        for sid in s.ids:
            subj = sid.rsplit("_z", 1)[0]
            assert idx["subjects"][subj]["split"] == split and sid in idx["subjects"][subj]["slices"]
            owners.setdefault(subj, set()).add(split)
    assert all(len(v) == 1 for v in owners.values()) and len(owners) == 5  # no subject in two splits
    rec = idx["subjects"]["sub00"]
    assert rec["shape"] == [14, 20, 24] and rec["native_hw"] == [24, 20] and rec["spacing"] == [1.1, 0.8, 2.5]
    # train/labels are the noisy labels, labels_clean the reference; val/test labels are the reference
    lab = read_volume(generic / "labels" / "sub00.nii.gz", "label")
    noisy = read_volume(generic / "labels_noisy" / "sub00.nii.gz", "label")
    k = rec["slices"]["sub00_z005"]
    from adele.data.volumes import resample_labels

    ornt = np.asarray(rec["ornt"])
    assert np.array_equal(read_label(out / "train" / "labels_clean" / "sub00_z005.png"), resample_labels(label_slices(lab, ornt, "axial")[k:k + 1], (16, 16))[0])
    assert np.array_equal(read_label(out / "train" / "labels" / "sub00_z005.png"), resample_labels(label_slices(noisy, ornt, "axial")[k:k + 1], (16, 16))[0])
    val = next(s for s, r in idx["subjects"].items() if r["split"] == "val")
    assert not (out / "val" / "labels_clean").exists() and (out / idx["subjects"][val]["label_file"]).is_file()
    assert json.loads((out / "prepare.json").read_text())["noisy_labels"] is True


def test_prepare_nnunet_two_channels_context_and_spacing(tmp_path):
    src = make_volume_dataset(tmp_path / "nn", layout="nnunet", channels=2, test_cases=1)
    out = tmp_path / "prep"
    s = prepare_volumes(src, out, spacing=[1.0], context=1, **QUIET)
    assert s["layout"] == "nnunet" and s["test_images"].endswith("imagesTs")
    idx = json.loads((out / "volumes.json").read_text())
    assert idx["spec"]["channel_names"] == ["T1", "T2"] and idx["spec"]["modality"] == ["mr", "mr"] and idx["spec"]["context"] == 1
    assert idx["subjects"]["sub00"]["size_hw"] == [19, 22]  # 24 x 0.8 mm, 20 x 1.1 mm at 1 mm
    img = read_image(next((out / "train" / "images").glob("*.npy")))
    assert img.shape == (19, 22, 6) and img.dtype == np.float32  # 2 channels x 3 slices
    # the middle slice of each channel's context is the slice itself, the others its neighbours
    sid = "sub00_z005"
    a, b = read_image(out / "train" / "images" / f"{sid}.npy"), read_image(out / "train" / "images" / "sub00_z006.npy")
    np.testing.assert_array_equal(a[..., 2], b[..., 1])
    np.testing.assert_array_equal(a[..., 5], b[..., 4])
    assert json.loads((out / "dataset.json").read_text())["classes"] == ["background", "left_blob", "right_blob"]


def test_ct_is_windowed_and_stored_as_16bit_png(tmp_path):
    src = make_volume_dataset(tmp_path / "ct")
    for p in (src / "images").iterdir():  # shift to Hounsfield-like values: auto picks CT
        v = nib.load(p)
        nib.save(nib.Nifti1Image(np.asarray(v.dataobj) - 1000, v.affine), p)
    out = tmp_path / "prep"
    s = prepare_volumes(src, out, window=(-1000, -700), **QUIET)
    assert s["spec"]["modality"] == ["ct"] and s["spec"]["storage"] == "png16"
    img = read_image(next((out / "train" / "images").glob("*.png")))
    assert img.min() >= 0 and img.max() <= 1 and img.shape == (24, 20)


BAD = ["mismatched grid", "4D label", "NaN intensities", "empty label volume", "missing channel file", "bad label value"]


@pytest.mark.parametrize("case", BAD)
def test_bad_volume_inputs_one_line_exit_2_nothing_written(case, tmp_path, capsys):
    layout = "nnunet" if case == "missing channel file" else "generic"
    src = make_volume_dataset(tmp_path / "src", layout=layout, channels=2 if layout == "nnunet" else 1)
    lab = src / ("labelsTr" if layout == "nnunet" else "labels") / "sub03.nii.gz"
    img = src / "images" / "sub03.nii.gz"
    li = nib.load(lab)
    if case == "mismatched grid":
        nib.save(nib.Nifti1Image(np.asarray(li.dataobj), li.affine @ np.diag([1, 1, 2, 1])), lab)
        bad = lab
    elif case == "4D label":
        nib.save(nib.Nifti1Image(np.stack([np.asarray(li.dataobj)] * 2, -1), li.affine), lab)
        bad = lab
    elif case == "NaN intensities":
        ii = nib.load(img)
        a = np.asarray(ii.dataobj).copy()
        a[3, 4, 5] = np.nan
        nib.save(nib.Nifti1Image(a, ii.affine), img)
        bad = img
    elif case == "empty label volume":
        nib.save(nib.Nifti1Image(np.zeros(li.shape, np.uint8), li.affine), lab)
        bad = lab
    elif case == "bad label value":
        a = np.asarray(li.dataobj).copy()
        a[0, 0, 0] = 7
        nib.save(nib.Nifti1Image(a, li.affine), lab)
        bad = lab
    else:
        bad = src / "imagesTr" / "sub03_0001.nii.gz"
        bad.unlink()
    out = tmp_path / "out"
    assert main(["data", "prepare", "volumes", str(src), str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and str(bad) in err, err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["src"]  # nothing partial, no staging folder left


def test_empty_label_volume_allowed_on_request(tmp_path):
    src = make_volume_dataset(tmp_path / "src")
    lab = src / "labels" / "sub00.nii.gz"
    li = nib.load(lab)
    nib.save(nib.Nifti1Image(np.zeros(li.shape, np.uint8), li.affine), lab)
    prepare_volumes(src, tmp_path / "o", allow_empty=True, all_slices=True, **QUIET)
    assert len(json.loads((tmp_path / "o" / "volumes.json").read_text())["subjects"]["sub00"]["slices"]) == 14


def test_split_file_and_layout_errors(tmp_path, capsys):
    src = make_volume_dataset(tmp_path / "src")
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["sub00", "sub01"], "val": ["sub02"], "test": ["sub03", "sub04"]}))
    out = tmp_path / "o"
    assert main(["data", "prepare", "volumes", str(src), str(out), "--split-file", str(split), "--axis", "coronal"]) == 0
    capsys.readouterr()
    src_ds = open_dataset(out)
    assert {s.rsplit("_y", 1)[0] for s in src_ds.splits["test"].ids} == {"sub03", "sub04"}
    assert read_image(out / "train" / "images" / f"{src_ds.splits['train'].ids[0]}.npy").shape == (14, 20)  # coronal: Z x X
    split.write_text(json.dumps({"train": ["sub00"], "val": ["sub00"]}))
    shutil.rmtree(out)
    assert main(["data", "prepare", "volumes", str(src), str(out), "--split-file", str(split)]) == 2
    assert "in both" in capsys.readouterr().err
    (src / "labels" / "sub01.nii.gz").unlink()
    with pytest.raises(DatasetError, match=r"sub01\.nii\.gz: no label volume"):
        prepare_volumes(src, out, **QUIET)
    with pytest.raises(DatasetError, match="--size and --spacing exclude"):
        prepare_volumes(src, out, size=(16, 16), spacing=(1.0,), **QUIET)


def test_generic_2d_format_points_volumes_to_prepare(tiny_dataset, capsys):
    p = tiny_dataset / "train" / "images" / "im00.png"
    p.unlink()
    nib.save(nib.Nifti1Image(np.zeros((24, 20, 18), np.float32), np.eye(4)), tiny_dataset / "train" / "images" / "im00.nii.gz")
    assert main(["data", "check", str(tiny_dataset)]) == 2
    err = capsys.readouterr().err
    assert "3D volume" in err and "adele data prepare volumes" in err


def test_colin27_volumes_export_goes_back_to_the_embedded_slices(tmp_path):
    from adele.data import load_colin27

    out = tmp_path / "c27v"
    assert main(["data", "export", "colin27", str(out), "--volumes"]) == 0
    files = sorted((out / "images").iterdir())
    assert len(files) == 18 and (out / "LICENSE.txt").is_file()
    split = json.loads((out / "split.json").read_text())
    assert sorted(sum(split.values(), [])) == [f.name[:-7] for f in files]
    emb = load_colin27().splits["train"]
    v = nib.load(out / "labels" / "c27_b00.nii.gz")
    assert v.shape == (181, 217, 6) and nib.aff2axcodes(v.affine) == ("R", "A", "S")
    np.testing.assert_array_equal(np.asarray(v.dataobj)[:, :, 0].T[::-1], emb.labels[0])


def test_noisy_copy_of_a_volume_dataset_keeps_the_way_back(tmp_path, capsys):
    src = make_volume_dataset(tmp_path / "src")
    prepare_volumes(src, tmp_path / "prep", size=(16, 16), **QUIET)
    assert main(["noise", "--data", str(tmp_path / "prep"), "--out", str(tmp_path / "noisy"), "--previews", "0"]) == 0
    idx = json.loads((tmp_path / "noisy" / "volumes.json").read_text())
    assert idx["noised_splits"] == ["train"] and (tmp_path / "noisy" / idx["subjects"]["sub00"]["label_file"]).is_file()


def test_nnunet_file_names_get_messages_that_name_the_real_fix(tmp_path):
    from adele.data.volumes import find_volumes

    def fresh(name):
        return make_volume_dataset(tmp_path / name, layout="nnunet", n_subjects=3)

    one = fresh("one")  # one file without _0000 among files with it: that file is named, with the rename
    (one / "imagesTr" / "sub01_0000.nii.gz").rename(one / "imagesTr" / "sub01.nii.gz")
    with pytest.raises(DatasetError, match=r"sub01\.nii\.gz: lacks the channel suffix _0000.*rename it to sub01_0000\.nii\.gz"):
        find_volumes(one)
    none = fresh("none")  # no suffix anywhere: read, with a note
    for p in (none / "imagesTr").iterdir():
        p.rename(p.with_name(p.name.replace("_0000", "")))
    lay = find_volumes(none)
    assert len(lay.cases) == 3 and any("channel suffix" in n for n in lay.notes)
    dot = fresh("dot")  # file_ending without its dot
    meta = json.loads((dot / "dataset.json").read_text())
    meta["file_ending"] = "nii.gz"
    (dot / "dataset.json").write_text(json.dumps(meta))
    assert find_volumes(dot).file_ending == ".nii.gz"
    mixed = fresh("mixed")  # a .nii among .nii.gz: read, with a note naming it
    p = mixed / "imagesTr" / "sub02_0000.nii.gz"
    nib.save(nib.load(str(p)), str(p.with_name("sub02_0000.nii")))
    p.unlink()
    lay = find_volumes(mixed)
    assert len(lay.cases) == 3 and any("sub02_0000.nii" in n and "file_ending" in n for n in lay.notes)


# ----------------------------------------------------------------------------- cross-validation folds (nnU-Net)


def test_generated_folds_are_nnunets_kfold():
    from adele.data.volumes import generate_folds

    subs = [f"case_{i:02d}" for i in range(7)]
    folds = generate_folds(reversed(subs))  # name order, not input order
    # printed by scikit-learn: KFold(5, shuffle=True, random_state=12345).split(7 cases), nnU-Net's generate_crossval_split
    assert [f["val"] for f in folds] == [["case_03", "case_06"], ["case_00", "case_04"], ["case_01"], ["case_05"], ["case_02"]]
    for f in folds:
        assert f["train"] == sorted(set(subs) - set(f["val"]))
    with pytest.raises(DatasetError, match="5 folds need at least 5 subjects"):
        generate_folds(subs[:4])


def test_prepare_a_fold_of_the_nnunet_colin27_example(tmp_path, capsys):
    src = tmp_path / "Dataset027_Colin"
    assert main(["data", "export", "colin27", str(src), "--volumes", "--layout", "nnunet"]) == 0
    meta = json.loads((src / "dataset.json").read_text())
    assert meta["numTraining"] == 15 and meta["file_ending"] == ".nii.gz" and meta["labels"]["background"] == 0
    assert len(list((src / "imagesTs").iterdir())) == len(list((src / "labelsTs").iterdir())) == 3
    assert main(["data", "prepare", "volumes", str(src), str(tmp_path / "f1"), "--fold", "1", "--size", "28", "24"]) == 0
    assert "fold 1 of 5 (generated: 5 folds, nnU-Net's seed 12345)" in capsys.readouterr().out
    folds = json.loads((tmp_path / "f1" / "splits_final.json").read_text())
    assert len(folds) == 5 and sorted(s for f in folds for s in f["val"]) == sorted(folds[0]["train"] + folds[0]["val"])
    prep = json.loads((tmp_path / "f1" / "prepare.json").read_text())
    assert prep["fold"] == 1 and prep["subjects"]["val"] == folds[1]["val"] and prep["subjects"]["train"] == folds[1]["train"]
    assert prep["subjects"]["test"] == ["c27_b03", "c27_b09", "c27_b15"]  # imagesTs + labelsTs
    # a splits_final.json in SRC is used as nnU-Net's own; a {train, val, test} split file is refused with --fold
    mine = [{"train": folds[1]["val"] + folds[1]["train"][3:], "val": folds[1]["train"][:3]}]
    (src / "splits_final.json").write_text(json.dumps(mine))
    assert main(["data", "prepare", "volumes", str(src), str(tmp_path / "g0"), "--fold", "0", "--size", "28", "24"]) == 0
    assert json.loads((tmp_path / "g0" / "prepare.json").read_text())["subjects"]["val"] == mine[0]["val"]
    assert main(["data", "prepare", "volumes", str(src), str(tmp_path / "g1"), "--fold", "1"]) == 2
    assert "--fold 1: the split has folds 0..0" in capsys.readouterr().err
    (tmp_path / "split.json").write_text(json.dumps({"train": ["c27_b00"], "val": ["c27_b01"]}))
    assert main(["data", "prepare", "volumes", str(src), str(tmp_path / "g2"), "--fold", "0", "--split-file", str(tmp_path / "split.json")]) == 2
    assert "splits_final.json" in capsys.readouterr().err
    assert not (tmp_path / "g1").exists() and not (tmp_path / "g2").exists()


def test_small_dataset_default_split_points_to_folds(tmp_path, capsys):
    src = make_volume_dataset(tmp_path / "src", n_subjects=5)
    assert main(["data", "prepare", "volumes", str(src), str(tmp_path / "prep")]) == 0
    assert "holds out 2 of them (40%)" in capsys.readouterr().out
