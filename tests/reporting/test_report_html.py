import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from PIL import Image

from adele.cli import main
from adele.testing import ADELE_FORCED

pytestmark = pytest.mark.usefixtures("one_thread")


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs, self.ids, self.tags = [], set(), set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for k, v in attrs:
            if k in ("src", "href") and v is not None:
                self.refs.append(v)
            if k == "id":
                self.ids.add(v)


@pytest.fixture(scope="module")
def runs(tiny_run):
    return [tiny_run(), tiny_run("train.seed=1"), tiny_run(*ADELE_FORCED)]


def _parse(index: Path) -> _Refs:
    p = _Refs()
    p.feed(index.read_text(encoding="utf-8"))
    return p


def test_report_is_self_contained(runs, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", *map(str, runs), "--out", str(out), "--examples", "2"]) == 0
    index = out / "index.html"
    page = index.read_text(encoding="utf-8")
    refs = _parse(index)
    assert refs.refs and "script" not in refs.tags and "link" not in refs.tags
    imgs = [r for r in refs.refs if not r.startswith("#")]
    assert len(imgs) >= 6  # memorization, per-run IoU curves and examples
    for ref in refs.refs:
        u = urlparse(ref)
        assert not u.scheme and not u.netloc and not ref.startswith("/"), ref
        if ref.startswith("#"):
            assert ref[1:] in refs.ids, ref
        else:
            assert (out / ref).is_file(), ref
            with Image.open(out / ref) as im:
                assert im.format == "PNG" and im.size[0] > 200
    assert "±" in page  # the two baseline runs differ only by seed: mean ± std
    assert "memorization" in page and "Training IoU" in page and "Examples" in page
    # which masks to re-annotate: the top suspects of each run as overlays, from the run's early-learning probabilities
    assert page.count("Which masks to re-annotate") == 3 and page.count("_suspects.png") == 3
    assert page.count("early-learning probabilities") >= 3


def test_report_of_unfinished_run_and_bad_folder(runs, tmp_path, capsys):
    run = tmp_path / "unfinished"
    shutil.copytree(runs[2], run)
    (run / "metrics.json").unlink()
    (run / "model.pt").unlink()
    assert main(["report", str(run), "--out", str(tmp_path / "r"), "--examples", "1"]) == 0
    page = (tmp_path / "r" / "index.html").read_text(encoding="utf-8")
    assert "not finished" in page or "no metrics.json" in page
    assert "checkpoint epoch" in page  # the examples fall back to the newest checkpoint
    capsys.readouterr()
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "not a run folder" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("cmd", [["report"], ["analyze"], ["analyze", "memorization"], ["predict"], ["export-labels"]])
def test_help_has_examples(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main(cmd + ["--help"])
    assert e.value.code == 0
    assert "example" in capsys.readouterr().out


def test_runs_that_differ_only_in_seeds_are_grouped(tmp_path):
    from adele.reporting.seed_groups import group_by_setting
    from adele.run import RunFolder

    def run(name, seed, noise_seed, **extra):
        cfg = {"method": "baseline", "train": {"seed": seed, "epochs": 3}, "data": {"noise": "final", "noise_seed": noise_seed}}
        cfg["adele"] = {"consistency": extra} if extra else {}
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump(cfg))
        (tmp_path / name / "run.json").write_text("{}")
        return RunFolder.open(tmp_path / name)

    # c omits a setting at its default value; d differs in a real setting
    runs = [run("a", 0, 0), run("b", 1, 1, lam=1.0), run("c", 2, 2), run("d", 0, 0, lam=2.0)]
    assert [[r.name for r in g] for g in group_by_setting(runs)] == [["a", "b", "c"], ["d"]]


def test_class_absent_from_the_ground_truth_is_greyed_out_with_its_false_positives(runs, tmp_path):
    import json

    from adele.reporting.html import metrics_section
    from adele.run import RunFolder

    run = tmp_path / "absent"
    shutil.copytree(runs[0], run)
    metrics = json.loads((run / "metrics.json").read_text())
    gone = metrics["classes"][-1]
    metrics["test"]["dice"][gone] = metrics["test"]["iou"][gone] = None
    metrics["test"]["absent_classes"] = {gone: 17}
    (run / "metrics.json").write_text(json.dumps(metrics))
    html = metrics_section([RunFolder.open(run)])
    assert f"<td class='absent'>{gone}</td>" in html and "false-positive pixels: 17" in html
    assert "present in the split's ground truth" in html


def test_matplotlib_gets_a_private_cache_when_home_is_not_writable(tmp_path, monkeypatch):
    import os

    from adele.reporting.figures import private_config_dir

    home = tmp_path / "home"
    home.mkdir()
    assert private_config_dir({"HOME": str(home)}) is None
    assert private_config_dir({"MPLCONFIGDIR": str(tmp_path)}) is None
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # a read-only HOME (root can write anywhere)
    d = private_config_dir({"HOME": str(home)})
    assert d is not None and os.path.isdir(d)
    assert private_config_dir({}) is not None  # no HOME at all


def test_report_names_each_section_it_leaves_out(tiny_run, tmp_path):
    from adele.reporting.html import build_report

    lines = []
    page = build_report([tiny_run("data.noise=null")], tmp_path / "rep", log=lines.append)
    html = page.read_text()
    said = [m for m in lines if "left out" in m]
    assert any("memorization section left out" in m for m in said), lines
    assert "Early learning vs memorization" in html and "left out:" in html
    assert "Are the labels usable as they are?" in html and "Review curve" not in html  # no clean labels: a verdict, no review curve


def test_report_says_the_verdict_and_draws_the_review_curve_when_the_clean_labels_are_known(runs, tmp_path):
    """Issue 28: the verdict line on the page and on the terminal; the review curve of the run's own ranking."""
    import re

    import numpy as np

    from adele.core.review import review_curve
    from adele.labels.ranking import rank_given_labels
    from adele.reporting.html import build_report
    from adele.reporting.quality_section import wrong_pixels
    from adele.run import RunFolder

    run = runs[0]  # synthetic noise (data.noise=final): the clean labels are known
    lines = []
    page = build_report([run], tmp_path / "rep", examples=1, log=lines.append).read_text(encoding="utf-8")
    said = [m for m in lines if ": labels: ~" in m]
    assert len(said) == 1 and re.search(r"verdict: (usable as they are|probably usable|correct before training|cannot tell)", said[0])
    assert said[0].split(": ", 2)[2] in page.replace("&#x27;", "'")  # the same line on the page
    assert "Are the labels usable as they are?" in page and "Review curve (clean labels known)" in page
    png = re.search(r"src='(figures/[^']+_review\.png)'", page)
    assert png and (tmp_path / "rep" / png.group(1)).is_file()
    folder = RunFolder.open(run)
    train = folder.training_data().train
    q = rank_given_labels(folder, lambda: None)
    wrong, size = wrong_pixels(train.original, train.clean)
    area = review_curve(-q["scores"], wrong).area
    assert np.isfinite(area)
    row = re.search(r"<td>adele, early-learning probabilities</td><td class='n'>([\d.]+)</td><td class='n'>([\d.]+)</td>", page)
    assert row and float(row.group(1)) == round(area, 3) and float(row.group(2)) == round(review_curve(-q["scores"], wrong, size).area, 3)
    assert "<td>random order (expected)</td><td class='n'>0.500</td>" in page
    # without examples the verdict stays
    page = build_report([run], tmp_path / "rep0", examples=0, log=lambda m: None).read_text(encoding="utf-8")
    assert "Are the labels usable as they are?" in page and "Which masks to re-annotate" not in page



def test_report_shows_each_rounds_per_class_thresholds(tmp_path):
    """The default (adele.correction.class_share): the bars each round used, per class, as metrics.json records them;
    no such table for a run with one tau (no ``thresholds`` in its rounds)."""
    from types import SimpleNamespace

    from adele.reporting.html import rounds_block

    classes = ["background", "caudate", "vermis"]
    rounds = [{"round": k + 1, "epoch": 10 + k, "corrected": ["caudate"], "pixels_changed": 5 * k,
               "changed_per_class": {"background": k, "caudate": 4 * k}, "area_vs_noisy": {"caudate": 1.0, "vermis": 1.0},
               "thresholds": {"background": 0.9980, "caudate": 0.7 + 0.1 * k, "vermis": 0.8123}} for k in range(2)]
    run = SimpleNamespace(method="adele", rounds=rounds, classes=classes, name="r", resolved_config={}, metrics={})
    html = rounds_block(run, tmp_path, "r")
    bars = html[html.index("per-class thresholds"):]
    assert all(v in bars for v in ("0.998", "0.700", "0.800", "0.812")) and bars.count("<tr>") == 4  # head + 3 classes
    for x in rounds:
        del x["thresholds"]
    assert "per-class thresholds" not in rounds_block(run, tmp_path, "r")


def test_report_of_runs_on_different_datasets(runs, tiny_run, tmp_path_factory, tmp_path, capsys):
    """Issue 38: runs trained on different datasets (other ids, other classes): examples per run from its own
    training set, and the comparison tables say the datasets differ; no traceback."""
    from adele.testing import make_dataset

    other = tiny_run(f"data.path={make_dataset(tmp_path_factory.mktemp('other') / 'ds', n_train=4)}", "data.noise=null")
    out = tmp_path / "report"
    assert main(["report", str(runs[2]), str(other), "--out", str(out), "--examples", "2"]) == 0
    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.count("Examples (training images)") == 2 and page.count("_examples.png") == 2
    assert "trained on different datasets" in page and "c27small" in page and "tiny" in page
    for cls in ("c1", "c2"):  # the other dataset's classes have rows of their own
        assert f"<td>{cls}</td>" in page
