"""NRRD and MetaImage volumes (through SimpleITK, the ``formats`` extra) mean exactly what the same scan means as NIfTI."""
import json
import sys

import numpy as np
import pytest

from adele.cli import main
from adele.data.volumes import (ItkHeader, affine_to_itk, find_volumes, itk_affine, orientation, prepare_volumes, read_volume,
                                write_label_volume)
from adele.errors import DatasetError
from adele.testing import make_volume_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["train.epochs=1", "data.size=[16,16]", "model.width=4", "model.depth=2", "train.device=cpu", "train.batch_size=8"]
HINT = "pip install 'adele[formats]'"


def _convert(src, dst, ending, extra_meta=None):
    """A copy of the NIfTI dataset ``src`` with every volume written by SimpleITK as ``ending`` (as nnU-Net users convert)."""
    sitk = pytest.importorskip("SimpleITK")
    for p in sorted(src.rglob("*.nii.gz")):
        img = sitk.ReadImage(str(p))
        for k in img.GetMetaDataKeys():  # NIfTI fields MetaImage cannot hold (empty, a matrix): dropped, without a warning
            if not img.GetMetaData(k) or img.GetMetaData(k).startswith("[UNKNOWN"):
                img.EraseMetaData(k)
        for k, v in (extra_meta or {}).items():
            img.SetMetaData(k, v)
        target = dst / p.relative_to(src).parent / (p.name[: -len(".nii.gz")] + ending)
        target.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(img, str(target), True)
    meta = json.loads((src / "dataset.json").read_text())
    if "file_ending" in meta:
        meta["file_ending"] = ending
    (dst / "dataset.json").write_text(json.dumps(meta))
    return dst


@pytest.fixture(scope="module")
def nifti(tmp_path_factory):
    """The nnU-Net example: non-canonical orientation, anisotropic voxels (0.8 x 1.1 x 2.5 mm)."""
    return make_volume_dataset(tmp_path_factory.mktemp("nii") / "Dataset001_Tiny", layout="nnunet", n_subjects=4, test_cases=1)


# ----------------------------------------------------------------------------- reading and writing


@pytest.mark.parametrize("ending", [".nrrd", ".nhdr", ".mha", ".mhd"])
def test_every_format_reads_as_the_same_nifti(nifti, tmp_path, ending):
    src = _convert(nifti, tmp_path / "conv", ending)
    for rel, kind in (("imagesTr/sub01_0000", "image"), ("labelsTr/sub01", "label")):
        ref, got = read_volume(nifti / f"{rel}.nii.gz", kind), read_volume(src / f"{rel}{ending}", kind)
        assert got.data.dtype == ref.data.dtype and got.data.shape == ref.data.shape == (14, 20, 24)
        np.testing.assert_array_equal(got.data, ref.data)
        np.testing.assert_allclose(got.affine, ref.affine, atol=1e-5)
        np.testing.assert_array_equal(orientation(got.affine), orientation(ref.affine))
        assert isinstance(got.image, ItkHeader) and got.image.get_data_dtype() == ref.image.get_data_dtype()


@pytest.mark.parametrize("ending", [".mha", ".nhdr"])
def test_label_volumes_are_written_back_on_their_grid(nifti, tmp_path, ending):
    sitk = pytest.importorskip("SimpleITK")
    src = _convert(nifti, tmp_path / "conv", ending, {"PatientID": "anon-7"})
    lab = read_volume(src / f"labelsTr/sub00{ending}", "label")
    out = tmp_path / "out" / f"sub00{ending}"
    write_label_volume(out, lab.data, lab)
    a, b = sitk.ReadImage(str(out)), sitk.ReadImage(str(src / f"labelsTr/sub00{ending}"))
    assert (a.GetSize(), a.GetSpacing(), a.GetOrigin(), a.GetDirection()) == (b.GetSize(), b.GetSpacing(), b.GetOrigin(), b.GetDirection())
    assert a.GetPixelID() == sitk.sitkUInt8 and a.GetMetaData("PatientID") == "anon-7"
    np.testing.assert_array_equal(read_volume(out, "label").data, lab.data)
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary left
    # a NIfTI volume's grid written as MetaImage: the affine survives LPS <-> RAS
    nii = read_volume(nifti / "labelsTr/sub00.nii.gz", "label")
    write_label_volume(tmp_path / "x.mha", nii.data, nii)
    np.testing.assert_allclose(read_volume(tmp_path / "x.mha", "label").affine, nii.affine, atol=1e-6)
    # and the other way: NIfTI on the grid of an NRRD/MetaImage volume
    write_label_volume(tmp_path / "y.nii.gz", lab.data, lab)
    np.testing.assert_allclose(read_volume(tmp_path / "y.nii.gz", "label").affine, lab.affine, atol=1e-6)


