import csv
import json

import numpy as np
import pytest

from adele.cli import main
from adele.data import open_dataset, read_label

from adele.testing import ADELE_FORCED

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    run = tiny_run(*ADELE_FORCED)
    out = tmp_path_factory.mktemp("export") / "labels"
    assert main(["export-labels", str(run), "--out", str(out), "--device", "cpu"]) == 0
    return run, out


def test_export_is_a_valid_dataset(exported):
    run, out = exported
    src = open_dataset(out)
    info = json.loads((run / "run.json").read_text())
    assert list(src.classes) == info["classes"] and sorted(src.splits["train"].ids) == sorted(info["train_ids"])
    assert src.splits["train"].has_clean and {"val", "test"} <= set(src.splits)
    meta = json.loads((out / "dataset.json").read_text())
    assert "training resolution" in meta["note"] and meta["resolution"] == [56, 48]
    sid = info["train_ids"][0]
    assert read_label(out / "train" / "labels" / f"{sid}.png").shape == (56, 48)
    assert read_label(out / "train" / "labels_original" / f"{sid}.png").shape == (56, 48)
    assert (out / "README.md").is_file()
    # and at the source size (the small Colin27 set is 217 x 181)
    assert sorted(p.stem for p in (out / "original" / "labels").iterdir()) == sorted(info["train_ids"])
    assert read_label(out / "original" / "labels" / f"{sid}.png").shape == (217, 181)
    assert "original/labels/" in (out / "README.md").read_text()


def test_label_quality_csv_sorted_worst_first(exported):
    run, out = exported
    rows = list(csv.DictReader((out / "label_quality.csv").open()))
    ids = json.loads((run / "run.json").read_text())["train_ids"]
    assert sorted(r["id"] for r in rows) == sorted(ids)
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores) and all(0 <= s <= 1 for s in scores)
    assert all(0 <= float(r["disagree_frac"]) <= 1 and 0 <= float(r["true_error_frac"]) <= 1 for r in rows)
    for r in rows:
        mask = read_label(out / "suspect" / f"{r['id']}.png")
        assert set(np.unique(mask)) <= {0, 255} and int((mask == 255).sum()) == int(r["suspect_pixels"])
    # the labels the run was given are ranked, from its early-learning probabilities
    assert "early-learning probabilities" in (out / "README.md").read_text()
    from adele.labels.ranking import score_given_labels

    given = {r["id"]: read_label(out / "train" / "labels_original" / f"{r['id']}.png") for r in rows}
    scores = score_given_labels(run, [given[i] for i in ids], 255)[0]
    assert [float(r["score"]) for r in rows] == [round(float(scores[ids.index(r["id"])]), 4) for r in rows]


def test_run_without_early_probs_falls_back_to_the_final_model(tiny_run, tmp_path):
    from adele.run.files import early_probs_path

    run = tmp_path / "old"
    import shutil

    shutil.copytree(tiny_run(), run)
    early_probs_path(run).unlink()  # as a run made before tracking, or with quality.track: false
    out = tmp_path / "labels"
    assert main(["export-labels", str(run), "--out", str(out), "--device", "cpu"]) == 0
    assert "final model's softmax" in (out / "README.md").read_text()
    assert len(list(csv.DictReader((out / "label_quality.csv").open()))) == len(list((out / "suspect").iterdir()))


