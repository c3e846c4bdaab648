"""Malformed inputs across datasets, configs and the CLI: one line, exit code 2, no traceback, nothing written."""
import json

import numpy as np
import pytest
from PIL import Image

from adele.cli import main
from adele.data.io import write_array

from adele.testing import make_dataset


def _ds(tmp_path):
    return make_dataset(tmp_path / "ds", n_train=3, n_val=1, n_test=1, size=(16, 16))


def _check(ds):
    return ["data", "check", str(ds)]


def case_missing_json(ds, tmp):
    (ds / "dataset.json").unlink()
    return _check(ds), "dataset.json"


def case_bad_json(ds, tmp):
    (ds / "dataset.json").write_text("{")
    return _check(ds), "not valid JSON"


def case_classes_not_list(ds, tmp):
    (ds / "dataset.json").write_text(json.dumps({"classes": "background"}))
    return _check(ds), "'classes'"


def case_dataset_json_is_a_folder(ds, tmp):
    (ds / "dataset.json").unlink()
    (ds / "dataset.json").mkdir()
    return _check(ds), "is a folder"


def case_class_name_with_a_line_break(ds, tmp):
    (ds / "dataset.json").write_text(json.dumps({"classes": ["background", "left\nkidney", "b"]}))
    return _check(ds), "line break"


def case_nnunet_folder_given_to_train(ds, tmp):
    (ds / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "a": 1, "b": 2}, "channel_names": {"0": "CT"}}))
    return ["train", "--data", str(ds), "--out", str(tmp / "run")], "adele data prepare volumes"


def case_bad_ignore_index(ds, tmp):
    (ds / "dataset.json").write_text(json.dumps({"classes": ["bg", "a", "b"], "ignore_index": 1}))
    return _check(ds), "ignore_index"


def case_missing_label(ds, tmp):
    (ds / "train" / "labels" / "im00.png").unlink()
    return _check(ds), "no label"


def case_label_without_image(ds, tmp):
    (ds / "train" / "images" / "im01.png").unlink()
    return _check(ds), "no image"


def case_shape_mismatch(ds, tmp):
    write_array(ds / "train" / "labels" / "im00.png", np.zeros((8, 8), np.uint8))
    return _check(ds), "shape"


def case_class_out_of_range(ds, tmp):
    write_array(ds / "train" / "labels" / "im00.png", np.full((16, 16), 7, np.uint8))
    return _check(ds), "class 7"


def case_empty_split(ds, tmp):
    for p in (ds / "val" / "images").iterdir():
        p.unlink()
    return _check(ds), "empty split"


def case_missing_train(ds, tmp):
    import shutil

    shutil.rmtree(ds / "train")
    return _check(ds), "split folder missing"


def case_missing_labels_dir(ds, tmp):
    import shutil

    shutil.rmtree(ds / "val" / "labels")
    return _check(ds), "folder missing"


