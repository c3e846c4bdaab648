"""The diagnosis scripts in benchmarks/ run on small inputs (docs/benchmarks.md describes them)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def run(script, *args):
    res = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, env=ENV, timeout=300)
    assert res.returncode == 0, res.stderr
    return res.stdout


RESULT_KEYS = {"benchmark", "command", "commit", "date", "machine", "settings", "results"}


def result(folder: Path, name: str, script: str) -> dict:
    """The result file ``folder/name.json`` a benchmark wrote, with its envelope checked."""
    doc = json.loads((folder / f"{name}.json").read_text())
    assert set(doc) == RESULT_KEYS and doc["benchmark"] == Path(script).stem and doc["command"][:2] == ["python", f"benchmarks/{script}"]
    return doc


def test_a_smoke_run_writes_a_result_file_only_into_an_explicit_folder():
    sys.path.insert(0, str(BENCH))
    import argparse

    from bench_common import add_result_options, result_target

    ap = argparse.ArgumentParser()
    add_result_options(ap, "x")
    assert result_target(ap.parse_args([]), "x", smoke=True) is None
    assert result_target(ap.parse_args([]), "x") == ("x", None)
    assert result_target(ap.parse_args(["--result-dir", "d", "--result", "y"]), "x", smoke=True) == ("y", Path("d"))


def test_result_commands_name_no_path_of_the_machine(tmp_path):
    sys.path.insert(0, str(BENCH))
    from bench_common import _repo_relative

    outside = tmp_path / "runs" / "structures"
    assert _repo_relative(str(outside)) == "PATH/structures"
    assert _repo_relative(f"--out={outside}") == "--out=PATH/structures"
    assert _repo_relative(str(BENCH / "bench_adele.py")) == "benchmarks/bench_adele.py"
    assert _repo_relative(str(Path.home() / "x")) in ("~/x", "PATH/x")
    assert _repo_relative("runs/bench") == "runs/bench"


def test_correction_ceiling_on_a_trained_run(tiny_run, tmp_path):
    out = run("bench_correction_ceiling.py", str(tiny_run()), "--taus", "0.5", "0.9", "--result-dir", str(tmp_path))
    assert "model prediction" in out
    rows = [line for line in out.splitlines() if re.match(r"\| 0\.[59] \|", line)]
    changed = [int(r.split("|")[2]) for r in rows]
    assert len(rows) == 2 and changed[0] >= changed[1]  # a higher threshold never changes more pixels
    doc = result(tmp_path, "correction_ceiling", "bench_correction_ceiling.py")
    per_tau = doc["results"]["per_tau"]
    assert [r["tau"] for r in per_tau] == [0.5, 0.9] and [r["pixels_changed"] for r in per_tau] == changed
    precision = per_tau[0]["precision"]  # NaN (stored as null) when no pixel changed
    assert ("nan" if precision is None else f"{precision:.3f}") == rows[0].split("|")[3].strip()
    assert f"model prediction {doc['results']['model_prediction_dice_with_clean']:.3f}" in out
    # the run folder was given as an absolute path: the stored command shows RUN, no path of this machine
    assert doc["command"][2] == "RUN" and str(tiny_run()) not in json.dumps(doc) and doc["settings"]["method"] == "baseline"


@pytest.mark.slow  # a benchmark's real code path, tens of seconds: CI's slow suite
def test_noise_ceiling_table(tmp_path):
    out = run("bench_noise_ceiling.py", "--k", "3", "--sigmas", "0", "2", "--result-dir", str(tmp_path))
    values = [float(v) for v in re.findall(r"\| (0\.\d{3}) \|", out)]
    assert len(values) == 3 and all(0.3 < v < 1.0 for v in values)
    assert "3 realizations each" in out
    doc = result(tmp_path, "noise_ceiling", "bench_noise_ceiling.py")
    stored = [doc["results"]["one_realization_dice_with_clean"]] + [r["dice_with_clean"] for r in doc["results"]["consensus"]]
    assert [round(v, 3) for v in stored] == values and doc["settings"]["k"] == 3 and doc["settings"]["sigmas"] == [0, 2]


def test_native_export_smoke_writes_its_rows(tmp_path):
    out = run("bench_native_export.py", "--smoke", "--data", "colin27", "--result-dir", str(tmp_path))
    row = [line for line in out.splitlines() if line.startswith("| colin27 |")]
    assert len(row) == 1
    stored = result(tmp_path, "native_export", "bench_native_export.py")["results"]["rows"]
    assert len(stored) == 1 and stored[0]["size"] == "56x48" and stored[0]["images"] == 4
    assert row[0] == (f"| colin27 | 56x48 | {stored[0]['nearest_dice']:.4f} | {stored[0]['onehot_bilinear_dice']:.4f} | "
                      f"{stored[0]['gain_points']:+.2f} |")


@pytest.mark.slow  # a benchmark's real code path, tens of seconds: CI's slow suite
def test_plan_scaling_writes_every_plan(tmp_path):
    out = run("bench_plan.py", "--scaling", "--result-dir", str(tmp_path))
    assert "steps per epoch" in out
    plans = result(tmp_path, "plan_scaling", "bench_plan.py")["results"]["plans"]
    assert [(p["slices"], p["device"]) for p in plans] == [(n, d) for n in (40, 72, 500, 2000) for d in ("cpu", "cuda")]
    p = plans[-1]
    assert (f"| 2000 | cuda | {p['data.size'][0]}x{p['data.size'][1]} | {p['batch_size']} | {p['steps_per_epoch']} | {p['epochs']} | "
            f"{p['optimizer_steps']} |") in out


@pytest.mark.slow  # a benchmark's real code path, tens of seconds: CI's slow suite
def test_early_learning_trace_with_oracle_correction_columns(tmp_path):
    out = run("bench_early_learning.py", "--smoke", "--taus", "0.5", "0.9", "--out", str(tmp_path / "run"), "--result-dir", str(tmp_path))
    rows = [line for line in out.splitlines() if re.match(r"\| \d+ \|", line)]
    assert [r.split("|")[1].strip() for r in rows] == ["1", "2"]
    cells = [[float(v) for v in r.strip(" |").split("|")[1:]] for r in rows]
    assert all(len(c) == 5 and all(0.0 <= v <= 1.0 for v in c) for c in cells)
    assert "labels corrected at tau 0.9 vs clean" in out
    noisy_vs_clean = float(re.search(r"mean Dice with clean: (0\.\d+)", out).group(1))
    # after one or two epochs the model is barely confident anywhere: a 0.9 threshold leaves the labels nearly as they were
    assert abs(cells[0][4] - noisy_vs_clean) < 0.05
    doc = result(tmp_path, "early_learning", "bench_early_learning.py")
    assert doc["settings"]["smoke"] and doc["settings"]["epochs"] == 2 and doc["settings"]["taus"] == [0.5, 0.9]
    stored = [[e["test_dice"], e["train_prediction_vs_clean"], e["train_prediction_vs_noisy"], *e["corrected_vs_clean"].values()]
              for e in doc["results"]["epochs"]]
    assert [e["epoch"] for e in doc["results"]["epochs"]] == [1, 2] and [[round(v, 3) for v in c] for c in stored] == cells
    assert round(doc["results"]["noisy_labels_vs_clean"], 3) == noisy_vs_clean


@pytest.mark.slow
def test_hostile_input_pass_runs_and_classifies(tmp_path):
    out = run("bench_hostile_inputs.py", "-k", "dataset.json is", "--result-dir", str(tmp_path))
    assert "2 cases tried" in out and "refused as intended): 2" in out and "anything else: 0" in out
    doc = result(tmp_path, "hostile_inputs", "bench_hostile_inputs.py")
    res = doc["results"]
    assert doc["settings"]["k"] == "dataset.json is" and (res["refused_as_intended"], res["anything_else"]) == (2, 0)
    assert f"{len(res['cases'])} cases tried in {res['seconds']:.0f} s" in out
    assert [c["name"] for c in res["cases"]] == ["dataset.json is a folder", "dataset.json is empty"]
    # the error names the case's temporary folder: stored as TMP
    assert all(c["result"] == "one-line exit 2" and c["detail"].startswith("rc 2: error: TMP/ds/dataset.json") for c in res["cases"])


@pytest.mark.slow
def test_label_quality_race_runs_and_skips_cleanlab_when_missing(tmp_path):
    """One noise draw, 2 folds, 2 epochs: every row of the table; without cleanlab its rows go with one line saying how to install it."""
    fake = tmp_path / "site"
    (fake / "cleanlab").mkdir(parents=True)
    (fake / "cleanlab" / "__init__.py").write_text("raise ImportError('cleanlab hidden by the test')\n")
    env = dict(ENV, PYTHONPATH=str(fake))
    res = subprocess.run([sys.executable, str(BENCH / "bench_label_quality.py"), "--work", str(tmp_path / "work"), "--datasets", "colin27",
                          "--draws", "1", "--folds", "2", "--epochs", "2", "--figure-dir", str(tmp_path / "fig"),
                          "--result-dir", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out, review = res.stdout.split("**colin27**: review curves", 1)
    assert sum("pip install" in line and "cleanlab" in line for line in out.splitlines()) == 1
    rows = [line for line in out.splitlines() if line.startswith("| adele")]
    assert len(rows) == 4 and not any(line.startswith("| cleanlab") for line in out.splitlines())
    for line in rows:
        cells = line.strip(" |").split("|")
        spearman, auroc = float(cells[1].split()[0]), float(cells[2].split()[0])
        assert -1 <= spearman <= 1 and 0 <= auroc <= 1
    assert "| 1 |" in rows[0] and "quality.tau=0.7" in rows[1] and "2 + 1" in rows[2]
    # issue 28: review curves (areas, random order, oracle), their figure, and the verdict's calibration per severity level
    review, calibration = review.split("**colin27**: the verdict's estimated share", 1)
    areas = {line.split("|")[1].strip(): [float(v) for v in line.split("|")[2:7]] for line in review.splitlines() if line.startswith("| ")
             and not line.startswith("| ranking")}
    assert set(areas) == {"adele early-learning (one run)", "adele formula on 2-fold out-of-sample softmax",
                          "adele formula on in-sample softmax (final model)", "random order (expected)", "oracle (most wrong pixels first)"}
    assert areas["random order (expected)"] == [0.5, 0.5, 0.1, 0.2, 0.3]
    best = areas["oracle (most wrong pixels first)"][0]
    assert all(0 <= a[0] <= best + 1e-9 for a in areas.values())  # no ranking beats the oracle on the masks axis
    assert (tmp_path / "fig" / "review_curve_colin27.png").is_file()
    rows = [line for line in calibration.splitlines() if line.startswith("| ") and not line.startswith("| images")]
    assert [r.split("|")[1].split("(")[0].strip() for r in rows] == ["all images", "clean", "mild", "final", "final 1000 px",
                                                                      "final 1000 px + missing + confusion"]
    clean_row = [c.strip() for c in rows[1].split("|")]
    assert float(clean_row[3]) == 0.0  # the clean images' true share of wrong pixels
    assert "draw 0, all images: labels: ~" in calibration
    result = json.loads((tmp_path / "label_quality_colin27.json").read_text())  # issue 38: the figures' result file, per draw
    spearman = result["results"]["per_draw"]["colin27"][0]["results"]["adele early-learning (one run)"]["spearman"]
    assert -1 <= spearman <= 1 and result["settings"]["draws"] == 1 and result["command"][1] == "benchmarks/bench_label_quality.py"


@pytest.mark.slow
@pytest.mark.parametrize("script,args,expect", [
    ("bench_perf.py", ["--smoke"], "ratio to baseline"),
    ("bench_perf.py", ["--smoke", "--only", "run", "--candidate", "cons10", "adele.consistency.every_steps=10"], "| cons10 |"),
    ("bench_perf.py", ["--smoke", "--only", "step", "--planned"], "planned from colin27-structures"),
    ("bench_core.py", ["--smoke"], "onset check, 10 classes x 100 epochs"),
    ("bench_noise.py", ["--smoke"], "| `markov` |"),
    ("bench_memory.py", ["--smoke"], "step time on disk / in memory"),
])
def test_benchmark_smoke_modes_run(tmp_path, script, args, expect):
    """Each smoke mode runs the benchmark's own code path on tiny settings, so a benchmark that no longer runs turns CI red."""
    out = run(script, *[a.format(tmp=tmp_path) for a in args])
    assert expect in out


