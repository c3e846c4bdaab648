"""Issue 17, case by case: --overwrite never deletes inputs, one writer per run, every failure a one-line error.

Each test names the failure it guards against. Trainings are tiny (16 x 16 images, width 4, 1-2 epochs).
"""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from adele import safety
from adele.cli import main
from adele.data.io import write_array
from adele.run.files import list_checkpoints
from adele.testing import make_dataset

TINY = ["--set", "model.width=4", "model.depth=2", "data.size=[16,16]", "train.threads=1", "train.device=cpu"]


def _digest(root: Path) -> dict:
    root = Path(root)
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def _ds(tmp_path, name="ds", **kw):
    kw.setdefault("size", (16, 16))
    return make_dataset(tmp_path / name, n_train=kw.pop("n_train", 3), n_val=1, n_test=1, **kw)


def _one_line(capsys, rc, expected_rc=2, words=()):
    err = capsys.readouterr().err.strip()
    lines = err.splitlines()
    assert rc == expected_rc, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def _train(ds, out, *extra):
    return ["train", "--data", str(ds), "--out", str(out), "--epochs", "1", *TINY, *extra]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 1-epoch baseline run and its dataset (shared, never modified by the tests)."""
    root = tmp_path_factory.mktemp("safety")
    ds = _ds(root)
    run = root / "run"
    assert main(_train(ds, run)) == 0
    return ds, run


# ----------------------------------------------------------------------------- --overwrite deletes inputs


@pytest.mark.parametrize("case", ["train_out_is_data", "noise_out_is_parent_of_data", "export_labels_out_is_run", "predict_out_contains_input",
                                  "report_out_is_run", "train_out_contains_data"])
def test_overwrite_never_deletes_an_input(case, trained, tmp_path, capsys):
    ds, run = trained
    parent = tmp_path / "P"
    nested = make_dataset(parent / "D", n_train=2, n_val=1, n_test=1, size=(16, 16))
    argv, guarded = {
        "train_out_is_data": (_train(ds, ds, "--overwrite"), ds),
        "train_out_contains_data": (_train(nested, parent, "--overwrite"), parent),
        "noise_out_is_parent_of_data": (["noise", "--data", str(nested), "--out", str(parent), "--overwrite"], parent),
        "export_labels_out_is_run": (["export-labels", str(run), "--out", str(run), "--overwrite"], run),
        "predict_out_contains_input": (["predict", str(run), "--input", str(ds / "test" / "images"), "--out", str(ds / "test"), "--overwrite"], ds),
        "report_out_is_run": (["report", str(run), "--out", str(run), "--overwrite"], run),
    }[case]
    before = _digest(guarded)
    capsys.readouterr()
    _one_line(capsys, main(argv), words=("input",))
    assert _digest(guarded) == before


def test_overwrite_needs_the_same_commands_marker(trained, tmp_path, capsys):
    ds, run = trained
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    _one_line(capsys, main(["noise", "--data", str(ds), "--out", str(mine), "--overwrite"]), words=("marker",))
    _one_line(capsys, main(_train(ds, mine, "--overwrite")), words=("marker",))
    assert (mine / "thesis.tex").read_text() == "years of work"
    noisy = tmp_path / "noisy"
    assert main(["noise", "--data", str(ds), "--out", str(noisy), "--recipe", "final:target_area=20"]) == 0
    capsys.readouterr()
    # a folder written by `adele noise` is not replaced by `adele predict` or `adele train`
    _one_line(capsys, main(["predict", str(run), "--input", str(ds / "test" / "images"), "--out", str(noisy), "--overwrite"]), words=("adele noise",))
    _one_line(capsys, main(_train(ds, noisy, "--overwrite")), words=("adele noise",))
    assert (noisy / "noise_report.json").is_file()


def test_overwrite_inside_an_input_is_refused(trained, tmp_path, capsys):
    ds, run = trained
    inp = tmp_path / "scans"
    write_array(inp / "a.png", np.zeros((16, 16), np.uint8))
    args = ["predict", str(run), "--input", str(inp), "--out", str(inp / "masks")]
    assert main(args) == 0  # a new folder inside the input is fine
    capsys.readouterr()
    _one_line(capsys, main(args + ["--overwrite"]), words=("inside the input",))
    assert (inp / "masks" / "a.png").is_file()


def test_data_export_overwrite_replaces_instead_of_merging(tmp_path, capsys):
    out = tmp_path / "c27"
    assert main(["data", "export", "colin27", str(out)]) == 0
    (out / "train" / "images" / "stray.png").write_bytes(b"x")
    assert main(["data", "export", "colin27", str(out), "--overwrite"]) == 0
    assert not (out / "train" / "images" / "stray.png").exists()
    assert main(["data", "check", str(out)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["c27"], "no temporary sibling left"


def test_train_overwrite_replaces_its_own_run(trained, tmp_path, capsys):
    ds, _ = trained
    out = tmp_path / "r"
    assert main(_train(ds, out)) == 0
    (out / "notes.txt").write_text("old")
    assert main(_train(ds, out, "--overwrite")) == 0
    assert not (out / "notes.txt").exists() and (out / "model.pt").is_file()
    assert safety.read_marker(out) == "train"


# ----------------------------------------------------------------------------- run lock


_HOLDER = """
import sys, time
from adele import safety
safety.lock_folder(sys.argv[1], "train")
print("locked", flush=True)
time.sleep(120)
"""


def _hold_lock(folder):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_one_writer_per_run_folder(trained, tmp_path, capsys):
    ds, _ = trained
    run = tmp_path / "r"
    assert main(_train(ds, run)) == 0
    before = _digest(run)
    holder = _hold_lock(run)
    try:
        resume = ["train", "--data", str(ds), "--out", str(run), "--resume", "--epochs", "2", *TINY]
        for argv in (_train(ds, run, "--overwrite"), resume):
            line = _one_line(capsys, main(argv), words=("another process", f"pid {holder.pid}"))
            assert "adele train" in line
        unlocked = lambda d: {k: v for k, v in d.items() if k != ".adele.lock"}  # noqa: E731
        assert unlocked(_digest(run)) == unlocked(before)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the kernel released the lock of the killed process: the run can be continued now
    assert main(["train", "--data", str(ds), "--out", str(run), "--resume", "--epochs", "2", *TINY]) == 0
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2


@pytest.mark.slow
def test_second_training_into_a_running_run_is_refused(tmp_path):
    """Two real processes: the second `train --overwrite` is refused; the first one keeps its folder and stops cleanly on Ctrl-C."""
    ds = _ds(tmp_path, n_train=8)
    run = tmp_path / "r"
    env = dict(os.environ, OMP_NUM_THREADS="1", ADELE_NO_PROGRESS="1")
    cmd = [sys.executable, "-m", "adele", "train", "--data", str(ds), "--out", str(run), "--epochs", "100000", *TINY]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            if len(list_checkpoints(run)) >= 2:
                break
            time.sleep(0.1)
        second = subprocess.run(cmd + ["--overwrite"], env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and f"pid {first.pid}" in second.stderr and len(second.stderr.strip().splitlines()) == 1, second.stderr
        assert first.poll() is None, "the first training still runs"
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=180) == 130  # generous: a loaded CI machine
        assert "--resume" in first.stderr.read()
    finally:
        if first.poll() is None:
            first.kill()
    assert (run / "config.yaml").is_file() and list_checkpoints(run)


# ----------------------------------------------------------------------------- tracebacks -> one line


def _png_config(tmp):
    p = tmp / "picture.yaml"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8), dtype=np.uint8)).save(p, format="PNG")
    return ["--config", str(p)]


def _text_weights(tmp):
    (tmp / "w.pt").write_text("these are not weights\n")
    return ["model.pretrained=" + str(tmp / "w.pt")]


def _other_width_weights(tmp):
    from adele.models import build_model

    torch.save(build_model("unet", 1, 3, width=8, depth=2).state_dict(), tmp / "w8.pt")
    return ["model.pretrained=" + str(tmp / "w8.pt")]


TRACEBACK_CASES = {
    "threads_negative": (lambda tmp: ["--set", "train.threads=-1"], "train.threads"),
    "seed_huge": (lambda tmp: ["--set", f"train.seed={10**23}"], "train.seed"),
    "noise_seed_negative": (lambda tmp: ["--set", "data.noise_seed=-1"], "data.noise_seed"),
    "horizon_negative": (lambda tmp: ["--set", "adele.detection.horizon=-5", "--method", "adele"], "horizon"),
    "config_is_png": (_png_config, "not a text file"),
    "pretrained_text_file": (lambda tmp: ["--set", *_text_weights(tmp)], "model.pretrained"),
    "pretrained_other_width": (lambda tmp: ["--set", *_other_width_weights(tmp)], "model.pretrained"),
    "lr_inf": (lambda tmp: ["--set", "optim.lr=inf"], "optim.lr"),
    "out_name_too_long": (lambda tmp: "LONG", "at most 255"),
    "out_under_proc": (lambda tmp: "PROC", "cannot write"),
}


@pytest.mark.parametrize("case", sorted(TRACEBACK_CASES))
def test_former_tracebacks_are_one_line(case, tmp_path, capsys):
    ds = _ds(tmp_path)
    make, words = TRACEBACK_CASES[case]
    extra = make(tmp_path)
    out = tmp_path / "run"
    if extra == "LONG":
        out, extra = tmp_path / ("x" * 300), []
    elif extra == "PROC":
        out, extra = Path("/proc") / "adele-run", []
    argv = _train(ds, out)
    # --set takes everything after it: put the case's overrides into the same --set
    if extra and extra[0] == "--set":
        argv = argv + extra[1:]
    else:
        argv = argv[:1] + extra + argv[1:]
    _one_line(capsys, main(argv), words=(words,))
    assert not (tmp_path / "run").exists()


def test_noise_negative_seed_is_one_line(tmp_path, capsys):
    ds = _ds(tmp_path)
    _one_line(capsys, main(["noise", "--data", str(ds), "--out", str(tmp_path / "n"), "--seed", "-1"]), words=("--seed",))
    assert not (tmp_path / "n").exists()


def test_argparse_errors_are_one_line(capsys):
    _one_line(capsys, _exit_code(["train"]), words=("--out",))
    _one_line(capsys, _exit_code(["train", "--out", "x", "--epochs", "many"]), words=("--epochs",))
    _one_line(capsys, _exit_code(["nosuchcommand"]))


def _exit_code(argv):
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


# ----------------------------------------------------------------------------- the dataset as a whole


def _rgb_val(ds):
    for p in (ds / "val" / "images").iterdir():
        a = np.asarray(Image.open(p))
        Image.fromarray(np.stack([a] * 3, -1)).save(p)


def _mixed_sizes(ds):
    write_array(ds / "train" / "images" / "im00.png", np.zeros((20, 24), np.uint8))
    write_array(ds / "train" / "labels" / "im00.png", np.ones((20, 24), np.uint8))


def _duplicate_classes(ds):
    (ds / "dataset.json").write_text(json.dumps({"classes": ["background", "liver", "liver"]}))


def _all_ignore(ds):
    for p in (ds / "train" / "labels").iterdir():
        write_array(p, np.full((16, 16), 255, np.uint8))


def _dangling_pair(ds):
    os.symlink(ds / "nowhere.png", ds / "train" / "images" / "im09.png")
    os.symlink(ds / "nowhere.png", ds / "train" / "labels" / "im09.png")


DATASET_CASES = {
    "rgb_val_gray_train": (_rgb_val, [], "RGB"),
    "mixed_sizes_size_null": (_mixed_sizes, ["data.size=null", "train.batch_size=2"], "different sizes"),
    "duplicate_class_names": (_duplicate_classes, [], "unique"),
    "all_ignore_train_labels": (_all_ignore, [], "ignore_index"),
    "dangling_symlink_pair": (_dangling_pair, [], "broken symbolic link"),
}


@pytest.mark.parametrize("case", sorted(DATASET_CASES))
def test_dataset_checked_as_a_whole_by_check_and_train(case, tmp_path, capsys):
    ds = _ds(tmp_path)
    spoil, settings, words = DATASET_CASES[case]
    spoil(ds)
    check = ["data", "check", str(ds)] + (["--set", *settings] if settings else [])
    _one_line(capsys, main(check), words=(words,))
    _one_line(capsys, main(_train(ds, tmp_path / "run") + settings), words=(words,))
    assert not (tmp_path / "run").exists(), "refused before the run folder was created"


def test_mixed_sizes_pass_check_when_resized(tmp_path, capsys):
    ds = _ds(tmp_path)
    _mixed_sizes(ds)
    assert main(["data", "check", str(ds)]) == 0  # data.size is set by default


# ----------------------------------------------------------------------------- resume means resume


@pytest.mark.parametrize("change", ["data", "method", "set"])
def test_resume_with_other_settings_is_refused(change, trained, tmp_path, capsys):
    ds, _ = trained
    run = tmp_path / "r"
    assert main(_train(ds, run)) == 0
    other = make_dataset(tmp_path / "other", n_train=3, n_val=1, n_test=1, size=(16, 16), seed=1)
    before = (run / "config.yaml").read_text(), (run / "run.json").read_text()
    argv = ["train", "--data", str(ds), "--out", str(run), "--resume", "--epochs", "2", *TINY]
    if change == "data":
        argv[2] = str(other)
    elif change == "method":
        argv[1:1] = ["--method", "adele"]
    else:
        argv.append("optim.lr=0.5")
    line = _one_line(capsys, main(argv), words=("differ", "--allow-changes"))
    assert {"data": "data.path", "method": "method", "set": "optim.lr"}[change] in line
    assert ((run / "config.yaml").read_text(), (run / "run.json").read_text()) == before
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 1


def test_resume_allow_changes_records_them(trained, tmp_path, capsys):
    ds, _ = trained
    run = tmp_path / "r"
    assert main(_train(ds, run)) == 0
    planned_lr = json.loads((run / "plan.json").read_text())["plan"]["optim.lr"]
    assert main(["train", "--out", str(run), "--resume", "--allow-changes", "--epochs", "2", *TINY, "optim.lr=0.005"]) == 0
    cfg = (run / "config.yaml").read_text()
    assert "lr: 0.005" in cfg and "epochs: 2" in cfg
    resumes = json.loads((run / "run.json").read_text())["resumes"]
    assert resumes[-1]["allow_changes"] and resumes[-1]["changes"]["optim.lr"] == {"old": planned_lr, "new": 0.005}
    assert resumes[-1]["changes"]["train.epochs"] == {"old": 1, "new": 2}


def test_resume_and_overwrite_together_are_refused(trained, capsys):
    ds, run = trained
    _one_line(capsys, main(_train(ds, run, "--resume", "--overwrite")), words=("--resume", "--overwrite"))


# ----------------------------------------------------------------------------- fail loudly


def test_divergence_stops_with_exit_2_and_keeps_the_last_finite_state(tmp_path, capsys):
    ds = _ds(tmp_path)
    run = tmp_path / "run"
    line = _one_line(capsys, main(_train(ds, run, "optim.lr=1.0e+30", "optim.momentum=0", "train.epochs=3")), words=("diverged in epoch", "likely cause", "optim.lr"))
    assert "checkpoints/epoch_" in line
    ckpts = list_checkpoints(run)
    assert ckpts, "a checkpoint of the last finite state"
    state = torch.load(ckpts[-1][1], weights_only=True)
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())
    assert not (run / "model.pt").exists() and not (run / "metrics.json").exists()


def test_a_batch_of_unlabelled_images_is_named_as_the_cause(tmp_path, capsys):
    ds = _ds(tmp_path)
    for p in sorted((ds / "train" / "labels").iterdir())[:2]:
        write_array(p, np.full((16, 16), 255, np.uint8))  # two of three training images without a labelled pixel
    line = _one_line(capsys, main(_train(ds, tmp_path / "run", "train.batch_size=1")), words=("diverged in epoch 1", "all ignore_index"))
    assert "epoch_0000.pt" in line


def test_unexpected_exception_is_one_line_with_a_log_file(tmp_path, monkeypatch, capsys):
    import adele.cli.config as cli_config

    def boom(*a, **k):
        raise TypeError("something internal")

    monkeypatch.setenv("ADELE_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setattr(cli_config, "cmd_config", boom)
    line = _one_line(capsys, main(["config", "show"]), expected_rc=1, words=("unexpected TypeError", "something internal"))
    logs = list((tmp_path / "logs").iterdir())
    assert len(logs) == 1 and str(logs[0]) in line and "Traceback" in logs[0].read_text()
    with pytest.raises(TypeError):
        main(["--debug", "config", "show"])


# ----------------------------------------------------------------------------- all or nothing


def test_predict_leaves_nothing_when_a_later_input_fails(trained, tmp_path, capsys):
    ds, run = trained
    inp = tmp_path / "in"
    write_array(inp / "a.png", np.zeros((16, 16), np.uint8))
    (inp / "z.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    out = tmp_path / "masks"
    _one_line(capsys, main(["predict", str(run), "--input", str(inp), "--out", str(out)]), words=("z.png",))
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"], "no temporary folder left"


def test_killed_checkpoint_save_leaves_no_tmp_after_resume(trained, tmp_path, capsys):
    ds, _ = trained
    run = tmp_path / "r"
    assert main(_train(ds, run)) == 0
    stale = [run / "checkpoints" / ".epoch_0002.ptx1y2z3.tmp", run / ".history.csvab12.tmp", run / "labels" / ".round_001.npzq.tmp"]
    for p in stale:
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"half")
    assert main(["train", "--data", str(ds), "--out", str(run), "--resume", "--epochs", "2", *TINY]) == 0
    assert not any(p.exists() for p in stale)


def test_stale_staged_outputs_are_cleaned_or_restored(tmp_path, capsys):
    ds = _ds(tmp_path)
    out = tmp_path / "noisy"
    dead = 2**22 + 12345  # above the default pid_max: no such process
    (tmp_path / f".noisy.adele-tmp-{dead}").mkdir()
    (tmp_path / f".noisy.adele-tmp-{dead}" / "half.png").write_bytes(b"x")
    assert main(["noise", "--data", str(ds), "--out", str(out), "--recipe", "final:target_area=20"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "noisy"]
    # killed between the two renames of a swap: the previous output is put back
    os.replace(out, tmp_path / f".noisy.adele-old-{dead}")
    safety.clean_stale_siblings(out)
    assert (out / "noise_report.json").is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["ds", "noisy"]


def test_report_negative_examples(trained, tmp_path, capsys):
    _, run = trained
    _one_line(capsys, main(["report", str(run), "--out", str(tmp_path / "rep"), "--examples", "-3"]), words=("--examples",))
    assert not (tmp_path / "rep").exists()


# ----------------------------------------------------------------------------- interruptions


def test_interrupt_before_the_first_epoch_can_be_resumed(tmp_path, monkeypatch, capsys):
    from adele.engine.trainer import Trainer

    ds = _ds(tmp_path)
    run = tmp_path / "run"
    real = Trainer.train_epoch

    def interrupted(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train_epoch", interrupted)
    assert main(_train(ds, run)) == 130
    err = capsys.readouterr().err
    assert "--resume" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setattr(Trainer, "train_epoch", real)
    assert main(["train", "--data", str(ds), "--out", str(run), "--resume", "--epochs", "1", *TINY]) == 0


def test_interrupt_after_the_run_completed_says_so(tmp_path, monkeypatch, capsys):
    import adele.cli.train as cli_train

    ds = _ds(tmp_path)
    run = tmp_path / "run"

    def late(*a, **k):  # Ctrl-C while the final table is printed
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_train, "format_metrics_table", late)
    assert main(_train(ds, run)) == 130
    err = capsys.readouterr().err
    assert "already completed" in err and "--resume" not in err and len(err.strip().splitlines()) == 1


def test_interrupt_while_loading_says_nothing_was_written(tmp_path, monkeypatch, capsys):
    import adele.engine.trainer as trainer

    ds = _ds(tmp_path)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "load_run_data", interrupted)
    assert main(_train(ds, tmp_path / "run")) == 130
    assert "nothing was written" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_run_trained_with_a_relative_data_path_works_from_any_folder(tmp_path, monkeypatch, capsys):
    """--data is stored resolved: resume and export-labels work from another working directory, and the same
    folder spelled as an absolute path is not a changed setting."""
    ds = _ds(tmp_path)
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(work)
    assert main(["train", "--data", "../ds", "--out", "r", "--epochs", "1", *TINY, "quality.track=false"]) == 0
    saved = yaml.safe_load((work / "r" / "config.yaml").read_text())["data"]["path"]
    assert Path(saved).is_absolute() and Path(saved) == ds.resolve()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["train", "--out", str(work / "r"), "--resume", "--epochs", "2", *TINY, "quality.track=false"]) == 0
    assert main(["train", "--data", str(ds), "--out", str(work / "r"), "--resume", "--epochs", "2", *TINY, "quality.track=false"]) == 0
    assert main(["export-labels", str(work / "r"), "--out", str(elsewhere / "x"), "--device", "cpu"]) == 0
    assert (elsewhere / "x" / "dataset.json").is_file()
