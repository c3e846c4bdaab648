import json

import numpy as np
import pytest

from adele.cli import main
from adele.config import load_config
from adele.engine import Trainer, load_run_data
from adele.testing import small_colin27


FAST = ["data.size=[56, 48]", "model.width=8", "model.depth=3", "optim.name=adam", "optim.lr=0.003", "train.batch_size=4", "train.threads=1"]


def interrupted_then_resumed(cfg, data, run_dir, stop_after: int):
    """Train ``cfg`` for ``stop_after`` epochs in ``run_dir``, then resume it to ``cfg``'s epochs in a fresh trainer;
    returns (that trainer, its results)."""
    first = cfg.replace(**{"train.epochs": stop_after})
    b = Trainer(first, run_dir, data=load_run_data(first, data), log=lambda m: None)
    b.prepare_run_dir(False, False)
    b.fit()
    c = Trainer(cfg, run_dir, data=load_run_data(cfg, data), log=lambda m: None)
    c.prepare_run_dir(resume=True, overwrite=False)
    c.resume()
    return c, c.fit()


def test_baseline_trains_and_writes_run_folder(tmp_path):
    cfg = load_config(None, FAST + ["train.epochs=10", "train.seed=1"])
    run = tmp_path / "run"
    tr = Trainer(cfg, run, data=load_run_data(cfg, small_colin27()), log=lambda m: None)
    tr.prepare_run_dir(resume=False, overwrite=False)
    res = tr.fit()
    metrics = json.loads((run / "metrics.json").read_text())
    for split in ("val", "test"):
        m = metrics[split]
        assert set(m["dice"]) == set(metrics["classes"]) and set(m["iou"]) == set(metrics["classes"])
        assert {"mean_dice", "mean_iou", "per_image_mean_dice", "per_image_mean_iou"} <= set(m)
    # above chance: a prediction drawn at random with the class frequencies has expected
    # Dice equal to each class's frequency; require clearly more than that
    labels = np.concatenate([x.ravel() for x in tr.data.test.original])
    freq = np.bincount(labels, minlength=10)[1:] / labels.size
    assert metrics["test"]["mean_dice"] > 2 * freq.mean(), metrics["test"]["dice"]
    assert max(v for k, v in metrics["test"]["dice"].items() if k != "background") > 0.3
    assert (run / "config.yaml").exists() and (run / "history.csv").exists() and (run / "model.pt").exists()
    assert len(list((run / "checkpoints").glob("epoch_*.pt"))) >= 1
    assert list((run / "tb").glob("events.*"))
    assert res["test"]["mean_dice"] == metrics["test"]["mean_dice"]


def test_resume_matches_uninterrupted(tmp_path):
    cfg = load_config(None, FAST + ["train.epochs=4"])
    data = small_colin27(8, 4)
    a = Trainer(cfg, tmp_path / "a", data=load_run_data(cfg, data), log=lambda m: None)
    a.prepare_run_dir(False, False)
    full = a.fit()
    c, resumed = interrupted_then_resumed(cfg, data, tmp_path / "b", stop_after=2)
    assert resumed["test"]["dice"] == full["test"]["dice"]
    assert [r["loss"] for r in c.history] == [r["loss"] for r in a.history]


def test_existing_run_folder_is_not_overwritten(tmp_path, capsys):
    run = tmp_path / "r"
    run.mkdir()
    (run / "keep.txt").write_text("x")
    rc = main(["train", "--data", "colin27", "--out", str(run), "--epochs", "1"])
    assert rc == 2 and "--overwrite" in capsys.readouterr().err
    assert (run / "keep.txt").read_text() == "x"


def test_resume_without_checkpoint(tmp_path, capsys):
    rc = main(["train", "--data", "colin27", "--out", str(tmp_path / "none"), "--resume"])
    assert rc == 2 and "resume" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", [[], ["train"], ["data", "export"], ["demo"], ["noise"], ["config"]])
