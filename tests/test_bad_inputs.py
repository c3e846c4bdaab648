"""Malformed inputs across datasets, configs and the CLI: one line, exit code 2, no traceback, nothing written."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from adele.cli import main
from adele.data.io import write_array

from adele.testing import make_dataset


def _ds(tmp_path):
    return make_dataset(tmp_path / "ds", n_train=3, n_val=1, n_test=1, size=(16, 16))


# ----------------------------------------------------------------------------- what a case does before the command
# each step is a function of (dataset folder, tmp folder); a path is relative to the dataset, or to tmp with "{tmp}/"


def _path(ds, tmp, rel):
    return tmp / rel[len("{tmp}/"):] if rel.startswith("{tmp}/") else ds / rel


def remove(rel):
    """Delete a file, or a folder with its content."""
    def step(ds, tmp):
        p = _path(ds, tmp, rel)
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()
    return step


def empty(rel):
    """Delete every file in a folder."""
    def step(ds, tmp):
        for p in _path(ds, tmp, rel).iterdir():
            p.unlink()
    return step


def mkdir(rel):
    return lambda ds, tmp: _path(ds, tmp, rel).mkdir()


def write(rel, content):
    """Text or bytes as they are; an array as an image or label file (``write_array``); ``.npy`` with ``np.save``."""
    def step(ds, tmp):
        p = _path(ds, tmp, rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            p.write_text(content)
        elif isinstance(content, bytes):
            p.write_bytes(content)
        elif p.suffix == ".npy":
            np.save(p, content)
        else:
            write_array(p, content)
    return step


def save_pil(rel, array):
    """An image file as PIL writes it (RGB or 16-bit labels, which ``write_array`` would refuse)."""
    return lambda ds, tmp: Image.fromarray(array).save(_path(ds, tmp, rel))


def skip_with_cuda(ds, tmp):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present")


# ----------------------------------------------------------------------------- the command a case runs


def check(ds, tmp):
    return ["data", "check", str(ds)]


def train(*extra):
    """``adele train`` on the dataset into {tmp}/run for one epoch; ``{tmp}`` in ``extra`` is the tmp folder."""
    return lambda ds, tmp: ["train", "--data", str(ds), "--out", str(tmp / "run"), "--epochs", "1", *(e.replace("{tmp}", str(tmp)) for e in extra)]


def argv(*args):
    """Any command line; ``{ds}`` and ``{tmp}`` stand for the two folders."""
    return lambda ds, tmp: [a.replace("{ds}", str(ds)).replace("{tmp}", str(tmp)) for a in args]


def case(name, command, words, *steps):
    """One malformed input: the ``steps`` that break it, the ``command`` that must refuse it, ``words`` its one line holds."""
    return pytest.param(steps, command, words, id=name)


def _inf_at_origin():
    a = np.zeros((16, 16), np.float32)
    a[0, 0] = np.inf
    return a


IMAGE, LABEL = "train/images/im00.png", "train/labels/im00.png"
CASES = [
    # dataset.json
    case("missing_json", check, "dataset.json", remove("dataset.json")),
    case("bad_json", check, "not valid JSON", write("dataset.json", "{")),
    case("classes_not_list", check, "'classes'", write("dataset.json", json.dumps({"classes": "background"}))),
    case("dataset_json_is_a_folder", check, "is a folder", remove("dataset.json"), mkdir("dataset.json")),
    case("class_name_with_a_line_break", check, "line break", write("dataset.json", json.dumps({"classes": ["background", "left\nkidney", "b"]}))),
    case("nnunet_folder_given_to_train", argv("train", "--data", "{ds}", "--out", "{tmp}/run"), "adele data prepare volumes",
         write("dataset.json", json.dumps({"labels": {"background": 0, "a": 1, "b": 2}, "channel_names": {"0": "CT"}}))),
    case("bad_ignore_index", check, "ignore_index", write("dataset.json", json.dumps({"classes": ["bg", "a", "b"], "ignore_index": 1}))),
    # the split folders and their files
    case("missing_label", check, "no label", remove(LABEL)),
    case("label_without_image", check, "no image", remove("train/images/im01.png")),
    case("shape_mismatch", check, "shape", write(LABEL, np.zeros((8, 8), np.uint8))),
    case("class_out_of_range", check, "class 7", write(LABEL, np.full((16, 16), 7, np.uint8))),
    case("empty_split", check, "empty split", empty("val/images")),
    case("missing_train", check, "split folder missing", remove("train")),
    case("missing_labels_dir", check, "folder missing", remove("val/labels")),
    case("corrupt_png", check, "cannot be decoded", write(LABEL, b"\x89PNG\r\n\x1a\n\x00\x00")),
    case("corrupt_nifti", check, "cannot be decoded", remove(IMAGE), write("train/images/im00.nii.gz", b"\x1f\x8bgarbage")),
    case("nan_image", check, "NaN", remove(IMAGE), write("train/images/im00.npy", np.full((16, 16), np.nan, np.float32))),
    case("inf_image", check, "inf", remove(IMAGE), write("train/images/im00.npy", _inf_at_origin())),
    case("rgb_label", check, "RGB", save_pil(LABEL, np.zeros((16, 16, 3), np.uint8))),
    case("16bit_label", check, "0..254", save_pil(LABEL, np.full((16, 16), 1000, np.uint16))),
    case("float_label", check, "non-integer", remove(LABEL), write("train/labels/im00.npy", np.full((16, 16), 0.5, np.float32))),
    case("unsupported_file", check, "unsupported file type", write("train/images/notes.txt", "x")),
    case("duplicate_ids", check, "share the id", write("train/images/im00.npy", np.zeros((16, 16), np.float32))),
    case("incomplete_labels_clean", check, "labels_clean", write("train/labels_clean/im00.png", np.zeros((16, 16), np.uint8))),
    case("no_such_dataset", argv("data", "check", "{tmp}/nope"), "not found"),
    # the config
    case("bad_yaml", train("--config", "{tmp}/c.yaml"), "not valid YAML", write("{tmp}/c.yaml", "train: {epochs: [\n")),
    case("yaml_not_mapping", train("--config", "{tmp}/c.yaml"), "mapping", write("{tmp}/c.yaml", "- 1\n- 2\n")),
    case("unknown_yaml_key", train("--config", "{tmp}/c.yaml"), "optim.learning_rate", write("{tmp}/c.yaml", "optim:\n  learning_rate: 0.1\n")),
    case("config_not_found", train("--config", "{tmp}/missing.yaml"), "not found"),
    case("unknown_override", train("--set", "train.epoch=3"), "train.epoch"),
    case("negative_lr", train("--lr", "-0.1"), "optim.lr"),
    case("wrong_type", train("--set", "train.batch_size=big"), "train.batch_size"),
    case("bad_choice", train("--set", "optim.name=lbfgs"), "optim.name"),
    case("tau_out_of_range", train("--set", "adele.correction.tau_bg=1.5"), "tau_bg"),
    case("unknown_model", train("--model", "resnet9000"), "unknown model"),
    case("cuda_without_cuda", train("--device", "cuda"), "cuda", skip_with_cuda),
    case("bad_noise_recipe", train("--noise", "finale"), "recipe"),
    # outputs and runs
    case("existing_run_folder", train(), "--overwrite", write("{tmp}/run/x", "x")),
    case("resume_missing_run", train("--resume"), "resume"),
    case("resume_missing_checkpoint", train("--resume"), "no checkpoint", write("{tmp}/run/config.yaml", "method: baseline\n")),
    case("unwritable_output", argv("train", "--data", "{ds}", "--out", "{tmp}/afile/run", "--epochs", "1"), "write", write("{tmp}/afile", "x")),
    case("noise_bad_param", argv("noise", "--data", "{ds}", "--out", "{tmp}/run", "--recipe", "missing:p=-1"), "p"),
    case("noise_unknown_split", argv("noise", "--data", "{ds}", "--out", "{tmp}/run", "--splits", "training"), "training"),
    case("export_existing", argv("data", "export", "colin27", "{tmp}/run"), "--overwrite", write("{tmp}/run/x", "x")),
]


@pytest.mark.parametrize("steps, command, words", CASES)
def test_bad_input(steps, command, words, tmp_path, capsys):
    ds = _ds(tmp_path)
    for step in steps:
        step(ds, tmp_path)
    argv = command(ds, tmp_path)
    existed = (tmp_path / "run").exists()
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, f"exit code {rc}\n{err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert words in lines[0], lines[0]
    if not existed:
        assert not (tmp_path / "run").exists(), "partial output left behind"


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
