"""nnU-Net's ignore label on import: `adele data prepare volumes` reads "ignore": K (K = the number of classes) as adele's ignore."""
import json

import numpy as np
import pytest

from adele.cli import main
from adele.data import read_label
from adele.data.volumes import label_slices, read_volume
from adele.testing import add_nnunet_ignore, make_volume_dataset


def test_nnunet_ignore_label_becomes_adeles_ignore(tmp_path, capsys):
    src = add_nnunet_ignore(make_volume_dataset(tmp_path / "Dataset001_Tiny", layout="nnunet", n_subjects=5))
    out = tmp_path / "prep"
    assert main(["data", "prepare", "volumes", str(src), str(out)]) == 0
    assert "3 is nnU-Net's ignore label" in capsys.readouterr().out
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["classes"] == ["background", "left_blob", "right_blob"] and meta["ignore_index"] == 255
    assert json.loads((out / "prepare.json").read_text())["ignore_label"] == 3
    idx = json.loads((out / "volumes.json").read_text())
    seen_ignore = 0
    for subject, rec in idx["subjects"].items():
        given = read_volume(src / "labelsTr" / f"{subject}.nii.gz", "label")
        sl = label_slices(given, np.asarray(rec["ornt"]), idx["spec"]["axis"])
        for sid, k in rec["slices"].items():
            lab = read_label(out / rec["split"] / "labels" / f"{sid}.png")
            np.testing.assert_array_equal(lab, np.where(sl[k] == 3, 255, sl[k]))
            seen_ignore += int((lab == 255).sum())
        # the native copy keeps the file as given (export-labels reads it)
        assert (out / rec["label_file"]).read_bytes() == (src / "labelsTr" / f"{subject}.nii.gz").read_bytes()
    assert seen_ignore > 0


@pytest.mark.parametrize("value", [5, 1, "3"])
def test_an_ignore_label_that_is_not_the_highest_id_is_refused(tmp_path, capsys, value):
    src = make_volume_dataset(tmp_path / "Dataset001_Tiny", layout="nnunet", n_subjects=3)
    meta = json.loads((src / "dataset.json").read_text())
    meta["labels"]["ignore"] = value
    (src / "dataset.json").write_text(json.dumps(meta))
    assert main(["data", "prepare", "volumes", str(src), str(tmp_path / "prep")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(src / "dataset.json") in err
    assert "nnU-Net's ignore label must be the highest label id" in err and '"ignore": 3' in err
    assert not (tmp_path / "prep").exists()


def test_without_the_declaration_the_value_is_still_refused(tmp_path, capsys):
    src = add_nnunet_ignore(make_volume_dataset(tmp_path / "Dataset001_Tiny", layout="nnunet", n_subjects=3))
    meta = json.loads((src / "dataset.json").read_text())
    del meta["labels"]["ignore"]
    (src / "dataset.json").write_text(json.dumps(meta))
    assert main(["data", "prepare", "volumes", str(src), str(tmp_path / "prep")]) == 2
    assert "has label values [3]" in capsys.readouterr().err
