import csv
import json
import shutil

import numpy as np
import pytest

from adele.cli import main
from adele.metrics import memorization_fractions

pytestmark = pytest.mark.usefixtures("one_thread")


def test_memorization_fractions_by_clean_class():
    # 3 classes; wrong[clean][noisy]
    rec = {"epoch": 1, "wrong": [[0, 4, 0], [6, 0, 2], [0, 0, 0]],
           "pred_clean": [[0, 1, 0], [3, 0, 1], [0, 0, 0]], "pred_noisy": [[0, 3, 0], [2, 0, 0], [0, 0, 0]]}
    m = memorization_fractions([rec], ["bg", "a", "b"])
    assert m["names"] == ["bg", "a", "b", "total"]
    np.testing.assert_allclose(m["wrong"][0], [4, 8, 0, 12])
    np.testing.assert_allclose(m["early_learning"][0], [1 / 4, 4 / 8, np.nan, 5 / 12])
    np.testing.assert_allclose(m["memorized"][0], [3 / 4, 2 / 8, np.nan, 5 / 12])


def test_analyze_memorization_writes_csv_png_table(tiny_run, tmp_path, capsys):
    run = tiny_run()
    out = tmp_path / "mem"
    assert main(["analyze", "memorization", str(run), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "total" in printed and "early" in printed
    classes = json.loads((run / "run.json").read_text())["classes"]
    epochs = len(json.loads((run / "memorization.json").read_text()))
    rows = list(csv.DictReader((out / "memorization.csv").open()))
    assert len(rows) == epochs * (len(classes) + 1)
    assert set(rows[0]) == {"epoch", "class", "wrong_pixels", "early_learning", "memorized"}
    total = [r for r in rows if r["class"] == "total"]
    assert all(int(r["wrong_pixels"]) > 0 and 0 <= float(r["early_learning"]) + float(r["memorized"]) <= 1 for r in total)
    assert (out / "memorization.png").stat().st_size > 1000


def test_analyze_memorization_without_clean_labels(tiny_run, tmp_path, capsys):
    run = tmp_path / "noclean"
    shutil.copytree(tiny_run(), run)
    (run / "memorization.json").unlink()
    assert main(["analyze", "memorization", str(run)]) == 2
    err = capsys.readouterr().err
    assert "no memorization.json" in err and len(err.strip().splitlines()) == 1
