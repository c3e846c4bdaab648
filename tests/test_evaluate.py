"""``adele evaluate``: per-case and mean Dice / IoU / volume difference of a folder of masks against references."""
import json
import math

import nibabel as nib
import numpy as np
import pytest

from adele.cli import main
from adele.data.io import write_array
from adele.evaluation import evaluate_case, evaluate_folders, format_table
from adele.metrics import foreground_mean, present_in_truth, scores_from_confusion
from adele.testing import make_volume_dataset

# ----------------------------------------------------------------------------- one case, counted by hand

# class 1: ref 4 px, pred 4 px, 3 shared -> TP 3, FP 1, FN 1: Dice 6/8, IoU 3/5
# class 2: ref 2 px, pred 1 of them      -> TP 1, FP 0, FN 1: Dice 2/3, IoU 1/2
# class 3: not in ref, predicted once where the ref is counted (and once on an ignore pixel, not counted) -> FP 1, Dice 0
# class 4: in neither -> NaN
REF = np.array([[0, 1, 1, 255],
                [0, 1, 1, 0],
                [2, 2, 0, 0]], np.uint8)
PRED = np.array([[0, 1, 0, 3],
                 [1, 1, 1, 0],
                 [2, 0, 0, 3]], np.uint8)


def test_known_counts_on_a_tiny_case():
    out = evaluate_case(PRED, REF, num_classes=5, ignore_index=255, voxel_volume=2.0)
    m = out["metrics"]
    assert sorted(m) == ["1", "2", "3", "4"]  # foreground only
    assert {k: m["1"][k] for k in ("TP", "FP", "FN", "TN", "n_pred", "n_ref")} == {"TP": 3, "FP": 1, "FN": 1, "TN": 6, "n_pred": 4, "n_ref": 4}
    assert m["1"]["Dice"] == pytest.approx(0.75) and m["1"]["IoU"] == pytest.approx(0.6) and m["1"]["volume_difference"] == 0.0
    assert {k: m["2"][k] for k in ("TP", "FP", "FN", "n_pred", "n_ref")} == {"TP": 1, "FP": 0, "FN": 1, "n_pred": 1, "n_ref": 2}
    assert m["2"]["Dice"] == pytest.approx(2 / 3) and m["2"]["IoU"] == pytest.approx(0.5)
    assert m["2"]["volume_difference"] == pytest.approx(-2.0)  # one voxel missing, 2.0 units each
    # predicted but absent from the reference: false positives (the ignore pixel not among them), Dice 0
    assert (m["3"]["TP"], m["3"]["FP"], m["3"]["FN"], m["3"]["n_ref"]) == (0, 1, 0, 0)
    assert m["3"]["Dice"] == 0.0 and m["3"]["volume_difference"] == pytest.approx(2.0)
    assert math.isnan(m["4"]["Dice"]) and math.isnan(m["4"]["IoU"]) and m["4"]["n_pred"] == m["4"]["n_ref"] == 0
    # 11 counted pixels: the ignore pixel is in no count
    assert out["confusion"].sum() == 11 and m["1"]["TP"] + m["1"]["FP"] + m["1"]["FN"] + m["1"]["TN"] == 11
    # the mean over classes present in the reference leaves out 3 (only predicted) and 4 (absent)
    cm = out["confusion"]
    assert foreground_mean(scores_from_confusion(cm)["dice"], present_in_truth(cm)) == pytest.approx((0.75 + 2 / 3) / 2)


def test_evaluate_case_refuses_mismatched_shapes_and_out_of_range_ids():
    with pytest.raises(ValueError, match="shape"):
        evaluate_case(PRED[:2], REF, 5)
    with pytest.raises(ValueError, match="class ids"):
        evaluate_case(PRED, REF, 3)  # class 3 predicted on a counted pixel