def case_corrupt_png(ds, tmp):
    (ds / "train" / "labels" / "im00.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    return _check(ds), "cannot be decoded"


def case_corrupt_nifti(ds, tmp):
    (ds / "train" / "images" / "im00.png").unlink()
    (ds / "train" / "images" / "im00.nii.gz").write_bytes(b"\x1f\x8bgarbage")
    return _check(ds), "cannot be decoded"


def case_nan_image(ds, tmp):
    (ds / "train" / "images" / "im00.png").unlink()
    np.save(ds / "train" / "images" / "im00.npy", np.full((16, 16), np.nan, np.float32))
    return _check(ds), "NaN"


def case_inf_image(ds, tmp):
    (ds / "train" / "images" / "im00.png").unlink()
    a = np.zeros((16, 16), np.float32)
    a[0, 0] = np.inf
    np.save(ds / "train" / "images" / "im00.npy", a)
    return _check(ds), "inf"


def case_rgb_label(ds, tmp):
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(ds / "train" / "labels" / "im00.png")
    return _check(ds), "RGB"


def case_16bit_label(ds, tmp):
    Image.fromarray(np.full((16, 16), 1000, np.uint16)).save(ds / "train" / "labels" / "im00.png")
    return _check(ds), "0..254"


def case_float_label(ds, tmp):
    (ds / "train" / "labels" / "im00.png").unlink()
    np.save(ds / "train" / "labels" / "im00.npy", np.full((16, 16), 0.5, np.float32))
    return _check(ds), "non-integer"


def case_unsupported_file(ds, tmp):
    (ds / "train" / "images" / "notes.txt").write_text("x")
    return _check(ds), "unsupported file type"


def case_duplicate_ids(ds, tmp):
    np.save(ds / "train" / "images" / "im00.npy", np.zeros((16, 16), np.float32))
    return _check(ds), "share the id"


def case_incomplete_labels_clean(ds, tmp):
    write_array(ds / "train" / "labels_clean" / "im00.png", np.zeros((16, 16), np.uint8))
    return _check(ds), "labels_clean"


def case_no_such_dataset(ds, tmp):
    return _check(tmp / "nope"), "not found"


def _train(ds, tmp, *extra):
    return ["train", "--data", str(ds), "--out", str(tmp / "run"), "--epochs", "1", *extra]


def case_bad_yaml(ds, tmp):
    (tmp / "c.yaml").write_text("train: {epochs: [\n")
    return _train(ds, tmp, "--config", str(tmp / "c.yaml")), "not valid YAML"


def case_yaml_not_mapping(ds, tmp):
    (tmp / "c.yaml").write_text("- 1\n- 2\n")
    return _train(ds, tmp, "--config", str(tmp / "c.yaml")), "mapping"


def case_unknown_yaml_key(ds, tmp):
    (tmp / "c.yaml").write_text("optim:\n  learning_rate: 0.1\n")
    return _train(ds, tmp, "--config", str(tmp / "c.yaml")), "optim.learning_rate"


def case_config_not_found(ds, tmp):
    return _train(ds, tmp, "--config", str(tmp / "missing.yaml")), "not found"


def case_unknown_override(ds, tmp):
    return _train(ds, tmp, "--set", "train.epoch=3"), "train.epoch"


def case_negative_lr(ds, tmp):
    return _train(ds, tmp, "--lr", "-0.1"), "optim.lr"


def case_wrong_type(ds, tmp):
    return _train(ds, tmp, "--set", "train.batch_size=big"), "train.batch_size"


def case_bad_choice(ds, tmp):
    return _train(ds, tmp, "--set", "optim.name=lbfgs"), "optim.name"


def case_tau_out_of_range(ds, tmp):
    return _train(ds, tmp, "--set", "adele.correction.tau_bg=1.5"), "tau_bg"


def case_unknown_model(ds, tmp):
    return _train(ds, tmp, "--model", "resnet9000"), "unknown model"


def case_cuda_without_cuda(ds, tmp):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    return _train(ds, tmp, "--device", "cuda"), "cuda"


def case_bad_noise_recipe(ds, tmp):
    return _train(ds, tmp, "--noise", "finale"), "recipe"


def case_existing_run_folder(ds, tmp):
    (tmp / "run").mkdir()
    (tmp / "run" / "x").write_text("x")
    return _train(ds, tmp), "--overwrite"


def case_resume_missing_run(ds, tmp):
    return _train(ds, tmp, "--resume"), "resume"


def case_resume_missing_checkpoint(ds, tmp):
    (tmp / "run").mkdir()
    (tmp / "run" / "config.yaml").write_text("method: baseline\n")
    return _train(ds, tmp, "--resume"), "no checkpoint"


def case_unwritable_output(ds, tmp):
    (tmp / "afile").write_text("x")
    return ["train", "--data", str(ds), "--out", str(tmp / "afile" / "run"), "--epochs", "1"], "write"


def case_noise_bad_param(ds, tmp):
    return ["noise", "--data", str(ds), "--out", str(tmp / "run"), "--recipe", "missing:p=-1"], "p"


def case_noise_unknown_split(ds, tmp):
    return ["noise", "--data", str(ds), "--out", str(tmp / "run"), "--splits", "training"], "training"


def case_export_existing(ds, tmp):
    (tmp / "run").mkdir()
    (tmp / "run" / "x").write_text("x")
    return ["data", "export", "colin27", str(tmp / "run")], "--overwrite"


CASES = {name[5:]: fn for name, fn in sorted(globals().items()) if name.startswith("case_")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name, tmp_path, capsys):
    ds = _ds(tmp_path)
    argv, words = CASES[name](ds, tmp_path)
    existed = (tmp_path / "run").exists()
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, f"{name}: exit code {rc}\n{err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert words in lines[0], lines[0]
    if not existed:
        assert not (tmp_path / "run").exists(), f"{name}: partial output left behind"


def test_resume_with_another_model_is_refused(tmp_path, capsys):
    ds = _ds(tmp_path)
    run = tmp_path / "r"
    assert main(["train", "--data", str(ds), "--out", str(run), "--epochs", "1", "--set", "model.width=4", "model.depth=2", "data.size=null"]) == 0
    capsys.readouterr()
    rc = main(["train", "--data", str(ds), "--out", str(run), "--resume", "--set", "model.width=8", "train.epochs=2"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error:") and "checkpoint" in err and len(err.splitlines()) == 1


def test_dataset_json_with_a_byte_order_mark_is_accepted(tmp_path, capsys):
    ds = _ds(tmp_path)
    text = (ds / "dataset.json").read_text()
    (ds / "dataset.json").write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert main(["data", "check", str(ds)]) == 0 and capsys.readouterr().out.startswith("ok:")


def test_a_file_without_read_permission_says_so_not_cannot_be_decoded(tmp_path, monkeypatch, capsys):
    """Root reads any file, so the denial is simulated where every reader opens the file first."""
    import builtins

    import nibabel as nib

    import adele.data.io as io_mod
    from adele.data.io import read_image, read_label
    from adele.data.volumes import read_volume
    from adele.errors import DatasetError

    png, nii = tmp_path / "a.png", tmp_path / "v.nii.gz"
    write_array(png, np.zeros((8, 8), np.uint8))
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4)), str(nii))
    real = builtins.open

    def denied(path, *a, **k):
        if str(path) in (str(png), str(nii)):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(io_mod, "open", denied, raising=False)
    for read, path in ((read_image, png), (read_label, png), (lambda p: read_volume(p, "label"), nii)):
        with pytest.raises(DatasetError, match="permission denied; make the file readable"):
            read(path)
    ds = make_dataset(tmp_path / "ds", n_train=2, n_val=1, n_test=0)
    victim = sorted((ds / "train" / "images").iterdir())[0]
    png = victim  # the CLI path: the check of a dataset folder
    assert main(["data", "check", str(ds)]) == 2
    err = capsys.readouterr().err
    assert "permission denied" in err and "cannot be decoded" not in err and victim.name in err