def test_help_has_examples(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main(cmd + ["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out


def test_best_checkpoint_is_written_scored_and_chosen_for_predict(tmp_path):
    import torch

    from adele.run import RunFolder

    cfg = load_config(None, FAST + ["train.epochs=4", "train.seed=3"])
    data = small_colin27(8, 4)
    tr = Trainer(cfg, tmp_path / "run", data=load_run_data(cfg, data), log=lambda m: None)
    seen = []
    real = tr.evaluate
    tr.evaluate = lambda split, labels=None, model=None: seen.append(model) or real(split, labels, model)
    tr.prepare_run_dir(False, False)
    res = tr.fit()
    run = tmp_path / "run"
    vals = [r["val_mean_dice"] for r in tr.history]
    best_epoch = 1 + int(np.argmax(vals))
    best = json.loads((run / "metrics.json").read_text())["best_checkpoint"]
    assert best["epoch"] == best_epoch == res["best_val"]["epoch"] and best["val_mean_dice"] == max(vals)
    assert (run / "best.pt").is_file() and "test" in best
    folder = RunFolder.open(run)
    shipped, chosen, last = (folder.model("cpu", checkpoint=c) for c in ("model", "best", "last"))
    # model.pt is best.pt (train.model_weights: best_val), and metrics.json's test scores are its own
    assert all(torch.equal(a, b) for a, b in zip(shipped.model.state_dict().values(), chosen.model.state_dict().values()))
    assert res["test"] == best["test"] and res["model"] == {"weights": "best_val", "epoch": best_epoch}
    assert res["last_epoch"]["epoch"] == 4 and set(res["last_epoch"]) == {"epoch", "val", "test"}
    if best_epoch != 4:  # the best epoch's test scores come from its own weights; the last epoch's stay in last.pt
        # one model holds the best epoch's weights for its test and val scores (built once at the end)
        assert len({id(m) for m in seen if m is not None}) == 1 and sum(m is not None for m in seen) == 2
        assert (run / "last.pt").is_file() and last.origin == "last.pt"
        assert any(not torch.equal(a, b) for a, b in zip(last.model.state_dict().values(), chosen.model.state_dict().values()))
        assert res["val"]["mean_dice"] == best["val_mean_dice"] >= res["last_epoch"]["val"]["mean_dice"]
    else:
        assert best["test"] == res["last_epoch"]["test"] and not (run / "last.pt").exists()
    # train.model_weights: last ships the last epoch; the scores at the top are the last epoch's
    cfg_last = cfg.replace(**{"train.model_weights": "last"})
    tl = Trainer(cfg_last, tmp_path / "last", data=load_run_data(cfg_last, data), log=lambda m: None)
    tl.prepare_run_dir(False, False)
    res_last = tl.fit()
    assert res_last["model"] == {"weights": "last", "epoch": 4} and res_last["test"] == res_last["last_epoch"]["test"]
    assert res_last["last_epoch"]["test"] == res["last_epoch"]["test"] and res_last["best_checkpoint"] == res["best_checkpoint"]
    assert not (tmp_path / "last" / "last.pt").exists()
    # resuming a finished run's last epochs reloads best.pt and scores the same
    assert interrupted_then_resumed(cfg, data, tmp_path / "b", stop_after=2)[1]["best_checkpoint"] == res["best_checkpoint"]


def test_predict_with_the_best_checkpoint(tiny_run, small_colin27_dir, tmp_path, capsys):
    run = tiny_run()
    assert main(["predict", str(run), "--input", str(small_colin27_dir / "test" / "images"), "--out", str(tmp_path / "p"),
                 "--checkpoint", "best", "--device", "cpu"]) == 0
    assert len(list((tmp_path / "p").glob("*.png"))) == 3 and "model: best.pt" in capsys.readouterr().out
    # the last epoch's weights: last.pt where model.pt holds the best epoch, else model.pt itself
    assert main(["predict", str(run), "--input", str(small_colin27_dir / "test" / "images"), "--out", str(tmp_path / "q"),
                 "--checkpoint", "last", "--device", "cpu"]) == 0
    shipped = json.loads((run / "metrics.json").read_text())["model"]
    expected = "last.pt" if shipped["weights"] == "best_val" and shipped["epoch"] != json.loads((run / "metrics.json").read_text())["epochs"] else "model.pt"
    assert f"model: {expected}" in capsys.readouterr().out


def test_train_prints_which_epoch_model_pt_holds():
    from adele.cli.train import model_weights_line

    assert model_weights_line({"epochs": 40, "model": {"weights": "best_val", "epoch": 17}}).startswith(
        "epoch 17 of 40, the best on the validation labels")
    assert model_weights_line({"epochs": 40, "model": {"weights": "last", "epoch": 40}}) == "the last epoch (40)"


def test_batch_size_above_the_training_set_is_clipped_with_one_warning(tmp_path):
    """Issue 38: train.batch_size=100000 on a 4-image set with a fixed number of steps drew batches of 100000 images
    (with replacement) and ran out of memory; the batch is clipped to the training set, with one warning line."""
    from adele.testing import make_dataset

    ds = make_dataset(tmp_path / "ds", n_train=4)
    cfg = load_config(None, FAST + [f"data.path={ds}", "train.batch_size=100000", "train.steps_per_epoch=2", "train.epochs=1"])
    lines = []
    tr = Trainer(cfg, tmp_path / "run", log=lines.append)
    assert tr.cfg.train.batch_size == 4 and len(tr.loader(0).sampler) == 2 * 4
    said = [m for m in lines if "train.batch_size" in m]
    assert len(said) == 1 and said[0].startswith("warning: ") and "100000" in said[0] and "4 training images" in said[0], lines
    tr.prepare_run_dir(resume=False, overwrite=False)
    tr.fit()
    assert load_config(tmp_path / "run" / "config.yaml").train.batch_size == 4  # the run records the batch it trained with


def test_one_training_scores_both_early_stopping_competitors(tmp_path):
    """With synthetic noise, validation is scored every epoch against the noisy val labels (what a user has) and the
    clean ones; each selection's best epoch and the test scores of its weights land in metrics.json, and resume exactly."""
    from adele.engine.trainer import validation_label_sets

    noise = ["train.epochs=4", "train.seed=2", "data.noise=final:target_area=1000", "data.noise_seed=1"]
    cfg = load_config(None, FAST + noise + ["data.val_labels=clean"])
    data = small_colin27(8, 4)
    prepared = load_run_data(cfg, data)
    sets = validation_label_sets(prepared.val, cfg.data.noise, cfg.data.validation_labels())
    assert set(sets) == {"noisy", "clean"} and sets["clean"] is prepared.val.original
    assert any((a != b).any() for a, b in zip(sets["noisy"], sets["clean"]))  # the noise was drawn on val as well
    # the same noisy val labels as a run that selects on them: data.val_labels null (the default) is noisy under data.noise
    default = load_config(None, FAST + noise)
    assert default.data.val_labels is None and default.data.validation_labels() == "noisy"
    other = load_run_data(default, data).val
    assert all(np.array_equal(a, b) for a, b in zip(sets["noisy"], other.original))
    assert all(np.array_equal(a, b) for a, b in zip(sets["clean"], other.clean))
    tr = Trainer(cfg, tmp_path / "run", data=prepared, log=lambda m: None)
    tr.prepare_run_dir(False, False)
    res = tr.fit()
    for name in ("noisy", "clean"):
        curve = [r[f"val_{name}_mean_dice"] for r in tr.history]
        rec = res[f"best_checkpoint_{name}_val"]
        assert rec["epoch"] == 1 + int(np.argmax(curve)) and rec["val_mean_dice"] == max(curve)
        assert set(rec["test"]) >= {"mean_dice", "dice"}
    assert [r["val_clean_mean_dice"] for r in tr.history] == [r["val_mean_dice"] for r in tr.history]  # selection = clean
    if res["best_checkpoint_clean_val"]["epoch"] == res["best_checkpoint"]["epoch"]:
        assert res["best_checkpoint_clean_val"]["test"] == res["best_checkpoint"]["test"]
    resumed = interrupted_then_resumed(cfg, data, tmp_path / "b", stop_after=2)[1]
    assert resumed["best_checkpoint_noisy_val"] == res["best_checkpoint_noisy_val"]
    assert resumed["best_checkpoint_clean_val"] == res["best_checkpoint_clean_val"]
    # without synthetic noise the labels as given are the user's (noisy) ones; no clean set unless labels_clean
    plain = load_config(None, FAST)
    assert plain.data.validation_labels() == "clean"
    assert set(validation_label_sets(load_run_data(plain, data).val, None, plain.data.validation_labels())) == {"noisy"}


def test_correction_with_the_best_noisy_val_weights(tmp_path):
    """adele.correction.weights best_val: the rounds read the weights of the best epoch so far on the noisy val labels
    (what early stopping keeps), not the current ones; kept in the checkpoint, so resume corrects identically."""
    import torch

    sets = FAST + ["train.epochs=4", "train.seed=2", "data.noise=final:target_area=1000", "data.noise_seed=1", "method=adele",
                   "adele.correction.weights=best_val"]
    cfg = load_config(None, sets)
    data = small_colin27(8, 4)
    tr = Trainer(cfg, tmp_path / "run", data=load_run_data(cfg, data), log=lambda m: None)
    assert tr.correction_model() is tr.eval_model  # nothing validated yet
    given, snaps = [], []

    def copy(net):
        return {k: v.detach().clone() for k, v in net.state_dict().items()}

    real_after, real_eval = tr.method.after_epoch, tr.evaluate_sets
    tr.method.after_epoch = lambda epoch, cm, net, device, dist: given.append(copy(net)) or real_after(epoch, cm, net, device, dist)
    tr.evaluate_sets = lambda split, sets, model=None: (snaps.append(copy(tr.eval_model)) if split is tr.data.val else None) or real_eval(split, sets, model)
    tr.prepare_run_dir(False, False)
    res = tr.fit()
    curve = [r["val_noisy_mean_dice"] for r in tr.history]
    assert len(given) == 4 and len(snaps) == 5  # every epoch, and the final scores

    def same(a, b):
        return all(torch.equal(a[k], b[k]) for k in a)

    assert same(given[0], snaps[0])  # epoch 1: no validation yet, the current weights
    for e in range(2, 5):  # epoch e's round: the best of epochs 1..e-1 on the noisy val labels
        assert same(given[e - 1], snaps[int(np.argmax(curve[: e - 1]))])
    assert res["best_checkpoint_noisy_val"]["epoch"] == 1 + int(np.argmax(curve))
    resumed = interrupted_then_resumed(cfg, data, tmp_path / "b", stop_after=2)[1]
    assert resumed["test"] == res["test"]


def test_patience_stops_after_that_many_epochs_without_a_better_validation_score(tmp_path):
    """train.patience: training ends once the validation score best.pt is chosen on has not improved for that many
    epochs; model.pt is the best epoch, metrics.json says where it stopped, a resumed stopped run stays stopped, and
    the setting is refused without a val split."""
    from adele.config import ConfigError

    cfg = load_config(None, FAST + ["train.epochs=8", "train.patience=2"])
    data = small_colin27(6, 2)
    scripted = [0.5, 0.6, 0.55, 0.58, 0.9, 0.95, 0.97, 0.99]  # best at epoch 2, then two epochs without better

    def trainer(run_dir, config=cfg):
        tr = Trainer(config, run_dir, data=load_run_data(config, data), log=logged.append)
        real = tr.evaluate_sets

        def evaluate_sets(split, label_sets, model=None):
            scored = real(split, label_sets, model)
            if split is tr.data.val and model is None and "" in scored:  # the epoch's validation pass
                scored[""] = dict(scored[""], mean_dice=scripted[tr.epoch - 1])
            return scored

        tr.evaluate_sets = evaluate_sets
        return tr

    logged: list[str] = []
    tr = trainer(tmp_path / "run")
    tr.prepare_run_dir(False, False)
    res = tr.fit()
    assert len(tr.history) == 4 and res["epochs"] == 4 and res["last_epoch"]["epoch"] == 4
    assert res["stopped_early"] == {"epoch": 4, "best_epoch": 2, "patience": 2}
    assert res["model"] == {"weights": "best_val", "epoch": 2}
    assert any("stopped after epoch 4 of 8" in m and "train.patience" in m for m in logged)
    again = trainer(tmp_path / "run")  # --resume of the stopped run: nothing more trained, the same results
    again.prepare_run_dir(resume=True, overwrite=False)
    again.resume()
    res2 = again.fit()
    assert len(again.history) == 4 and res2["stopped_early"] == res["stopped_early"] and res2["test"] == res["test"]
    # a run whose planned epochs end exactly train.patience epochs after its best did not stop early
    short = trainer(tmp_path / "short", cfg.replace(**{"train.epochs": 4}))
    short.prepare_run_dir(False, False)
    assert "stopped_early" not in short.fit() and len(short.history) == 4
    free = trainer(tmp_path / "free", cfg.replace(**{"train.patience": None}))  # null: every epoch
    free.prepare_run_dir(False, False)
    assert len(free.history) == 0 and "stopped_early" not in free.fit() and len(free.history) == 8
    with pytest.raises(ConfigError, match="train.patience"):
        load_config(None, ["train.patience=0"])
    no_val = small_colin27(6, 2)
    no_val.splits.pop("val")
    with pytest.raises(ConfigError, match="no val split"):
        Trainer(cfg, tmp_path / "nv", data=load_run_data(cfg, no_val), log=lambda m: None)