def test_folders_mean_over_cases_present_in_the_reference(tmp_path):
    """Two 2D cases, one PNG and one NPY; the classes are named by a nnU-Net dataset.json whose ignore label is 3."""
    ref_a = np.zeros((4, 4), np.uint8)
    ref_a[:2, :2], ref_a[2:, 2:] = 1, 2
    pred_a = ref_a.copy()
    pred_a[2:, 2:] = 0
    pred_a[3, 3] = 2  # class 2: TP 1, FN 3 -> Dice 0.4, IoU 0.25, volume 1 - 4 = -3
    ref_b = np.zeros((4, 4), np.uint8)
    ref_b[:2, :2] = 1
    ref_b[3, 0] = 3  # ignore
    pred_b = np.zeros((4, 4), np.uint8)
    pred_b[:2, 1:3] = 1  # class 1: TP 2, FP 2, FN 2 -> Dice 0.5, IoU 1/3
    pred_b[3, 3] = 2  # class 2 is not in the reference: 1 FP, left out of the means
    pred_b[3, 0] = 2  # on the ignore pixel: not counted
    root = tmp_path / "ds"
    (root / "dataset.json").parent.mkdir(parents=True)
    (root / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "liver": 1, "tumour": 2, "ignore": 3}}))
    for folder, a, b in (("labelsTs", ref_a, ref_b), ("pred", pred_a, pred_b)):
        write_array(root / folder / "case_a.png", a)
        write_array(root / folder / "case_b.npy", b)

    s = evaluate_folders(root / "pred", root / "labelsTs")
    assert s["class_names"] == {"1": "liver", "2": "tumour"} and s["ignore_index"] == 3 and s["volume_unit"] == "pixels"
    assert s["num_cases"] == 2
    cases = {c["reference_file"].rsplit("/", 1)[-1]: c["metrics"] for c in s["metric_per_case"]}
    assert cases["case_a.png"]["1"]["Dice"] == 1.0 and cases["case_a.png"]["2"]["Dice"] == 0.4
    assert cases["case_b.npy"]["1"]["Dice"] == 0.5 and cases["case_b.npy"]["2"]["FP"] == 1 and cases["case_b.npy"]["2"]["Dice"] == 0.0
    assert cases["case_b.npy"]["1"]["TN"] + 2 + 2 + 2 == 15  # 16 pixels, one ignored
    # nnU-Net's mean: tumour only predicted in case_b counts as 0
    assert s["mean"]["1"]["Dice"] == pytest.approx(0.75) and s["mean"]["2"]["Dice"] == pytest.approx(0.2)
    assert s["mean"]["1"]["IoU"] == pytest.approx((1 + 1 / 3) / 2, abs=1e-6) and s["mean"]["2"]["IoU"] == pytest.approx(0.125)
    assert s["mean"]["2"]["volume_difference"] == pytest.approx((-3 + 1) / 2)  # volumes over all cases
    assert s["volume_difference"] == {"case_a": {"1": 0.0, "2": -3.0}, "case_b": {"1": 0.0, "2": 1.0}}
    assert s["foreground_mean"]["Dice"] == pytest.approx((0.75 + 0.2) / 2)
    # per class over the cases whose reference has it: tumour only from case_a
    assert s["mean_present"]["1"]["Dice"] == pytest.approx(0.75) and s["mean_present"]["2"]["Dice"] == pytest.approx(0.4)
    assert s["mean_present"]["2"]["IoU"] == pytest.approx(0.25)
    assert s["foreground_mean_present"]["Dice"] == pytest.approx((0.75 + 0.4) / 2)
    # per case: a (1 + 0.4) / 2 = 0.7, b 0.5 (tumour absent) -> 0.6
    assert s["per_case_mean"]["Dice"] == pytest.approx(0.6)
    # dataset level, summed confusion: liver TP 6 FP 2 FN 2 -> 0.75; tumour TP 1 FP 1 FN 3 -> 1/3
    assert s["dataset_level"]["Dice"] == {"1": 0.75, "2": pytest.approx(1 / 3, abs=1e-6)}
    assert s["dataset_level"]["mean_Dice"] == pytest.approx((0.75 + 1 / 3) / 2, abs=1e-6)

    only = evaluate_folders(root / "pred", root / "labelsTs", classes=["tumour"])
    assert list(only["mean"]) == ["2"] and only["foreground_mean"]["Dice"] == pytest.approx(0.2)
    assert only["foreground_mean_present"]["Dice"] == pytest.approx(0.4)
    assert evaluate_folders(root / "pred", root / "labelsTs", classes=[2])["mean"] == only["mean"]