def test_export_refuses_to_overwrite_and_needs_model(exported, tmp_path, capsys):
    run, out = exported
    assert main(["export-labels", str(run), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export-labels", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "not a run folder" in err and len(err.strip().splitlines()) == 1


def test_export_ranks_the_given_labels_with_the_runs_quality_tau(tiny_run, tmp_path, monkeypatch):
    """The labels the run was given are scored (not the corrected ones), at the run's quality.tau."""
    import shutil

    import adele.labels.ranking as ranking
    from adele.run.files import label_round_path, label_rounds, load_labels, save_labels

    run = tmp_path / "run"
    shutil.copytree(tiny_run(*ADELE_FORCED, "quality.tau=0.9"), run)
    # a correction round that changed labels (a short run's network is too unsure to change any)
    rounds = label_rounds(run)
    base = load_labels(rounds[-1]) if rounds else None
    if base is None:
        from adele.engine import load_run_data
        from adele.config import saved_config

        base = [x.copy() for x in load_run_data(saved_config(run / "config.yaml")).train.original]
    changed = [np.where(lab == 0, 1, lab).astype(np.uint8) for lab in base]
    save_labels(changed, label_round_path(run, len(rounds) + 1))
    seen = []
    scores = ranking.early_learning_scores
    monkeypatch.setattr(ranking, "early_learning_scores", lambda p, labels, ignore, tau: seen.append(tau) or scores(p, labels, ignore, tau))
    out = tmp_path / "labels"
    assert main(["export-labels", str(run), "--out", str(out), "--device", "cpu"]) == 0
    assert seen == [0.9] and "quality.tau (0.9)" in (out / "README.md").read_text()
    rows = list(csv.DictReader((out / "label_quality.csv").open()))
    ids = json.loads((run / "run.json").read_text())["train_ids"]
    given = [read_label(out / "train" / "labels_original" / f"{i}.png") for i in ids]
    corrected = [read_label(out / "train" / "labels" / f"{i}.png") for i in ids]
    assert any((a != b).any() for a, b in zip(given, corrected)), "the test needs labels the correction changed"
    expected = scores(ranking.load_early_probs(run), given, 255, 0.9)[0]
    assert {r["id"]: r["score"] for r in rows} == {i: f"{v:.4f}" for i, v in zip(ids, expected)}


@pytest.mark.parametrize("damage", ["text", "truncated"])
def test_damaged_early_probs_file_is_one_line_with_what_to_do(tiny_run, tmp_path, capsys, damage):
    import shutil

    from adele.run.files import early_probs_path

    run = tmp_path / "run"
    shutil.copytree(tiny_run(), run)
    path = early_probs_path(run)
    path.write_bytes(b"garbage\n" if damage == "text" else path.read_bytes()[:300])
    assert main(["export-labels", str(run), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "early_probs.npz" in err and "delete it" in err and "Traceback" not in err


def test_export_ends_with_the_verdict_line_and_writes_the_per_class_estimates(tiny_run, tmp_path):
    """Issue 28: the last log line is the verdict; label_quality_classes.csv and the README hold the same estimate."""
    from adele.core.review import label_verdict
    from adele.labels.export import export_labels
    from adele.labels.ranking import score_given_labels

    run = tiny_run(*ADELE_FORCED)
    lines = []
    out = export_labels(run, tmp_path / "labels", device="cpu", log=lines.append)
    assert lines[-1].startswith("labels: ~") and "; systematic: " in lines[-1] and "; verdict: " in lines[-1]
    assert lines[-1] in (out / "README.md").read_text()
    info = json.loads((run / "run.json").read_text())
    given = [read_label(out / "train" / "labels_original" / f"{i}.png") for i in info["train_ids"]]
    _, _, suspect, probs = score_given_labels(run, given, 255)
    expected = label_verdict(given, suspect, [probs.probs(i).argmax(0) for i in range(len(given))], info["classes"])
    assert lines[-1] == expected.line()
    rows = list(csv.DictReader((out / "label_quality_classes.csv").open()))
    assert [r["class"] for r in rows] == info["classes"]
    for r, k in zip(rows, range(len(rows))):
        assert int(r["labelled_pixels"]) == int(expected.shares.labelled[k]) and int(r["suspect_pixels"]) == int(expected.shares.flagged[k])
        if int(r["labelled_pixels"]):
            assert float(r["lo95"]) <= float(r["est_wrong_share"]) <= float(r["hi95"])
    assert rows[0]["systematic"] == "" and rows[1]["systematic"] in ("True", "False")