@pytest.mark.slow
def test_plan_smoke_trains_both_recipes_and_writes_their_figures(tmp_path):
    out = run("bench_plan.py", "--smoke", "--out", str(tmp_path / "runs"), "--result-dir", str(tmp_path))
    assert "planned / preset" in out
    doc = result(tmp_path, "plan", "bench_plan.py")
    assert doc["settings"]["smoke"] and doc["settings"]["seeds"] == [0]
    for row in doc["results"]["per_seed"]:
        assert f"| {row['data']} | 0 | {row['planned_test_dice']:.3f} | {row['preset_test_dice']:.3f} |" in out
    assert [m["data"] for m in doc["results"]["mean"]] == ["colin27 (72 slices)", "40-slice subset"]


@pytest.mark.slow
def test_nnunet_example_plan_train_predict_evaluate(tmp_path):
    """Issue 26's end-to-end path on the nnU-Net example: export, folds, plan, train, predict (per fold and ensembled), evaluate."""
    out = run("bench_nnunet_example.py", "--smoke", "--out", str(tmp_path), "--result-dir", str(tmp_path))
    assert "plan of fold 0" in out and "train.steps_per_epoch" in out
    rows = [line for line in out.splitlines() if line.startswith(("| fold", "| ensemble"))]
    assert [r.split("|")[1].strip() for r in rows] == ["fold 0", "fold 1", "ensemble of 2 folds"]
    assert "per class, ensemble: frontal" in out
    summary = json.loads((tmp_path / "pred_ensemble" / "summary.json").read_text())
    assert summary["num_cases"] == 3 and set(summary["metric_per_case"][0]) >= {"reference_file", "prediction_file", "metrics"}
    assert json.loads((tmp_path / "prep_fold1" / "prepare.json").read_text())["fold"] == 1
    res = result(tmp_path, "nnunet_example", "bench_nnunet_example.py")["results"]
    assert [f["fold"] for f in res["per_fold"]] == [0, 1] and res["ensemble"]["test_mean_dice"] == summary["foreground_mean_present"]["Dice"]
    assert rows[1].split("|")[3].strip() == f"{res['per_fold'][1]['test_mean_dice']:.3f}"
    assert f"frontal {res['ensemble']['per_class']['frontal']:.3f}" in out