def test_a_class_in_no_reference_counts_0_in_nnunets_mean_and_is_left_out_of_the_present_one(tmp_path):
    ref = np.zeros((3, 3), np.uint8)
    ref[0, 0] = 1
    pred = ref.copy()
    pred[2, 2] = 2  # class 2 only predicted; no dataset.json: classes 1..2 from the ids found
    write_array(tmp_path / "ref" / "x.png", ref)
    write_array(tmp_path / "pred" / "x.png", pred)
    s = evaluate_folders(tmp_path / "pred", tmp_path / "ref")
    assert s["class_names"] == {"1": "1", "2": "2"} and s["ignore_index"] == 255
    assert s["mean"]["2"]["Dice"] == 0.0 and s["mean"]["2"]["FP"] == 1.0 and s["foreground_mean"]["Dice"] == 0.5
    assert s["mean_present"]["2"]["Dice"] is None and s["foreground_mean_present"]["Dice"] == 1.0
    assert s["dataset_level"]["mean_Dice"] == 1.0
    assert s["dataset_level"]["Dice"]["2"] is None and s["dataset_level"]["absent_classes"] == {"2": 1}
    assert s["dataset_level"]["mean_classes"] == ["1"]


# ----------------------------------------------------------------------------- the command, 2D


def _pngs(tmp_path):
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 3, (12, 10)).astype(np.uint8)
    pred = ref.copy()
    pred[:3] = 0
    for folder, arr in (("ref", ref), ("pred", pred)):
        for name in ("im00", "im01"):
            write_array(tmp_path / folder / f"{name}.png", arr)
    return tmp_path / "pred", tmp_path / "ref", ref, pred


def test_cli_png_folder_writes_summary_and_prints_a_table(tmp_path, capsys):
    pred_dir, ref_dir, ref, pred = _pngs(tmp_path)
    assert main(["evaluate", str(pred_dir), str(ref_dir)]) == 0
    out = capsys.readouterr().out
    s = json.loads((pred_dir / "summary.json").read_text())
    for c in (1, 2):
        tp, n_ref, n_pred = int(((ref == c) & (pred == c)).sum()), int((ref == c).sum()), int((pred == c).sum())
        assert s["mean"][str(c)]["Dice"] == pytest.approx(2 * tp / (n_ref + n_pred), abs=1e-6)
        assert s["volume_difference"]["im00"][str(c)] == n_pred - n_ref
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["class", "Dice", "IoU"] and "vol. diff (pixels)" in lines[0]
    assert any(line.startswith("foreground mean") for line in lines) and lines[-1] == f"wrote {pred_dir / 'summary.json'}"
    row = next(line for line in lines if line.startswith("1 "))
    assert float(row.split()[1]) == pytest.approx(s["mean"]["1"]["Dice"], abs=1e-4)


