import json

import pytest

from adele.demo import benchmark_line


def test_benchmark_line_reads_the_recorded_summary(tmp_path):
    path = tmp_path / "s.json"
    assert benchmark_line("final", path) is None
    row = {"dataset": "colin27-structures", "config": "plan", "recipe": "final:target_area=1000", "seeds": [0, 1, 2, 3, 4],
           "adele_diff": {"mean": 2.5, "low": 0.5, "high": 4.5, "ahead": 4}}
    path.write_text(json.dumps([dict(row, dataset="colin27", config="colin27.yaml"), row]))
    line = benchmark_line("final:target_area=1000", path)
    assert "+2.5 points, 95% CI [+0.5, +4.5], ahead on 4 of 5 seeds" in line
    assert benchmark_line("markov", path) is None
    path.write_text(json.dumps([dict(row, config="colin27.yaml")]))  # another recipe's interval is not the demo's
    assert benchmark_line("final:target_area=1000", path) is None
    # bench_adele's result file, with the early-stopping competitor
    es = {"mean": -1.0, "low": -3.0, "high": 1.0}
    path.write_text(json.dumps({"results": {"summary": [dict(row, adele_vs_baseline_bestval_noisy=es)]}}))
    line = benchmark_line("final:target_area=1000", path)
    assert "+2.5 points" in line and "best checkpoint on noisy val labels -1.0 points [-3.0, +1.0]" in line
    # with the selection model.pt ships (the best epoch on noisy val labels) against early stopping
    shipped = {"mean": 4.1, "low": -0.5, "high": 8.7, "ahead": 4}
    full = dict(row, adele_vs_baseline_bestval_noisy=es, adele_bestval_noisy_vs_baseline_bestval_noisy=shipped,
                adele_bestval_noisy_diff={"mean": 7.4, "low": 1.7, "high": 13.1, "ahead": 5})
    path.write_text(json.dumps({"results": {"summary": [full]}}))
    line = benchmark_line("final:target_area=1000", path)
    assert "ADELE (model.pt) - early stopping on noisy val labels +4.1 points [-0.5, +8.7], ahead on 4 of 5 seeds" in line
    assert "the baseline's last epoch +7.4 points [+1.7, +13.1]" in line and "-1.0" not in line


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, capsys):
    from adele.cli import main

    assert main(["demo", "--epochs", "2", "--out", str(tmp_path / "demo"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "recipe 'final:target_area=1000' on the 34 training slices of colin27-structures" in out
    assert "ADELE (model.pt) - early stopping (the baseline's model.pt) on this seed" in out
    assert "masks to re-annotate first" in out and "Spearman of the ranking" in out
    summary = json.loads((tmp_path / "demo" / "demo_summary.json").read_text())
    assert set(summary["test_mean_dice"]) == set(summary["test_mean_dice_last_epoch"]) == {"baseline", "adele"}
    assert (tmp_path / "demo" / "report" / "index.html").is_file()


def test_demo_table_header_shows_each_runs_whole_name():
    from adele.reporting.tables import format_metrics_table

    run = {"classes": ["background", "a", "b"], "test": {"dice": {"a": 0.5, "b": 0.25}, "mean_dice": 0.375, "per_image_mean_dice": 0.4}}
    table = format_metrics_table({"baseline (noisy)": run, "ADELE (noisy)": run}, split="test").splitlines()
    assert table[0].split()[2:] == ["baseline", "(noisy)", "ADELE", "(noisy)"]
    assert len({len(line) for line in table}) == 1  # the values stay under their names
    assert table[2].split() == ["a", "0.500", "0.500"]


def test_a_round_that_changed_no_pixel_prints_no_nan_precision():
    from adele.engine.method import round_line

    none = round_line(7, 2, {"pixels_changed": 0, "precision": None, "agreement_before": 0.5, "agreement_after": 0.5})
    assert "nan" not in none and "precision n/a (no pixel changed)" in none
    some = round_line(7, 3, {"pixels_changed": 12, "precision": 0.75, "agreement_before": 0.5, "agreement_after": 0.6})
    assert some == "epoch 7: correction round 3 changed 12 pixels, precision 0.750, label Dice vs clean 0.500 -> 0.600"
    assert round_line(7, 3, {"pixels_changed": 12}) == "epoch 7: correction round 3 changed 12 pixels"  # no clean labels


def test_demo_help_gives_a_measured_time(capsys):
    from adele.cli import main

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "about 8 minutes on 2 CPU cores (476 s measured alone)" in out and "7 minutes" not in out