@pytest.mark.slow
def test_bench_adele_smoke_prints_the_competitors_and_the_round_report(tmp_path):
    out = run("bench_adele.py", "--smoke", "--out", str(tmp_path), "--variants", "adele", "baseline_noisy", "baseline_clean",
              "--clean-seeds", "0", "--verify", "adele:1")
    # both early-stopping competitors come from the same baseline runs
    assert "baseline, best val epoch (clean val labels)" in out and "baseline, best val epoch (noisy val labels)" in out
    assert "adele - baseline_noisy, paired by seed" in out and "adele - baseline_bestval_noisy, paired by seed" in out
    assert "correction rounds per class" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary[0]["dataset"] == "colin27-structures" and summary[0]["config"] == "plan" and len(summary[0]["adele"]) == 2
    assert len(summary[0]["baseline_bestval_noisy"]) == 2 and set(summary[0]["adele_vs_baseline_bestval_noisy"]) >= {"mean", "low", "high"}
    result = json.loads((tmp_path / "adele_colin27-structures_final-target-area-1000.json").read_text())  # smoke: into OUT, not docs/
    assert result["results"]["summary"] == summary and result["settings"]["seeds"] == [0, 1]
    # the clean-label reference on its own seed: a mean, not paired
    assert summary[0]["baseline_clean_seeds"] == [0] and len(summary[0]["baseline_clean"]) == 1 and "baseline_clean (seeds [0])" in out
    assert not (tmp_path / "clean" / "baseline_clean_s1").exists()
    # --verify: the run trained again by this code gives what the reused one holds
    assert result["results"]["verified"] == [{"run": "final-target-area-1000/adele_s1", "same": True, "differences": [],
                                             "verdict": "the same"}]
    assert "verify final-target-area-1000/adele_s1: trained again, the same" in out
    assert (tmp_path / "verify" / "final-target-area-1000" / "adele_s1" / "metrics.json").is_file()


