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


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, capsys):
    from adele.cli import main

    assert main(["demo", "--epochs", "2", "--out", str(tmp_path / "demo"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "recipe 'final:target_area=1000' on the 34 training slices of colin27-structures" in out
    assert "ADELE - baseline on this seed" in out
    assert "masks to re-annotate first" in out and "Spearman of the ranking" in out
    summary = json.loads((tmp_path / "demo" / "demo_summary.json").read_text())
    assert set(summary["test_mean_dice"]) == {"baseline", "adele"}
    assert (tmp_path / "demo" / "report" / "index.html").is_file()
