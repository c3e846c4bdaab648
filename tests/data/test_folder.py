import numpy as np
import pytest
from PIL import Image

from adele.cli import main
from adele.data import open_dataset, read_image, read_label, write_array


def test_valid_dataset_opens(tiny_dataset):
    src = open_dataset(tiny_dataset)
    assert src.classes == ("background", "c1", "c2")
    assert len(src.splits["train"]) == 4 and len(src.splits["test"]) == 2
    assert src.splits["train"].image(0).dtype == np.float32
    assert src.splits["train"].label(0).dtype == np.uint8


def _err(tmp, capsys):
    rc = main(["data", "check", str(tmp)])
    err = capsys.readouterr().err.strip()
    return rc, err


def test_missing_label(tiny_dataset, capsys):
    (tiny_dataset / "train" / "labels" / "im01.png").unlink()
    rc, err = _err(tiny_dataset, capsys)
    assert rc == 2 and "im01" in err and "no label" in err and len(err.splitlines()) == 1


def test_shape_mismatch(tiny_dataset, capsys):
    write_array(tiny_dataset / "val" / "labels" / "im00.png", np.zeros((10, 10), np.uint8))
    rc, err = _err(tiny_dataset, capsys)
    assert rc == 2 and "val/labels/im00.png" in err and "shape" in err


def test_class_out_of_range(tiny_dataset, capsys):
    lab = np.zeros((24, 20), np.uint8)
    lab[0, 0] = 9
    write_array(tiny_dataset / "train" / "labels" / "im02.png", lab)
    rc, err = _err(tiny_dataset, capsys)
    assert rc == 2 and "class 9" in err and "3 classes" in err


def test_ignore_index_allowed(tiny_dataset):
    lab = np.zeros((24, 20), np.uint8)
    lab[0, :] = 255
    write_array(tiny_dataset / "train" / "labels" / "im02.png", lab)
    src = open_dataset(tiny_dataset)
    assert src.ignore_index == 255
    got = read_label(tiny_dataset / "train" / "labels" / "im02.png")
    assert (got[0] == 255).all() and (got[1:] == 0).all()
    assert main(["data", "check", str(tiny_dataset)]) == 0


def test_empty_split(tiny_dataset, capsys):
    for p in (tiny_dataset / "test" / "images").iterdir():
        p.unlink()
    rc, err = _err(tiny_dataset, capsys)
    assert rc == 2 and "empty split" in err


def test_corrupt_png(tiny_dataset, capsys):
    (tiny_dataset / "train" / "images" / "im00.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    rc, err = _err(tiny_dataset, capsys)
    assert rc == 2 and "im00.png" in err and "cannot be decoded" in err


def test_missing_dataset_json(tiny_dataset, capsys):
    (tiny_dataset / "dataset.json").unlink()
    rc, err = _err(tiny_dataset, capsys)
    assert rc == 2 and "dataset.json" in err and "missing" in err


def test_bad_dataset_json(tiny_dataset, capsys):
    (tiny_dataset / "dataset.json").write_text("{not json")
    rc, err = _err(tiny_dataset, capsys)
    assert rc == 2 and "not valid JSON" in err


def test_label_without_image(tiny_dataset, capsys):
    write_array(tiny_dataset / "train" / "labels" / "extra.png", np.zeros((24, 20), np.uint8))
    rc, err = _err(tiny_dataset, capsys)
    assert rc == 2 and "extra.png" in err and "no image" in err


def test_rgb_label_rejected(tiny_dataset, capsys):
    Image.fromarray(np.zeros((24, 20, 3), np.uint8)).save(tiny_dataset / "train" / "labels" / "im00.png")
    rc, err = _err(tiny_dataset, capsys)
    assert rc == 2 and "RGB" in err


def test_nan_image_rejected(tiny_dataset, capsys):
    (tiny_dataset / "train" / "images" / "im00.png").unlink()
    arr = np.zeros((24, 20), np.float32)
    arr[1, 1] = np.nan
    np.save(tiny_dataset / "train" / "images" / "im00.npy", arr)
    rc, err = _err(tiny_dataset, capsys)
    assert rc == 2 and "NaN" in err


def test_missing_folder(tmp_path, capsys):
    rc, err = _err(tmp_path / "nope", capsys)
    assert rc == 2 and "not found" in err


@pytest.mark.parametrize("suffix", ["png", "npy", "nii.gz"])
def test_formats_round_trip(tmp_path, suffix):
    lab = (np.arange(30).reshape(5, 6) % 4).astype(np.uint8)
    write_array(tmp_path / f"l.{suffix}", lab)
    assert np.array_equal(read_label(tmp_path / f"l.{suffix}"), lab)
    img16 = (np.arange(30).reshape(5, 6) * 1000).astype(np.uint16)
    write_array(tmp_path / "i16.png", img16)
    assert np.allclose(read_image(tmp_path / "i16.png"), img16 / 65535.0)