def test_bench_adele_verify_compares_what_training_decided_in_every_metrics_version():
    """trained_values: a run recorded before model.pt could hold another epoch ("test" = the last epoch) equals the same
    training recorded now ("last_epoch"; "test" = model.pt's epoch); a score or a round that differs is named."""
    b = _bench_adele()
    best = {"epoch": 3, "test": {"mean_dice": 0.6}}
    old = {"test": {"mean_dice": 0.5}, "val": {"mean_dice": 0.4}, "best_checkpoint_noisy_val": best,
           "adele": {"rounds": [{"epoch": 4, "pixels_changed": 10, "seconds": 1.0}]}}
    new = {"test": {"mean_dice": 0.6}, "val": {"mean_dice": 0.45}, "model": {"weights": "best_val", "epoch": 3},
           "last_epoch": {"test": {"mean_dice": 0.5}, "val": {"mean_dice": 0.4}}, "best_checkpoint_noisy_val": best,
           "adele": {"rounds": [{"epoch": 4, "pixels_changed": 10, "seconds": 2.5}]}}
    assert b._differing(b.trained_values(old), b.trained_values(new)) == []
    new["adele"]["rounds"][0]["pixels_changed"] = 11
    new["last_epoch"]["test"]["mean_dice"] = 0.51
    assert b._differing(b.trained_values(old), b.trained_values(new)) == ["last_epoch.test.mean_dice", "rounds.0.1"]
    new["adele"]["rounds"].append({"epoch": 6, "pixels_changed": 1})
    assert "rounds" in b._differing(b.trained_values(old), b.trained_values(new))


