import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from adele.cli import main
from adele.data import load_colin27, read_label, write_array

pytestmark = pytest.mark.usefixtures("one_thread")

NUM_CLASSES = 10


@pytest.fixture(scope="module")
def run(tiny_run):
    return tiny_run()


@pytest.fixture(scope="module")
def slices():
    s = load_colin27().splits["test"]
    return s.images[:3].astype(np.float32) / 255.0  # (3, 217, 181)


def test_nifti_volume_round_trip(run, slices, tmp_path, capsys):
    vol = np.ascontiguousarray(slices[:, 10:80, 20:90].transpose(1, 2, 0)) * 1000  # (70, 70, 3), slices on the last axis
    affine = np.array([[1.5, 0, 0, -10], [0, 1.5, 0, 5], [0, 0, 3, 2], [0, 0, 0, 1]], dtype=float)
    img = nib.Nifti1Image(vol.astype(np.float32), affine)
    img.header["descrip"] = b"test volume"
    nib.save(img, tmp_path / "vol.nii.gz")
    nib.save(nib.Nifti1Image(vol[..., 0], affine), tmp_path / "flat.nii")  # a 2D NIfTI too
    out = tmp_path / "masks"
    assert main(["predict", str(run), "--input", str(tmp_path), "--out", str(out), "--probs", "--device", "cpu"]) == 0
    res = nib.load(out / "vol.nii.gz")
    assert res.shape == vol.shape and res.get_data_dtype() == np.uint8
    np.testing.assert_allclose(res.affine, affine)
    assert res.header["descrip"].tobytes().startswith(b"test volume")
    data = np.asarray(res.dataobj)
    assert data.dtype == np.uint8 and data.max() < NUM_CLASSES
    probs = np.load(out / "probs" / "vol.npy")
    assert probs.shape == (NUM_CLASSES, *vol.shape) and probs.dtype == np.float16
    np.testing.assert_allclose(probs.astype(np.float32).sum(0), 1, atol=1e-2)
    assert (probs.argmax(0) == data).mean() > 0.99  # float16 rounding may flip near-ties
    flat = nib.load(out / "flat.nii")
    assert flat.shape == vol.shape[:2] and flat.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(flat.dataobj), data[..., 0])  # slice 0 alone gives the same mask


def test_png_and_npy_round_trip_with_tta(run, slices, tmp_path):
    inp = tmp_path / "in"
    write_array(inp / "a.png", slices[0])  # 217 x 181, 8-bit
    write_array(inp / "b.npy", slices[1][5:105, :90] * 3.0)  # another size, float
    (inp / "notes.txt").write_text("ignored")
    out = tmp_path / "out"
    assert main(["predict", str(run), "--input", str(inp), "--out", str(out), "--tta", "--device", "cpu"]) == 0
    a = read_label(out / "a.png")
    assert a.shape == slices[0].shape and a.max() < NUM_CLASSES
    b = np.load(out / "b.npy")
    assert b.shape == (100, 90) and b.dtype == np.uint8
    assert sorted(p.name for p in out.iterdir() if p.name != ".adele-output.json") == ["a.png", "b.npy"]  # + the marker


def test_predict_errors_are_one_line(run, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    cases = [
        ([str(run), "--input", str(bad)], "cannot be decoded"),
        ([str(run), "--input", str(tmp_path / "missing.png")], "not found"),
        ([str(tmp_path / "norun"), "--input", str(bad)], "run folder not found"),
    ]
    nomodel = tmp_path / "nomodel"
    shutil.copytree(run, nomodel, ignore=shutil.ignore_patterns("model.pt"))
    cases.append(([str(nomodel), "--input", str(bad)], "model.pt: not found"))
    for args, msg in cases:
        assert main(["predict", *args, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_predict_on_cuda_matches_cpu(run, slices, tmp_path):
    write_array(tmp_path / "in" / "a.png", slices[0])
    for dev in ("cpu", "cuda"):
        assert main(["predict", str(run), "--input", str(tmp_path / "in"), "--out", str(tmp_path / dev), "--device", dev]) == 0
    same = (read_label(tmp_path / "cpu" / "a.png") == read_label(tmp_path / "cuda" / "a.png")).mean()
    assert same > 0.99


def test_saved_config_tolerates_settings_of_other_versions():
    from adele.config import saved_config

    with pytest.warns(UserWarning, match="train.gone, removed"):
        cfg = saved_config({"train": {"epochs": 3, "gone": 1}, "removed": {"x": 1}, "method": "adele"})
    assert cfg.train.epochs == 3 and cfg.method == "adele"


def test_jpeg_input_gets_png_mask(run, slices, tmp_path):
    from PIL import Image

    inp = tmp_path / "in"
    inp.mkdir()
    Image.fromarray((slices[2] * 255).astype(np.uint8)).convert("RGB").convert("L").save(inp / "c.jpg", quality=95)
    out = tmp_path / "out"
    assert main(["predict", str(run), "--input", str(inp), "--out", str(out), "--device", "cpu"]) == 0
    assert [p.name for p in out.iterdir() if p.name != ".adele-output.json"] == ["c.png"]
    assert read_label(out / "c.png").shape == slices[2].shape