def test_cli_refuses_an_existing_summary_without_overwrite(tmp_path, capsys):
    pred_dir, ref_dir, _, _ = _pngs(tmp_path)
    out = tmp_path / "reports" / "s.json"
    assert main(["evaluate", str(pred_dir), str(ref_dir), "--out", str(out)]) == 0
    assert main(["evaluate", str(pred_dir), str(ref_dir), "--out", str(out), "--classes", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "--overwrite" in err and len(err.splitlines()) == 1
    assert list(json.loads(out.read_text())["mean"]) == ["1", "2"]  # untouched
    assert main(["evaluate", str(pred_dir), str(ref_dir), "--out", str(out), "--classes", "1", "--overwrite"]) == 0
    assert list(json.loads(out.read_text())["mean"]) == ["1"]
    other = tmp_path / "notes.json"
    other.write_text('{"mine": 1}')
    capsys.readouterr()
    assert main(["evaluate", str(pred_dir), str(ref_dir), "--out", str(other), "--overwrite"]) == 2
    assert "not a summary written by `adele evaluate`" in capsys.readouterr().err
    assert json.loads(other.read_text()) == {"mine": 1}


# ----------------------------------------------------------------------------- NIfTI


def _nifti(path, arr, zooms=(0.5, 2.0, 3.0), offset=(10.0, -4.0, 7.0)):
    affine = np.diag(list(zooms) + [1.0])
    affine[:3, 3] = offset
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(arr, affine), str(path))


def test_nifti_volume_difference_in_ml_uses_the_zooms(tmp_path, capsys):
    ref = np.zeros((6, 5, 4), np.uint8)
    ref[1:3, 1:3, 1:3] = 1  # 8 voxels
    pred = np.zeros_like(ref)
    pred[1:3, 1:3, 1:4] = 1  # 12 voxels containing the 8: TP 8, FP 4 -> Dice 16/20
    _nifti(tmp_path / "ref" / "c1.nii.gz", ref)
    _nifti(tmp_path / "pred" / "c1.nii", pred)  # .nii matches .nii.gz: the case is the name without either
    s = evaluate_folders(tmp_path / "pred", tmp_path / "ref")
    assert s["volume_unit"] == "ml"
    m = s["metric_per_case"][0]["metrics"]["1"]
    assert (m["TP"], m["FP"], m["FN"], m["n_pred"], m["n_ref"]) == (8, 4, 0, 12, 8)
    assert m["Dice"] == pytest.approx(0.8) and m["IoU"] == pytest.approx(8 / 12, abs=1e-6)
    # 4 voxels of 0.5 x 2 x 3 = 3 mm^3 -> 12 mm^3 = 0.012 ml
    assert m["volume_difference"] == pytest.approx(0.012)
    assert main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "ref")]) == 0
    assert "vol. diff (ml)" in capsys.readouterr().out


def test_nnunet_layout_labels_against_a_perturbed_copy(tmp_path, capsys):
    root = make_volume_dataset(tmp_path / "Dataset001_Tiny", layout="nnunet", test_cases=2)
    assert (root / "imagesTs").is_dir() and not (root / "labelsTs").exists()
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    expected: dict[str, dict[int, float]] = {}
    counts = {}
    for p in sorted((root / "labelsTr").glob("*.nii.gz")):
        img = nib.load(str(p))
        ref = np.asarray(img.dataobj)
        pred = ref.copy()
        case = p.name[: -len(".nii.gz")]
        if case == "sub00":
            pred[pred == 2] = 0  # class 2 missed entirely: Dice 0
        if case == "sub01":
            drop = (ref == 1) & (np.arange(ref.shape[0])[:, None, None] % 2 == 0)
            pred[drop] = 0  # class 1 on every other stored slice missed: TP = n - k, FN = k
            n, k = int((ref == 1).sum()), int(drop.sum())
            assert 0 < k < n
            expected[case] = {1: 2 * (n - k) / (2 * n - k)}
            counts[case] = k
        nib.save(nib.Nifti1Image(pred, img.affine, img.header), str(pred_dir / p.name))
    assert main(["evaluate", str(pred_dir), str(root / "labelsTr")]) == 0
    out = capsys.readouterr().out
    assert "left_blob" in out and "right_blob" in out
    s = json.loads((pred_dir / "summary.json").read_text())
    assert s["num_cases"] == 5 and s["class_names"] == {"1": "left_blob", "2": "right_blob"}
    per = {c["prediction_file"].rsplit("/", 1)[-1][: -len(".nii.gz")]: c["metrics"] for c in s["metric_per_case"]}
    assert expected["sub01"][1] < 1 and per["sub01"]["1"]["Dice"] == pytest.approx(expected["sub01"][1], abs=1e-6)
    assert per["sub00"]["2"]["Dice"] == 0.0 and per["sub00"]["1"]["Dice"] == 1.0
    assert s["mean"]["2"]["Dice"] == pytest.approx(4 / 5)
    assert s["mean"]["1"]["Dice"] == pytest.approx((4 + expected["sub01"][1]) / 5, abs=1e-6)
    # voxels of 2.5 x 1.1 x 0.8 mm = 2.2 mm^3 (the dataset's anisotropic grid)
    n2 = per["sub00"]["2"]["n_ref"]
    assert s["volume_difference"]["sub00"]["2"] == pytest.approx(-n2 * 2.2 / 1000, abs=1e-6)
    assert s["volume_difference"]["sub01"]["1"] == pytest.approx(-counts["sub01"] * 2.2 / 1000, abs=1e-6)
    assert s["foreground_mean"]["Dice"] == pytest.approx((s["mean"]["1"]["Dice"] + 0.8) / 2, abs=1e-6)