@pytest.mark.slow
def test_check_identical_agrees_with_itself(tmp_path):
    """The behaviour-preserving check of issue 29: a manifest compared with itself is identical (and the script runs)."""
    first = run("check_identical.py", "--manifest", str(tmp_path / "m.json"), "--keep", str(tmp_path / "runs"))
    assert "files hashed" in first
    man = json.loads((tmp_path / "m.json").read_text())
    assert any(k.endswith("model.pt") for k in man) and any(k.startswith("report/") for k in man) and any(k.startswith("export/") for k in man)


@pytest.mark.slow
def test_cli_startup_benchmark_writes_its_results_file(tmp_path):
    """One round (it imports torch once as the reference): every command answered, without torch or matplotlib."""
    out = run("bench_cli_startup.py", "--repeats", "1", "--out", str(tmp_path / "startup.json"))
    result = json.loads((tmp_path / "startup.json").read_text())
    assert set(result["commands"]) == {"adele --help", "adele --version", "adele config show", "adele data check colin27-export"}
    assert all(not {"torch", "matplotlib"} & set(row["imports"]) for row in result["commands"].values())
    assert result["references"]["python -c 'import torch'"]["cpu_s"]["min"] > 0 and "wrote" in out


def _bench_adele():
    sys.path.insert(0, str(BENCH))
    import bench_adele

    return bench_adele


def test_bench_adele_config_mismatch_names_the_settings_that_differ_not_how_the_run_executed():
    """Issue 38: a finished run is compared with the config asked for; threads/device do not count, a missing key does."""
    from adele.config import Config

    b = _bench_adele()
    asked = Config().replace(**{"method": "adele"}).to_dict()
    recorded = Config().replace(**{"method": "adele", "adele.correction.guard_area": None, "train.threads": 1, "train.device": "cpu"}).to_dict()
    assert b.config_mismatch(recorded, asked) == [("adele.correction.guard_area", None, 0.25)]
    assert b.config_mismatch(asked, asked) == []
    del recorded["quality"]["tau"]  # a run made before the setting existed
    assert ("quality.tau", None, 0.5) in b.config_mismatch(recorded, asked)
    # two baselines: the adele.* settings they never read do not count; anything else still does
    base = Config().replace(**{"method": "baseline"}).to_dict()
    old = Config().replace(**{"method": "baseline", "adele.correction.class_share": None}).to_dict()
    del old["adele"]["correction"]["weights"]
    assert b.config_mismatch(old, base) == []
    assert b.config_mismatch(Config().replace(**{"method": "baseline", "train.seed": 3}).to_dict(), base) == [("train.seed", 3, 0)]
    assert b.config_mismatch(old, asked) != []  # a baseline is not an ADELE run
    # a setting added later reads, in a run recorded without it, as the value that reproduces the older code
    before = Config().replace(**{"method": "adele"}).to_dict()
    del before["adele"]["correction"]["bars_over"]
    predicted = Config().replace(**{"method": "adele", "adele.correction.bars_over": "predicted"}).to_dict()
    assert b.config_mismatch(before, predicted) == []
    assert b.config_mismatch(before, asked) == [("adele.correction.bars_over", "predicted", "changes")]  # the default since
    # which weights model.pt holds does not change the training: a run made before the setting, or with the other
    # value, is reused (the benchmark reads every selection from metrics.json)
    del before["train"]["model_weights"]
    assert b.config_mismatch(before, predicted) == []
    assert b.config_mismatch(Config().replace(**{"method": "adele", "train.model_weights": "last"}).to_dict(), asked) == []


