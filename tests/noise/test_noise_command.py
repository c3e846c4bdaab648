import hashlib
import json

import numpy as np

from adele.cli import main
from adele.data import open_dataset


def _digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_noise_command_writes_noisy_copy(tiny_dataset, tmp_path, capsys):
    before = _digest(tiny_dataset)
    out = tmp_path / "noisy"
    assert main(["noise", "--data", str(tiny_dataset), "--out", str(out), "--recipe", "final:target_area=100", "--seed", "3"]) == 0
    assert _digest(tiny_dataset) == before, "the input dataset must never change"
    src, noisy = open_dataset(tiny_dataset), open_dataset(out)
    tr = noisy.splits["train"]
    assert tr.has_clean
    for i in range(len(tr)):
        assert np.array_equal(tr.clean_label(i), src.splits["train"].label(i))
    assert any(not np.array_equal(tr.label(i), tr.clean_label(i)) for i in range(len(tr)))
    # other splits copied as they are
    assert np.array_equal(noisy.splits["val"].label(0), src.splits["val"].label(0))
    report = json.loads((out / "noise_report.json").read_text())
    assert 0 < report["splits"]["train"]["fg_dice"] < 1 and report["seed"] == 3
    assert list((out / "previews").glob("*.png"))
    assert "foreground mean" in capsys.readouterr().out
    # same seed -> byte-identical labels
    out2 = tmp_path / "noisy2"
    assert main(["noise", "--data", str(tiny_dataset), "--out", str(out2), "--recipe", "final:target_area=100", "--seed", "3"]) == 0
    for p in (out / "train" / "labels").iterdir():
        assert p.read_bytes() == (out2 / "train" / "labels" / p.name).read_bytes()


def test_noise_command_errors_leave_nothing(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "n"
    assert main(["noise", "--data", str(tiny_dataset), "--out", str(out), "--recipe", "fnal"]) == 2
    assert "unknown noise recipe" in capsys.readouterr().err
    assert main(["noise", "--data", str(tiny_dataset), "--out", str(out), "--recipe", "final:p=2"]) == 2
    capsys.readouterr()
    assert main(["noise", "--data", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    out.mkdir()
    (out / "x").write_text("keep")
    assert main(["noise", "--data", str(tiny_dataset), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "x").read_text() == "keep"


def test_noise_recipe_from_yaml(tiny_dataset, tmp_path):
    spec = tmp_path / "recipe.yaml"
    spec.write_text("steps:\n  - {name: final, target_area: 100}\n  - {name: missing, p: 0.5}\n")
    out = tmp_path / "y"
    assert main(["noise", "--data", str(tiny_dataset), "--out", str(out), "--recipe", str(spec)]) == 0
    report = json.loads((out / "noise_report.json").read_text())
    assert report["recipe"].startswith("final") and "missing" in report["recipe"]
