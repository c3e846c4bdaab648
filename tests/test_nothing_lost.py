"""The input dataset is never modified by any command (checksums before/after)."""
import hashlib

from adele.cli import main
from adele.testing import make_dataset


def _digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_no_command_modifies_the_dataset(tmp_path, capsys):
    ds = make_dataset(tmp_path / "ds", n_train=4, n_val=2, n_test=2, size=(24, 20), clean=True)
    before = _digest(ds)
    tiny = ["--set", "model.width=4", "model.depth=2", "data.size=null", "train.threads=1", "adele.detection.min_peak_iou=0",
            "adele.detection.min_rise=0", "adele.detection.trim_flat=null", "adele.detection.horizon=2", "adele.correction.every=1",
            "adele.correction.tau_bg=0.5", "adele.correction.tau_fg=0.5"]
    run = tmp_path / "run"
    noisy = tmp_path / "noisy"
    assert main(["data", "check", str(ds)]) == 0
    assert main(["noise", "--data", str(ds), "--out", str(noisy), "--recipe", "final:target_area=100"]) == 0
    assert _digest(ds) == before
    before_noisy = _digest(noisy)
    commands = [
        ["train", "--data", str(noisy), "--method", "adele", "--out", str(run), "--epochs", "2", *tiny],
        ["train", "--data", str(noisy), "--method", "adele", "--out", str(run), "--resume", "--epochs", "3", *tiny],
        ["predict", str(run), "--input", str(noisy / "test" / "images"), "--out", str(tmp_path / "pred")],
        ["export-labels", str(run), "--out", str(tmp_path / "exported")],
        ["analyze", "memorization", str(run), "--out", str(tmp_path / "mem")],
        ["report", str(run), "--out", str(tmp_path / "report")],
    ]
    for argv in commands:
        assert main(argv) == 0, (argv, capsys.readouterr().err)
        assert _digest(noisy) == before_noisy, f"{argv[0]} modified the input dataset"