def test_bench_adele_gives_each_adele_variant_a_best_noisy_val_column():
    b = _bench_adele()
    cols = b.best_columns(["baseline_noisy", "adele", "adele_changebars", "baseline_clean"])
    assert cols["adele_changebars_bestval_noisy"][:2] == ("adele_changebars", "best_checkpoint_noisy_val")
    assert {"baseline_bestval_noisy", "adele_bestval_noisy"} <= set(cols) and "baseline_clean_bestval_noisy" not in cols
    assert b.best_column("adele_nosuch_bestval_noisy") is None and b.best_column("adele_changebars") is None
    run = {"test": {"mean_dice": 0.5}, "best_checkpoint_noisy_val": {"epoch": 3, "test": {"mean_dice": 0.6}}}
    assert b.scores(run, "adele_changebars_bestval_noisy")["mean_dice"] == 0.6 and b.scores(run, "adele_changebars")["mean_dice"] == 0.5


def test_bench_adele_reads_the_last_epoch_whichever_weights_model_pt_holds():
    b = _bench_adele()
    last, shipped = {"mean_dice": 0.5}, {"mean_dice": 0.6}
    old_run = {"test": last, "best_checkpoint_noisy_val": {"epoch": 3, "test": shipped}}  # metrics.json before model_weights
    new_run = {"test": shipped, "last_epoch": {"epoch": 9, "test": last}, "best_checkpoint_noisy_val": {"epoch": 3, "test": shipped}}
    for run in (old_run, new_run):
        assert b.scores(run, "adele") == last and b.scores(run, "adele_bestval_noisy") == shipped


def test_bench_adele_refuses_or_retrains_a_finished_run_made_with_other_settings(tmp_path, monkeypatch):
    import yaml

    from adele.config import Config

    b = _bench_adele()
    adele = Config().replace(**{"method": "adele"})
    asked = adele.to_dict()
    monkeypatch.setattr(b, "asked_config", lambda run_dir, sets, data, config: asked)
    same, other, unfinished = tmp_path / "adele_s0", tmp_path / "adele_s1", tmp_path / "adele_s2"
    for d, cfg in ((same, adele), (other, adele.replace(**{"adele.correction.class_share": None}))):
        d.mkdir()
        (d / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
        (d / "metrics.json").write_text("{}")
    runs = {d: (["method=adele"], "colin27-structures") for d in (same, other, unfinished)}
    with pytest.raises(SystemExit, match=r"1 finished run\(s\) were made with other settings.*adele_s1: adele.correction.class_share "
                                         r"None \(asked 0.5\).*--retrain-mismatched"):
        b.check_reuse(runs, "plan", retrain=False)
    assert (other / "metrics.json").is_file()
    b.check_reuse(runs, "plan", retrain=True)
    assert not (other / "metrics.json").exists() and (same / "metrics.json").is_file()  # trained again / reused


def test_intervals_are_printed_and_rendered_without_a_negative_zero():
    sys.path.insert(0, str(BENCH))
    import bench_common
    import render_docs

    for fmt in (bench_common.fmt_ci, render_docs.fmt_ci):
        assert fmt(-0.04, -1.84, 1.76) == "+0.0 [-1.8, +1.8]" and fmt(4.26, 0.55, 7.96) == "+4.3 [+0.6, +8.0]"
        assert fmt(-0.96, float("nan"), float("nan")) == "-1.0"