# ----------------------------------------------------------------------------- one-line errors


def _case_prediction_without_label(tmp_path):
    write_array(tmp_path / "pred" / "extra.png", np.zeros((4, 4), np.uint8))
    return "'extra'", "add the reference"


def _case_label_without_prediction(tmp_path):
    write_array(tmp_path / "ref" / "lonely.png", np.zeros((4, 4), np.uint8))
    write_array(tmp_path / "ref" / "lonely2.npy", np.zeros((4, 4), np.uint8))
    return "2 cases ('lonely', 'lonely2')", "predict those cases"


def _case_2d_shape(tmp_path):
    write_array(tmp_path / "pred" / "a.png", np.zeros((5, 4), np.uint8))
    return "case 'a'", "shape (5, 4) differs"


def _case_nifti_shape(tmp_path):
    (tmp_path / "pred" / "a.png").unlink()
    (tmp_path / "ref" / "a.png").unlink()
    _nifti(tmp_path / "ref" / "a.nii.gz", np.zeros((4, 4, 3), np.uint8))
    _nifti(tmp_path / "pred" / "a.nii.gz", np.zeros((4, 4, 2), np.uint8))
    return "case 'a'", "voxel grid"


def _case_nifti_affine(tmp_path):
    (tmp_path / "pred" / "a.png").unlink()
    (tmp_path / "ref" / "a.png").unlink()
    _nifti(tmp_path / "ref" / "a.nii.gz", np.zeros((4, 4, 3), np.uint8))
    _nifti(tmp_path / "pred" / "a.nii.gz", np.zeros((4, 4, 3), np.uint8), zooms=(0.5, 2.0, 3.5))
    return "case 'a'", "affine differs"


def _case_missing_folder(tmp_path):
    import shutil

    shutil.rmtree(tmp_path / "ref")
    return "reference folder not found", "pass a folder of masks"


def _case_background_class(tmp_path):
    return "--classes: 0", "background"


@pytest.mark.parametrize("make", [_case_prediction_without_label, _case_label_without_prediction, _case_2d_shape, _case_nifti_shape,
                                  _case_nifti_affine, _case_missing_folder, _case_background_class])
def test_bad_inputs_give_one_line(make, tmp_path, capsys):
    write_array(tmp_path / "pred" / "a.png", np.zeros((4, 4), np.uint8))
    write_array(tmp_path / "ref" / "a.png", np.zeros((4, 4), np.uint8))
    names, fix = make(tmp_path)
    extra = ["--classes", "0"] if make is _case_background_class else []
    rc = main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "ref"), *extra])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert names in lines[0] and fix in lines[0], lines[0]
    assert not (tmp_path / "pred" / "summary.json").exists()


