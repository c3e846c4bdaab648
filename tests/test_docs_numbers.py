"""Issue 38: every number the docs quote from a benchmark is rendered from its result file (benchmarks/render_docs.py).

The first test is the guard: a number in README.md, BENCHMARKS.md or docs/ that differs from its result file
fails it (`python benchmarks/render_docs.py` rewrites them). The others check the marker parser and formatter.
"""
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import render_docs  # noqa: E402
from bench_common import write_result  # noqa: E402
from render_docs import RenderError, format_value, lookup, render_text, run  # noqa: E402


def test_every_rendered_number_in_the_docs_matches_its_result_file():
    code, lines = run(check=True)
    assert code == 0, "numbers in the docs differ from their result files (run python benchmarks/render_docs.py):\n" + "\n".join(lines)


@pytest.fixture
def results(tmp_path):
    d = tmp_path / "docs" / "benchmarks"
    write_result("perf", {"rounds": 5}, {"step": {"ADELE, default config": {"ratio_to_baseline": 1.4567}},
                                         "diff": {"mean": 4.7169, "low": 1.5397, "high": 7.8942},
                                         "seeds": [{"seed": 0, "dice": 0.6}, {"seed": 1, "dice": 0.7}]},
                 command=["benchmarks/bench_perf.py"], out_dir=d)
    return d


def _doc(tmp_path, text: str) -> Path:
    p = tmp_path / "README.md"
    p.write_text(text)
    return p


def test_a_mutated_number_is_caught_and_rendering_restores_it(tmp_path, results):
    good = ('cost <!-- render: value perf.json results.step."ADELE, default config".ratio_to_baseline .2f -->1.46<!-- /render -->x; '
            'gain <!-- render: value perf.json results.diff ci -->+4.7 [+1.5, +7.9]<!-- /render --> points\n')
    doc = _doc(tmp_path, good)
    assert run(True, tmp_path, results, [doc]) == (0, [])
    doc.write_text(good.replace("+1.5", "+1.6"))
    code, lines = run(True, tmp_path, results, [doc])
    assert code == 1 and len(lines) == 1 and "README.md:1" in lines[0] and "+1.6" in lines[0] and "+1.5" in lines[0]
    assert run(False, tmp_path, results, [doc])[0] == 0 and doc.read_text() == good


def test_missing_file_and_missing_path_are_errors_naming_them(tmp_path, results):
    with pytest.raises(RenderError, match=r"README.md:2: nope.json: no such result file"):
        run(True, tmp_path, results, [_doc(tmp_path, "x\n<!-- render: value nope.json results.a .1f -->1<!-- /render -->\n")])
    with pytest.raises(RenderError, match=r"perf.json: results.step has no key 'ADELE' \(its keys: ADELE, default config\)"):
        run(True, tmp_path, results, [_doc(tmp_path, "<!-- render: value perf.json results.step.ADELE .1f -->1<!-- /render -->")])
    with pytest.raises(RenderError, match="without its closing"):
        run(True, tmp_path, results, [_doc(tmp_path, "<!-- render: value perf.json results.diff ci -->1\n")])


def test_paths_index_lists_select_by_key_and_reduce():
    doc = {"results": {"rows": [{"recipe": "final:p=0.2", "v": [0.5, 0.7]}, {"recipe": "markov", "v": [0.1]}]}}
    assert lookup(doc, "results.rows.1.recipe") == "markov" and lookup(doc, "results.rows.-1.v.0") == 0.1
    assert lookup(doc, 'results.rows."recipe=final:p=0.2".v.@mean') == pytest.approx(0.6)
    with pytest.raises(RenderError, match="index 2 out of range"):
        lookup(doc, "results.rows.2")
    assert format_value(0.61234, ".3f") == "0.612" and format_value(2.5, "+.1f") == "+2.5"
    assert format_value({"mean": 2.0, "low": None, "high": None}, "ci") == "+2.0"
    with pytest.raises(RenderError, match="format 'ci' needs"):
        format_value(0.5, "ci")


def test_markers_quoted_in_inline_code_are_left_alone():
    text = "syntax: `<!-- render: value FILE.json PATH FORMAT -->TEXT<!-- /render -->`\n"
    assert render_text(text, lambda name: pytest.fail("nothing is loaded")) == (text, [])


def test_results_table_pairs_each_competitor_with_the_baseline_and_says_why_a_cell_is_missing(tmp_path):
    rows = [{"dataset": "colin27-structures", "recipe": "final", "config": "plan", "labels_dice_with_clean": 0.675, "seeds": [0, 1, 2],
             "baseline_noisy": [0.50, 0.60, 0.55], "adele": [0.55, 0.62, 0.60], "baseline_bestval_noisy": [0.52, 0.61, 0.56],
             "adele_bestval_noisy": [0.54, 0.62, 0.61]},
            {"dataset": "colin27", "recipe": "final", "config": "colin27.yaml", "labels_dice_with_clean": 0.6, "seeds": [0, 1, 2],
             "baseline_noisy": [0.6, 0.6, 0.6], "adele": [0.61, 0.63, 0.62]}]
    write_result("adele_x", {"variants": ["baseline_noisy", "adele", "baseline_noisyval"]}, {"summary": rows},
                 command=["benchmarks/bench_adele.py"], out_dir=tmp_path)
    table = render_docs.table_results(["adele_x.json"], lambda n: render_docs.load_result(n, tmp_path))
    lines = table.splitlines()
    assert lines[0] == ("| data | noise | training recipe | labels vs clean | baseline, last epoch | "
                        "baseline, best val epoch (noisy val labels) | ADELE, last epoch | "
                        "ADELE (default, model.pt), best val epoch (noisy val labels) | "
                        "ADELE (model.pt) - early stopping (noisy val labels) |")
    cells = lines[2].split(" | ")[4:]
    assert cells[:4] == ["0.550", "0.563 (+1.3 [-0.1, +2.8])", "0.590 (+4.0 [-0.3, +8.3])", "0.590 (+4.0 [-1.0, +9.0])"]
    # ADELE's shipped checkpoint - early stopping, paired by seed: 2, 1, 5
    assert cells[4].startswith("+2.7 [") and cells[4].endswith("ahead on 3 of 3 |")
    assert "—<sup>1</sup>" in lines[3] and "| 0.620 (+2.0 [-0.5, +4.5]) | —<sup>2</sup> | — |" in lines[3]
    assert any(line.startswith("<sup>1</sup> baseline, best val epoch (noisy val labels): missing from adele_x.json") for line in lines)
    footer = lines[-1]
    assert footer.startswith("`adele_x.json`: seeds [0, 1, 2];") and "commit " in footer and "torch" in footer


def test_write_result_records_command_commit_machine_and_refuses_a_path_as_name(tmp_path):
    path = write_result("x", {"a": 1}, {"v": [float("nan"), 1.0]}, command=[str(ROOT / "benchmarks" / "b.py"), "--n", "2"], out_dir=tmp_path)
    doc = json.loads(path.read_text())
    assert doc["command"] == ["python", "benchmarks/b.py", "--n", "2"] and doc["benchmark"] == "b"
    assert set(doc["commit"]) == {"hash", "dirty"} and {"cpu_count", "python", "torch"} <= set(doc["machine"])
    assert doc["results"] == {"v": [None, 1.0]} and doc["settings"] == {"a": 1}
    with pytest.raises(ValueError, match="bare file stem"):
        write_result("a/b", {}, {}, out_dir=tmp_path)