def test_itk_geometry_and_affine_are_inverse():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))  # an oblique direction, either handedness
    spacing, origin = (0.7, 1.3, 3.0), (-12.5, 40.0, 7.25)
    affine = itk_affine(spacing, origin, tuple(q.ravel()))
    sp, org, d = affine_to_itk(affine)
    np.testing.assert_allclose(sp, spacing)
    np.testing.assert_allclose(org, origin)
    np.testing.assert_allclose(d, q.ravel(), atol=1e-12)
    # RAS = LPS with x and y negated
    np.testing.assert_allclose(affine[:3, 3], (12.5, -40.0, 7.25))


def test_a_broken_file_is_one_line(tmp_path):
    pytest.importorskip("SimpleITK")
    (tmp_path / "bad.nrrd").write_bytes(b"NRRD0004\nnonsense\n")
    with pytest.raises(DatasetError, match="cannot be read as NRRD") as e:
        read_volume(tmp_path / "bad.nrrd")
    assert len(str(e.value).splitlines()) == 1


# ----------------------------------------------------------------------------- without SimpleITK


def test_without_simpleitk_reading_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "SimpleITK", None)  # as if not installed
    (tmp_path / "scan.nrrd").write_bytes(b"NRRD0004\n")
    with pytest.raises(DatasetError) as e:
        read_volume(tmp_path / "scan.nrrd")
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and HINT in msg and "scan.nrrd" in msg
    # the command: one line, nothing written
    src = tmp_path / "Dataset002"
    for d in ("imagesTr", "labelsTr"):
        (src / d).mkdir(parents=True)
    for i in range(3):
        (src / "imagesTr" / f"c{i}_0000.nrrd").write_bytes(b"NRRD0004\n")
        (src / "labelsTr" / f"c{i}.nrrd").write_bytes(b"NRRD0004\n")
    (src / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0, "a": 1}, "file_ending": ".nrrd"}))
    assert main(["data", "prepare", "volumes", str(src), str(tmp_path / "prep")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and HINT in err
    assert not (tmp_path / "prep").exists()


# ----------------------------------------------------------------------------- prepare, predict, export


def _slice_files(root):
    return {str(p.relative_to(root)): p.read_bytes() for split in ("train", "val", "test") if (root / split).is_dir()
            for p in sorted((root / split).rglob("*")) if p.is_file()}


@pytest.mark.parametrize("ending", [".nrrd", ".mhd"])
def test_prepare_nnunet_folder_gives_the_same_slices_as_nifti(nifti, tmp_path, ending):
    src = _convert(nifti, tmp_path / "conv", ending)
    assert find_volumes(src).file_ending == ending
    prepare_volumes(nifti, tmp_path / "a", log=lambda m: None)
    prepare_volumes(src, tmp_path / "b", log=lambda m: None)
    a, b = _slice_files(tmp_path / "a"), _slice_files(tmp_path / "b")
    assert a and sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []  # byte-identical slices
    ia, ib = (json.loads((tmp_path / x / "volumes.json").read_text())["subjects"] for x in ("a", "b"))
    for s, rec in ia.items():
        assert rec["ornt"] == ib[s]["ornt"] and rec["slices"] == ib[s]["slices"] and rec["shape"] == ib[s]["shape"]
        np.testing.assert_allclose(rec["affine"], ib[s]["affine"], atol=1e-5)
        np.testing.assert_allclose(rec["spacing"], ib[s]["spacing"], atol=1e-5)
        native = read_volume(tmp_path / "b" / ib[s]["label_file"], "label")  # a detached header keeps its data file beside it
        assert ib[s]["label_file"].endswith(ending)
        np.testing.assert_array_equal(native.data, read_volume(nifti / "labelsTr" / f"{s}.nii.gz", "label").data)


def _train(data, out):
    from adele.config import load_config
    from adele.engine import Trainer

    cfg = load_config(None, TINY + [f"data.path={data}"])
    tr = Trainer(cfg, out, log=lambda m: None)
    tr.prepare_run_dir(resume=False, overwrite=True)
    tr.fit()
    return out


@pytest.fixture(scope="module")
def mha_run(nifti, tmp_path_factory):
    """The example as MetaImage (.mha, with a metadata field), prepared and trained for one tiny epoch."""
    root = tmp_path_factory.mktemp("mha")
    src = _convert(nifti, root / "Dataset003_Mha", ".mha", {"PatientID": "anon-7"})
    prepare_volumes(src, root / "prep", log=lambda m: None)
    return src, _train(root / "prep", root / "run")


def test_predict_writes_an_mha_like_its_input(mha_run, nifti, tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    src, run = mha_run
    assert main(["predict", str(run), "--input", str(src / "imagesTs"), "--out", str(tmp_path / "m"), "--probs", "--device", "cpu"]) == 0
    assert sorted(p.name for p in (tmp_path / "m").iterdir() if not p.name.startswith(".")) == ["probs", "test00.mha"]
    out, inp = sitk.ReadImage(str(tmp_path / "m" / "test00.mha")), sitk.ReadImage(str(src / "imagesTs" / "test00_0000.mha"))
    assert out.GetSize() == inp.GetSize() and out.GetSpacing() == inp.GetSpacing()
    assert out.GetOrigin() == inp.GetOrigin() and out.GetDirection() == inp.GetDirection()
    assert out.GetPixelID() == sitk.sitkUInt8 and out.GetMetaData("PatientID") == "anon-7"
    assert np.load(tmp_path / "m" / "probs" / "test00.npy").shape == (3, 14, 20, 24)
    # the same scan as NIfTI gives the same mask
    assert main(["predict", str(run), "--input", str(nifti / "imagesTs"), "--out", str(tmp_path / "n"), "--device", "cpu"]) == 0
    np.testing.assert_array_equal(read_volume(tmp_path / "m" / "test00.mha", "label").data,
                                  read_volume(tmp_path / "n" / "test00.nii.gz", "label").data)
    # the Python API returns it, and adele evaluate scores .mha masks
    import adele

    mask = adele.load_run(run, device="cpu").predict_file(src / "imagesTs" / "test00_0000.mha")
    np.testing.assert_array_equal(mask, read_volume(tmp_path / "m" / "test00.mha", "label").data)
    from adele.evaluation import evaluate_folders

    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "test00.mha").write_bytes((tmp_path / "m" / "test00.mha").read_bytes())
    summary = evaluate_folders(tmp_path / "m", tmp_path / "ref")
    assert summary["num_cases"] == 1 and summary["volume_unit"] == "ml"


def test_export_labels_writes_mha_like_the_label_files(mha_run, tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    src, run = mha_run
    assert main(["export-labels", str(run), "--out", str(tmp_path / "e"), "--device", "cpu"]) == 0
    files = sorted((tmp_path / "e" / "original" / "labels").iterdir())
    assert files and all(p.suffix == ".mha" for p in files)
    for p in files:
        ref = src / "labelsTr" / p.name
        a, b = sitk.ReadImage(str(p)), sitk.ReadImage(str(ref))
        assert (a.GetSpacing(), a.GetOrigin(), a.GetDirection(), a.GetPixelID()) == (b.GetSpacing(), b.GetOrigin(), b.GetDirection(), b.GetPixelID())
        np.testing.assert_array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))  # no correction after one epoch


def test_a_2d_run_cuts_an_mha_as_stored_and_writes_an_mha(tiny_run, nifti, tmp_path, capsys):
    sitk = pytest.importorskip("SimpleITK")
    src = _convert(nifti, tmp_path / "conv", ".mha")
    inp = src / "imagesTs" / "test00_0000.mha"
    assert main(["predict", str(tiny_run()), "--input", str(inp), "--out", str(tmp_path / "o"), "--probs", "--device", "cpu"]) == 0
    assert "was not trained on a volume dataset" in capsys.readouterr().out
    out, ref = sitk.ReadImage(str(tmp_path / "o" / inp.name)), sitk.ReadImage(str(inp))
    grid = lambda im: (im.GetSize(), im.GetSpacing(), im.GetOrigin(), im.GetDirection())  # noqa: E731
    assert grid(out) == grid(ref)
    assert np.load(tmp_path / "o" / "probs" / "test00_0000.npy").shape[1:] == (14, 20, 24)