# ----------------------------------------------------------------------------- nnU-Net's means, counted by hand


def test_mean_and_foreground_mean_are_nnunets(tmp_path):
    """``mean`` / ``foreground_mean`` as nnU-Net v2's compute_metrics_on_folder: per case, Dice is NaN when the class
    is in neither mask and 0 when only predicted; ``mean`` is the NaN-skipping mean over cases, ``foreground_mean`` the
    plain mean over the classes (NaN, written null, when a class is NaN). The means over the cases whose reference
    has the class are ``mean_present`` / ``foreground_mean_present``."""
    z = np.zeros((2, 3), np.uint8)
    # case a: class 1 ref 2 px, pred 2 px, 1 shared -> Dice 2*1/4 = 0.5, IoU 1/3; class 2 only predicted (1 px) -> 0, 0
    ref_a, pred_a = z.copy(), z.copy()
    ref_a[0, :2], pred_a[0, 1:] = 1, 1
    pred_a[1, 0] = 2
    # case b: both classes exact -> 1, 1
    ref_b = np.array([[1, 0, 0], [0, 2, 2]], np.uint8)
    pred_b = ref_b.copy()
    # case c: background only in both -> NaN for both classes
    for folder, masks in (("ref", (ref_a, ref_b, z)), ("pred", (pred_a, pred_b, z))):
        for name, m in zip("abc", masks):
            write_array(tmp_path / folder / f"{name}.png", m)

    s = evaluate_folders(tmp_path / "pred", tmp_path / "ref")
    per = {c["reference_file"].rsplit("/", 1)[-1]: c["metrics"] for c in s["metric_per_case"]}
    assert per["a.png"]["2"]["Dice"] == 0.0 and per["c.png"]["1"]["Dice"] is None and per["c.png"]["2"]["IoU"] is None
    # nnU-Net: class 1 nanmean(0.5, 1, NaN) = 0.75; class 2 nanmean(0, 1, NaN) = 0.5; foreground (0.75 + 0.5) / 2
    assert s["mean"]["1"]["Dice"] == pytest.approx(0.75) and s["mean"]["2"]["Dice"] == pytest.approx(0.5)
    assert s["mean"]["1"]["IoU"] == pytest.approx((1 / 3 + 1) / 2, abs=1e-6) and s["mean"]["2"]["IoU"] == pytest.approx(0.5)
    assert s["foreground_mean"]["Dice"] == pytest.approx(0.625)
    assert s["mean"]["2"]["FP"] == pytest.approx(1 / 3, abs=1e-6)  # counts: over all cases
    # over the cases whose reference has the class: class 2 from case b only
    assert s["mean_present"]["1"]["Dice"] == pytest.approx(0.75) and s["mean_present"]["2"]["Dice"] == pytest.approx(1.0)
    assert s["foreground_mean_present"]["Dice"] == pytest.approx(0.875)
    table = format_table(s).splitlines()  # the table says which mean each column is
    assert table[0].split()[-3:] == ["Dice", "in", "ref"] and any("nnU-Net's 'mean'" in line for line in table)
    assert next(line for line in table if line.startswith("2 ")).split()[1::4] == ["0.5000", "1.0000"]

    # a class dataset.json lists but no mask holds: NaN in nnU-Net's mean, so its foreground mean is NaN (null) too
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "a": 1, "b": 2, "never": 3}}))
    s3 = evaluate_folders(tmp_path / "pred", tmp_path / "ref")
    assert s3["mean"]["3"]["Dice"] is None and s3["mean"]["3"]["FP"] == 0.0
    assert s3["foreground_mean"]["Dice"] is None and s3["foreground_mean"]["FP"] == pytest.approx((1 / 3 + 1 / 3 + 0) / 3, abs=1e-6)
    assert s3["foreground_mean_present"]["Dice"] == pytest.approx(0.875)
