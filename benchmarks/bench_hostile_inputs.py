"""A hostile-input pass over the CLI: cases the test suite does not contain, tried as a user would.

Usage::

    python benchmarks/bench_hostile_inputs.py            # all cases (~2-3 minutes on 2 CPU cores)
    python benchmarks/bench_hostile_inputs.py -k pretrained -v

Each case builds its inputs in a fresh temporary folder, runs ``python -m adele ...``
as a subprocess and classifies the outcome:

* ``one-line exit 2``: refused as intended: exit code 2, exactly one ``error: ...`` line
  on stderr (besides one-line ``warning: ...`` lines), no traceback, the inputs unchanged, no output folder left behind;
* ``exit 0 as intended``: a hostile-looking input that is valid (and the inputs unchanged);
* ``skipped``: the case needs an optional package that is not installed (SimpleITK for the NRRD cases);
* anything else, by kind: ``traceback``, ``exit 0`` (should have been refused), ``data lost``
  (an input changed or vanished), ``partial output``, ``other`` (wrong exit code, several lines).

Trainings are tiny (16 x 16 images, width-4 U-Net, 1 epoch, 1 thread).

A pass over all cases writes docs/benchmarks/hostile_inputs.json (``--result NAME``, ``--result-dir DIR``): the counts
as printed and every case's expectation, outcome, detail and seconds (the temporary folders shown as TMP and SHARED in
the details); a ``-k`` pass writes only with ``--result-dir`` (it never replaces the whole pass's file).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adele.data.io import write_array  # noqa: E402
from adele.testing import make_dataset  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import add_result_options, result_target, write_result  # noqa: E402

TINY = ["--epochs", "1", "--set", "data.size=[16,16]", "model.width=4", "model.depth=2", "train.threads=1", "train.device=cpu"]


@dataclass
class Case:
    name: str
    build: Callable[[Path, dict], list[str]]  # (tmp, shared) -> argv after `adele`
    expect: str = "refuse"  # or "ok"
    #: paths (relative to tmp, or "@run"/"@ds" for the shared ones) that must not change
    guard: tuple[str, ...] = ("ds",)
    #: output that must not exist after a refusal (relative to tmp)
    no_output: tuple[str, ...] = ("out",)
    notes: str = ""
    result: str = field(default="", init=False)
    detail: str = field(default="", init=False)
    seconds: float = field(default=0.0, init=False)
    tmp: str = field(default="", init=False)  # the case's temporary folder (gone after the case)


def ds(tmp: Path, **kw) -> Path:
    kw.setdefault("size", (16, 16))
    return make_dataset(tmp / "ds", n_train=kw.pop("n_train", 3), n_val=1, n_test=1, **kw)


def train(data, out, *extra) -> list[str]:
    return ["train", "--data", str(data), "--out", str(out), *TINY, *extra]


def with_settings(*extra: str) -> Callable[[Path, dict], list[str]]:
    """A case that trains on a fresh dataset into tmp/out with ``extra`` settings (``--set`` values)."""
    return lambda tmp, sh: train(ds(tmp), tmp / "out", *extra)


def set_json(d: Path, **kw) -> None:
    meta = json.loads((d / "dataset.json").read_text())
    meta.update(kw)
    (d / "dataset.json").write_text(json.dumps(meta))


# ----------------------------------------------------------------------------- cases: datasets


def c_dataset_json_is_folder(tmp, sh):
    d = ds(tmp)
    (d / "dataset.json").unlink()
    (d / "dataset.json").mkdir()
    return ["data", "check", str(d)]


def c_dataset_json_bom_ok(tmp, sh):
    d = ds(tmp)
    (d / "dataset.json").write_bytes(b"\xef\xbb\xbf" + (d / "dataset.json").read_bytes())
    return ["data", "check", str(d)]


def c_class_name_newline(tmp, sh):
    d = ds(tmp)
    set_json(d, classes=["background", "left\nkidney", "c2"])
    return ["data", "check", str(d)]


def c_nnunet_folder_to_train(tmp, sh):
    from adele.testing import make_volume_dataset
    d = make_volume_dataset(tmp / "ds", layout="nnunet", n_subjects=3)
    return train(d, tmp / "out")


def c_nnunet_missing_channel_suffix(tmp, sh):
    from adele.testing import make_volume_dataset
    d = make_volume_dataset(tmp / "ds", layout="nnunet", n_subjects=3)
    (d / "imagesTr" / "sub01_0000.nii.gz").rename(d / "imagesTr" / "sub01.nii.gz")
    return ["data", "prepare", "volumes", str(d), str(tmp / "out")]


def c_nnunet_file_ending_without_dot_ok(tmp, sh):
    from adele.testing import make_volume_dataset
    d = make_volume_dataset(tmp / "ds", layout="nnunet", n_subjects=3)
    meta = json.loads((d / "dataset.json").read_text())
    meta["file_ending"] = "nii.gz"
    (d / "dataset.json").write_text(json.dumps(meta))
    return ["data", "prepare", "volumes", str(d), str(tmp / "out")]


def _nrrd_dataset(tmp: Path) -> Path:
    """A generic volume dataset whose files were converted to NRRD by SimpleITK (the reader nnU-Net uses)."""
    import SimpleITK as sitk
    from adele.testing import make_volume_dataset
    d = make_volume_dataset(tmp / "ds", n_subjects=3)
    for f in sorted(d.glob("*/*.nii.gz")):
        sitk.WriteImage(sitk.ReadImage(str(f)), str(f.with_name(f.name[:-7] + ".nrrd")))
        f.unlink()
    return d


def c_nrrd_volumes_ok(tmp, sh):
    d = _nrrd_dataset(tmp)
    return ["data", "prepare", "volumes", str(d), str(tmp / "out")]


def c_nrrd_truncated(tmp, sh):
    d = _nrrd_dataset(tmp)
    f = sorted((d / "labels").iterdir())[0]
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    return ["data", "prepare", "volumes", str(d), str(tmp / "out")]


def c_fold_out_of_range(tmp, sh):
    from adele.testing import make_volume_dataset
    d = make_volume_dataset(tmp / "ds", n_subjects=5)
    return ["data", "prepare", "volumes", str(d), str(tmp / "out"), "--fold", "5"]


def c_dataset_json_empty(tmp, sh):
    d = ds(tmp)
    (d / "dataset.json").write_text("")
    return ["data", "check", str(d)]


def c_ignore_index_bool(tmp, sh):
    d = ds(tmp)
    set_json(d, ignore_index=True)
    return ["data", "check", str(d)]


def c_256_classes(tmp, sh):
    d = ds(tmp)
    set_json(d, classes=["background"] + [f"c{i}" for i in range(255)])
    return ["data", "check", str(d)]


def c_empty_class_name(tmp, sh):
    d = ds(tmp)
    set_json(d, classes=["background", "", "c2"])
    return train(d, tmp / "out")


def c_split_is_a_file(tmp, sh):
    d = ds(tmp)
    shutil.rmtree(d / "val")
    (d / "val").write_text("not a folder")
    return ["data", "check", str(d)]


def c_images_only_subfolders(tmp, sh):
    d = ds(tmp)
    for p in (d / "val" / "images").iterdir():
        p.unlink()
    (d / "val" / "images" / "nested").mkdir()
    return ["data", "check", str(d)]


def c_zero_byte_label(tmp, sh):
    d = ds(tmp)
    (d / "train" / "labels" / "im01.png").write_bytes(b"")
    return train(d, tmp / "out")


def c_npy_4d_image(tmp, sh):
    d = ds(tmp)
    (d / "train" / "images" / "im00.png").unlink()
    np.save(d / "train" / "images" / "im00.npy", np.zeros((1, 1, 16, 16), np.float32))
    return ["data", "check", str(d)]


def c_npy_pickled_object(tmp, sh):
    d = ds(tmp)
    (d / "train" / "images" / "im00.png").unlink()
    np.save(d / "train" / "images" / "im00.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return ["data", "check", str(d)]


def c_npy_complex_image(tmp, sh):
    d = ds(tmp)
    (d / "train" / "images" / "im00.png").unlink()
    np.save(d / "train" / "images" / "im00.npy", np.zeros((16, 16), np.complex64))
    return ["data", "check", str(d)]


def c_zero_size_image(tmp, sh):
    d = ds(tmp)
    for sub in ("images", "labels"):
        (d / "train" / sub / "im00.png").unlink()
        np.save(d / "train" / sub / "im00.npy", np.zeros((0, 0), np.uint8 if sub == "labels" else np.float32))
    return train(d, tmp / "out")


def c_one_pixel_images_native_size(tmp, sh):
    d = ds(tmp)
    for split in ("train", "val", "test"):
        for sub in ("images", "labels"):
            for p in list((d / split / sub).iterdir()):
                p.unlink()
                np.save(p.with_suffix(".npy"), np.ones((1, 1), np.float32 if sub == "images" else np.uint8))
    return train(d, tmp / "out", "data.size=null")


def c_two_channel_npy(tmp, sh):
    d = ds(tmp)
    (d / "train" / "images" / "im00.png").unlink()
    np.save(d / "train" / "images" / "im00.npy", np.zeros((16, 16, 2), np.float32))
    return train(d, tmp / "out")


def c_negative_label_npy(tmp, sh):
    d = ds(tmp)
    (d / "train" / "labels" / "im00.png").unlink()
    np.save(d / "train" / "labels" / "im00.npy", np.full((16, 16), -1, np.int64))
    return ["data", "check", str(d)]


def c_all_ignore_val(tmp, sh):
    d = ds(tmp)
    for p in (d / "val" / "labels").iterdir():
        write_array(p, np.full((16, 16), 255, np.uint8))
    return train(d, tmp / "out")


def c_symlink_loop(tmp, sh):
    d = ds(tmp)
    a, b = d / "train" / "images" / "im05.png", d / "train" / "images" / "im06.png"
    os.symlink(b, a)
    os.symlink(a, b)
    return ["data", "check", str(d)]


def c_clean_label_other_shape(tmp, sh):
    d = ds(tmp, clean=True)
    write_array(d / "train" / "labels_clean" / "im00.png", np.zeros((8, 8), np.uint8))
    return train(d, tmp / "out")


def c_data_is_a_file(tmp, sh):
    (tmp / "data.png").write_bytes(b"x")
    return train(tmp / "data.png", tmp / "out")


def c_data_is_a_run_folder(tmp, sh):
    return train(sh["run"], tmp / "out")


def c_rgba_images_ok(tmp, sh):
    from PIL import Image

    d = ds(tmp)
    for p in (d / "train" / "images").iterdir():
        a = np.asarray(Image.open(p))
        Image.fromarray(np.stack([a, a, a, np.full_like(a, 255)], -1), "RGBA").save(p)
    for split in ("val", "test"):
        for p in (d / split / "images").iterdir():
            a = np.asarray(Image.open(p))
            Image.fromarray(np.stack([a, a, a], -1)).save(p)
    return train(d, tmp / "out")


def c_unicode_and_spaces_ok(tmp, sh):
    d = ds(tmp)
    return train(d, tmp / "runs" / "ré sultat ✓")


# ----------------------------------------------------------------------------- cases: settings


def c_data_path_null(tmp, sh):
    return ["train", "--out", str(tmp / "out"), *TINY, "data.path=null"]


def c_section_is_scalar(tmp, sh):
    (tmp / "c.yaml").write_text("train: 5\n")
    return ["train", "--config", str(tmp / "c.yaml"), "--data", str(ds(tmp)), "--out", str(tmp / "out"), *TINY]


def c_config_is_folder(tmp, sh):
    (tmp / "conf").mkdir()
    return ["train", "--config", str(tmp / "conf"), "--data", str(ds(tmp)), "--out", str(tmp / "out"), *TINY]


def c_negative_epochs_flag(tmp, sh):
    return ["train", "--data", str(ds(tmp)), "--out", str(tmp / "out"), "--epochs", "-3"]


def c_pretrained_is_folder(tmp, sh):
    (tmp / "w").mkdir()
    return train(ds(tmp), tmp / "out", f"model.pretrained={tmp / 'w'}")


def c_pretrained_pickled_object(tmp, sh):
    import torch

    torch.save({"model": argparse.Namespace(a=1)}, tmp / "w.pt")
    return train(ds(tmp), tmp / "out", f"model.pretrained={tmp / 'w.pt'}")


def c_pretrained_empty_dict(tmp, sh):
    import torch

    torch.save({}, tmp / "w.pt")
    return train(ds(tmp), tmp / "out", f"model.pretrained={tmp / 'w.pt'}")


def c_pretrained_foreign_keys(tmp, sh):
    import torch

    torch.save({"encoder.fc.weight": torch.zeros(3, 3)}, tmp / "w.pt")
    return train(ds(tmp), tmp / "out", f"model.pretrained={tmp / 'w.pt'}")


def c_config_show_binary(tmp, sh):
    (tmp / "c.yaml").write_bytes(bytes(range(256)))
    return ["config", "show", "--config", str(tmp / "c.yaml")]


# ----------------------------------------------------------------------------- cases: outputs and runs


def c_out_is_a_file(tmp, sh):
    (tmp / "out").write_text("precious")
    return train(ds(tmp), tmp / "out")


def c_out_symlink_to_dataset(tmp, sh):
    d = ds(tmp)
    os.symlink(d, tmp / "out")
    return train(d, tmp / "out", "--overwrite")


def c_out_empty_string(tmp, sh):
    return train(ds(tmp), "")


def c_out_long_middle_component(tmp, sh):
    return train(ds(tmp), tmp / ("y" * 260) / "run")


def c_config_inside_out_overwrite(tmp, sh):
    d = ds(tmp)
    shutil.copytree(sh["run"], tmp / "R")  # a run folder made by `adele train` ...
    (tmp / "R" / "my.yaml").write_text("optim:\n  lr: 0.02\n")  # ... where the user keeps a config
    return ["train", "--config", str(tmp / "R" / "my.yaml"), "--data", str(d), "--out", str(tmp / "R"), *TINY, "--overwrite"]


def c_predict_input_inside_out(tmp, sh):
    inp = tmp / "work" / "scans"
    write_array(inp / "a.png", np.zeros((16, 16), np.uint8))
    (tmp / "work" / ".adele-output.json").write_text(json.dumps({"command": "predict"}))  # even a marked folder
    return ["predict", str(sh["run"]), "--input", str(inp), "--out", str(tmp / "work"), "--overwrite"]


def c_predict_empty_folder(tmp, sh):
    (tmp / "in").mkdir()
    return ["predict", str(sh["run"]), "--input", str(tmp / "in"), "--out", str(tmp / "out")]


def c_predict_run_is_dataset(tmp, sh):
    d = ds(tmp)
    return ["predict", str(d), "--input", str(d / "test" / "images"), "--out", str(tmp / "out")]


def c_predict_corrupt_model(tmp, sh):
    shutil.copytree(sh["run"], tmp / "R")
    (tmp / "R" / "model.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    write_array(tmp / "in" / "a.png", np.zeros((16, 16), np.uint8))
    return ["predict", str(tmp / "R"), "--input", str(tmp / "in"), "--out", str(tmp / "out")]


def c_predict_name_clash(tmp, sh):
    write_array(tmp / "in" / "a.png", np.zeros((16, 16), np.uint8))
    from PIL import Image

    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp / "in" / "a.jpg")
    return ["predict", str(sh["run"]), "--input", str(tmp / "in"), "--out", str(tmp / "out")]


def own_run(tmp: Path, sh: dict) -> tuple[Path, Path]:
    """Copies of the shared dataset and run (the run's config pointing at the copy), for cases that could destroy them."""
    d, r = tmp / "ds", tmp / "R"
    shutil.copytree(sh["ds"], d)
    shutil.copytree(sh["run"], r)
    (r / "config.yaml").write_text((r / "config.yaml").read_text().replace(str(sh["ds"]), str(d)))
    return d, r


def c_export_into_dataset(tmp, sh):
    d, r = own_run(tmp, sh)
    return ["export-labels", str(r), "--out", str(d), "--overwrite"]


def c_noise_out_train_split_overwrite(tmp, sh):
    d = ds(tmp)
    return ["noise", "--data", str(d), "--out", str(d / "train"), "--overwrite"]


def c_noise_binary_yaml_recipe(tmp, sh):
    (tmp / "r.yaml").write_bytes(bytes(range(256)))
    return ["noise", "--data", str(ds(tmp)), "--out", str(tmp / "out"), "--recipe", str(tmp / "r.yaml")]


def c_noise_negative_previews(tmp, sh):
    return ["noise", "--data", str(ds(tmp)), "--out", str(tmp / "out"), "--previews", "-1"]


def c_report_out_is_file(tmp, sh):
    (tmp / "out").write_text("x")
    return ["report", str(sh["run"]), "--out", str(tmp / "out")]


def c_analyze_dataset_folder(tmp, sh):
    return ["analyze", "memorization", str(ds(tmp))]


def c_data_export_out_is_file(tmp, sh):
    (tmp / "out").write_text("x")
    return ["data", "export", "colin27", str(tmp / "out")]


def c_segthor_raw_is_file(tmp, sh):
    (tmp / "raw").write_text("x")
    return ["data", "prepare", "segthor", str(tmp / "raw"), str(tmp / "out")]


def c_resume_binary_config(tmp, sh):
    shutil.copytree(sh["run"], tmp / "R")
    (tmp / "R" / "config.yaml").write_bytes(bytes(range(256)))
    return ["train", "--out", str(tmp / "R"), "--resume"]


def c_resume_corrupt_checkpoints(tmp, sh):
    shutil.copytree(sh["run"], tmp / "R")
    (tmp / "R" / "model.pt").unlink()
    (tmp / "R" / "metrics.json").unlink()
    for p in (tmp / "R" / "checkpoints").iterdir():
        p.write_bytes(b"garbage")
    return ["train", "--out", str(tmp / "R"), "--resume", *TINY[2:]]


def c_resume_more_epochs_ok(tmp, sh):
    shutil.copytree(sh["run"], tmp / "R")
    return ["train", "--out", str(tmp / "R"), "--resume", "--epochs", "2", *TINY[2:]]


def c_debug_flag_after_command_ok(tmp, sh):
    return ["config", "show", "--debug"]


CASES = [
    # datasets
    Case("dataset.json is a folder", c_dataset_json_is_folder),
    Case("dataset.json is empty", c_dataset_json_empty),
    Case("dataset.json with a UTF-8 BOM", c_dataset_json_bom_ok, expect="ok"),
    Case("a class name with a line break", c_class_name_newline),
    Case("an nnU-Net folder given to train", c_nnunet_folder_to_train),
    Case("an nnU-Net image without _0000 among images with it", c_nnunet_missing_channel_suffix),
    Case("nnU-Net file_ending 'nii.gz' without its dot", c_nnunet_file_ending_without_dot_ok, expect="ok", no_output=()),
    Case("volumes stored as NRRD (SimpleITK, adele[formats])", c_nrrd_volumes_ok, expect="ok", no_output=()),
    Case("a truncated NRRD label volume", c_nrrd_truncated),
    Case("--fold 5 of 5 folds", c_fold_out_of_range),
    Case("ignore_index: true", c_ignore_index_bool),
    Case("256 classes", c_256_classes),
    Case("a class with an empty name", c_empty_class_name),
    Case("val is a file", c_split_is_a_file),
    Case("val/images holds only a subfolder", c_images_only_subfolders),
    Case("zero-byte label PNG", c_zero_byte_label),
    Case("4-D NPY image", c_npy_4d_image),
    Case("pickled-object NPY image", c_npy_pickled_object),
    Case("complex NPY image", c_npy_complex_image),
    Case("0 x 0 image and label", c_zero_size_image),
    Case("1 x 1 images at native size", c_one_pixel_images_native_size),
    Case("2-channel NPY image", c_two_channel_npy),
    Case("label value -1 (int64 NPY)", c_negative_label_npy),
    Case("val labels all ignore", c_all_ignore_val),
    Case("symlink loop in images/", c_symlink_loop),
    Case("labels_clean of another shape", c_clean_label_other_shape),
    Case("--data is a file", c_data_is_a_file, guard=("data.png",)),
    Case("--data is a run folder", c_data_is_a_run_folder, guard=("@run",)),
    Case("RGBA train, RGB val/test images", c_rgba_images_ok, expect="ok"),
    Case("--out with spaces and non-ASCII", c_unicode_and_spaces_ok, expect="ok"),
    # settings
    Case("--set key without =", with_settings("train.epochs")),
    Case("data.size=[0,0]", with_settings("data.size=[0,0]")),
    Case("data.size=[16]", with_settings("data.size=[16]")),
    Case("optim.lr=.nan", with_settings("optim.lr=.nan")),
    Case("adele.correction.scales=[]", with_settings("adele.correction.scales=[]", "method=adele")),
    Case("model.dropout=1", with_settings("model.dropout=1")),
    Case("train.batch_size=0", with_settings("train.batch_size=0")),
    Case("data.crop=[100000,100000]", with_settings("data.crop=[100000,100000]")),
    Case("model.width=1000000", with_settings("model.width=1000000")),
    Case("train.keep_last=0", with_settings("train.keep_last=0")),
    Case("optim.clip_grad=-1", with_settings("optim.clip_grad=-1")),
    Case("consistency scale 1000", with_settings("adele.consistency.scales=[1.0,1000]", "method=adele")),
    Case("train.seed=true", with_settings("train.seed=true")),
    Case("data.path=null", c_data_path_null, guard=()),
    Case("config section is a scalar", c_section_is_scalar),
    Case("--config is a folder", c_config_is_folder),
    Case("--epochs -3", c_negative_epochs_flag),
    Case("model.name empty", with_settings("model.name=")),
    Case("model.pretrained is a folder", c_pretrained_is_folder),
    Case("model.pretrained holds a pickled object", c_pretrained_pickled_object),
    Case("model.pretrained is an empty dict", c_pretrained_empty_dict),
    Case("model.pretrained of another architecture", c_pretrained_foreign_keys),
    Case("deeplab with backbone resnet9", with_settings("model.name=deeplab", "model.backbone=resnet9")),
    Case("config show of a binary file", c_config_show_binary, guard=()),
    Case("data.scale_range=[0.5,100]", with_settings("data.scale_range=[0.5,100]")),
    # outputs and runs
    Case("--out is an existing file", c_out_is_a_file, guard=("ds", "out"), no_output=()),
    Case("--out is a symlink to the dataset, --overwrite", c_out_symlink_to_dataset, no_output=()),
    Case("--out ''", c_out_empty_string, no_output=()),
    Case("--out with a 260-byte folder name", c_out_long_middle_component),
    Case("--overwrite of a run holding the --config", c_config_inside_out_overwrite, guard=("ds", "R"), no_output=()),
    Case("predict --out contains --input (marked)", c_predict_input_inside_out, guard=("work", "@run"), no_output=()),
    Case("predict an empty folder", c_predict_empty_folder, guard=("in", "@run")),
    Case("predict RUN is a dataset", c_predict_run_is_dataset),
    Case("predict with a corrupt model.pt", c_predict_corrupt_model, guard=("R", "in")),
    Case("predict a.png and a.jpg", c_predict_name_clash, guard=("in", "@run")),
    Case("export-labels into the run's dataset", c_export_into_dataset, guard=("ds", "R"), no_output=()),
    Case("noise --out DS/train --overwrite", c_noise_out_train_split_overwrite, no_output=()),
    Case("noise recipe: binary .yaml", c_noise_binary_yaml_recipe),
    Case("noise --previews -1", c_noise_negative_previews),
    Case("report --out is a file", c_report_out_is_file, guard=("out", "@run"), no_output=()),
    Case("analyze a dataset folder", c_analyze_dataset_folder),
    Case("data export --out is a file", c_data_export_out_is_file, guard=("out",), no_output=()),
    Case("prepare segthor: raw is a file", c_segthor_raw_is_file, guard=("raw",)),
    Case("--resume, config.yaml binary", c_resume_binary_config, guard=("R",), no_output=()),
    Case("--resume, every checkpoint corrupt", c_resume_corrupt_checkpoints, guard=(), no_output=()),
    Case("--resume --epochs 2 (extend a run)", c_resume_more_epochs_ok, expect="ok", guard=(), no_output=()),
    Case("--debug after the command", c_debug_flag_after_command_ok, expect="ok", guard=(), no_output=()),
]


def digest(path: Path) -> dict:
    if path.is_symlink() or path.is_file():
        return {"": hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else os.readlink(path)}
    if not path.exists():
        return {"": "missing"}
    return {p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file() and p.name != ".adele.lock"}


def run_case(case: Case, shared: dict, env: dict) -> None:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hostile-") as t:
        tmp = Path(t)
        try:
            argv = case.build(tmp, shared)
        except ImportError as exc:  # an optional package the case's inputs need (SimpleITK for NRRD)
            case.result, case.detail = "skipped", f"{exc.name} is not installed (pip install 'adele[formats]')"
            case.seconds = time.perf_counter() - t0
            return
        guards = {g: (shared[g[1:]] if g.startswith("@") else tmp / g) for g in case.guard}
        before = {g: digest(p) for g, p in guards.items()}
        outs_before = {o: (tmp / o).exists() for o in case.no_output}
        proc = subprocess.run([sys.executable, "-m", "adele", *argv], capture_output=True, text=True, env=env, cwd=tmp, timeout=300)
        err = proc.stderr.strip()
        lines = [line for line in err.splitlines() if line.strip() and not line.startswith("warning: ")]
        lost = [g for g, p in guards.items() if digest(p) != before[g]]
        partial = [o for o in case.no_output if (tmp / o).exists() and not outs_before[o]]
        if lost:
            case.result = "data lost"
        elif "Traceback" in err:
            case.result = "traceback"
        elif case.expect == "ok":
            case.result = "exit 0 as intended" if proc.returncode == 0 else "other"
        elif proc.returncode == 0:
            case.result = "exit 0"
        elif proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "):
            case.result = "partial output" if partial else "one-line exit 2"
        else:
            case.result = "other"
        case.detail = f"rc {proc.returncode}: " + (lines[-1] if lines else proc.stdout.strip()[-200:])
        if lost:
            case.detail += f" (changed: {', '.join(lost)})"
        if partial:
            case.detail += f" (left behind: {', '.join(partial)})"
        case.tmp = str(tmp)
    case.seconds = time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", default=None, help="only cases whose name contains this text")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every case's outcome")
    add_result_options(ap, "hostile_inputs")
    args = ap.parse_args(argv)
    env = dict(os.environ, OMP_NUM_THREADS="1", ADELE_NO_PROGRESS="1", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cases = [c for c in CASES if args.k is None or args.k.lower() in c.name.lower()]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hostile-shared-") as t:
        shared_root = Path(t)
        shared = {"ds": ds(shared_root)}
        shared["run"] = shared_root / "run"
        subprocess.run([sys.executable, "-m", "adele", *train(shared["ds"], shared["run"])], env=env, check=True, capture_output=True, timeout=300)
        for case in cases:
            run_case(case, shared, env)
            if args.verbose:
                print(f"{case.result:20s} {case.name}: {case.detail}")
    counts: dict[str, int] = {}
    for c in cases:
        counts[c.result] = counts.get(c.result, 0) + 1
    intended = {"one-line exit 2", "exit 0 as intended", "skipped"}
    total_s = time.perf_counter() - t0
    print(f"hostile-input pass: {len(cases)} cases tried in {total_s:.0f} s")
    print(f"  one-line error, exit 2 (refused as intended): {counts.get('one-line exit 2', 0)}")
    print(f"  exit 0 on a valid but hostile-looking input:  {counts.get('exit 0 as intended', 0)}")
    if counts.get("skipped"):
        print(f"  skipped, an optional package missing:          {counts['skipped']} "
              f"({', '.join(c.name for c in cases if c.result == 'skipped')}: {next(c.detail for c in cases if c.result == 'skipped')})")
    others = {k: v for k, v in counts.items() if k not in intended}
    print(f"  anything else: {sum(others.values())}" + (" (" + ", ".join(f"{k}: {v}" for k, v in sorted(others.items())) + ")" if others else ""))
    for c in cases:
        if c.result not in intended:
            print(f"    {c.result}: {c.name}: {c.detail}")
    target = result_target(args, "hostile_inputs", smoke=args.k is not None)
    if target:
        def plain(text: str, tmp: str) -> str:  # no temporary paths of this machine in the result file
            return (text.replace(tmp, "TMP") if tmp else text).replace(str(shared_root), "SHARED")

        write_result(target[0], {"k": args.k, "cases": len(cases), "training": " ".join(TINY)},
                     {"seconds": total_s, "refused_as_intended": counts.get("one-line exit 2", 0),
                      "exit_0_as_intended": counts.get("exit 0 as intended", 0), "skipped": counts.get("skipped", 0),
                      "anything_else": sum(others.values()),
                      "anything_else_by_kind": others,
                      "cases": [{"name": c.name, "expect": c.expect, "result": c.result, "intended": c.result in intended - {"skipped"},
                                 "detail": plain(c.detail, c.tmp), "seconds": c.seconds} for c in cases]},
                     out_dir=target[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
