"""``adele demo``: the main job on the embedded data.

1. synthesize human-like annotation noise (the paper's ``final`` recipe at its
   level) on the 34 training slices of ``colin27-structures`` (five separate brain
   structures on background, the paper's regime) and report how wrong the labels are;
2. train a baseline on the noisy labels;
3. train ADELE on the same noisy labels;
4. print per-class test Dice of each model.pt side by side (the best epoch on the
   noisy validation labels: the baseline's is early stopping), and what label correction did;
5. analyze memorization on the baseline and write an HTML report of both runs
   (``runs/demo/report/index.html``).

The recipe is the one ``adele train`` plans from the data (no config), so the demo
is a plain pair of runs that anyone can reproduce by hand, and the seed-0 runs of
``benchmarks/bench_adele.py``::

    adele train --data colin27-structures --method baseline --set data.noise=final:target_area=1000
    adele train --data colin27-structures --method adele --set data.noise=final:target_area=1000

(Under ``data.noise`` the validation masks get the noise too, ``data.val_labels`` null: model.pt, the best validation
epoch, is chosen on noisy masks as a user's would be; the training is the benchmark's seed 0, which reads both
selections.)
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import numpy as np
from scipy.stats import spearmanr

from .plan import planned_config
from .run.data import load_run_data
from .engine.trainer import Trainer
from .noise import format_table, noise_stats
from .labels.ranking import score_given_labels, true_error_frac
from .reporting.html import build_report
from .reporting.memorization import analyze_memorization
from .reporting.tables import format_metrics_table
from .safety import check_output, prepare_output_folder

#: the demo's data and noise: those of benchmarks/bench_adele.py by default, whose seed-0 runs the demo repeats
DEMO_DATA = "colin27-structures"
DEMO_NOISE = "final:target_area=1000"


#: the benchmark's result file for the demo's setting (benchmarks/bench_adele.py writes it; docs/benchmarks.md)
BENCHMARK_SUMMARY = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "adele_colin27-structures_final-target-area-1000.json"


def benchmark_line(recipe: str, path: Path = BENCHMARK_SUMMARY, dataset: str = DEMO_DATA) -> Optional[str]:
    """The benchmark's paired result for ``recipe`` on ``dataset`` with the planned recipe as one line, or None when not
    recorded. ``path``: a result file of bench_adele (``{"results": {"summary": [row, ...]}}``) or a bare list of rows."""
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    summary = doc["results"]["summary"] if isinstance(doc, dict) else doc
    rows = [r for r in summary if r.get("dataset", "colin27") == dataset and r.get("recipe") == recipe
            and r.get("config", "colin27.yaml") == "plan"]
    if not rows or "adele_diff" not in rows[0]:
        return None
    row = rows[0]
    n = len(row["seeds"])
    head = f"benchmark, same recipe over {n} seeds (benchmarks/bench_adele.py, docs/benchmarks.md): "
    es = row.get("adele_bestval_noisy_vs_baseline_bestval_noisy")
    if es and "adele_bestval_noisy_diff" in row:  # what model.pt holds: the best epochs on the noisy val labels
        d = row["adele_bestval_noisy_diff"]
        line = head + (f"ADELE (model.pt) - early stopping on noisy val labels {_ci(es)}, ahead on {es['ahead']} of {n} seeds; "
                       f"ADELE (model.pt) - the baseline's last epoch {_ci(d)}")
    else:  # an older result file: the last epochs
        d = row["adele_diff"]
        line = head + (f"ADELE - baseline {d['mean']:+.1f} points, 95% CI [{d['low']:+.1f}, {d['high']:+.1f}], "
                       f"ahead on {d['ahead']} of {n} seeds")
        es = row.get("adele_vs_baseline_bestval_noisy")
        if es:
            line += f"; ADELE - the baseline's best checkpoint on noisy val labels {_ci(es)}"
    return line + "; one seed moves by several points, the interval is the answer"


def _ci(d: dict) -> str:
    return f"{d['mean']:+.1f} points [{d['low']:+.1f}, {d['high']:+.1f}]"


def run_demo(out: str | Path = "runs/demo", epochs: Optional[int] = None, seed: int = 0, recipe: Optional[str] = None,
             device: str = "auto", overwrite: bool = False, log=print) -> dict:
    out = Path(out)
    check_output(out, "demo", (), overwrite)
    # data.val_labels null (the default): under data.noise the validation masks are as noisy as the training ones, as a
    # user's are, so model.pt (the best validation epoch) is chosen as a user would choose it: for the baseline, that is
    # early stopping
    settings = {"data.path": DEMO_DATA, "data.noise": recipe or DEMO_NOISE, "train.seed": seed, "data.noise_seed": seed,
                "train.device": device}
    if epochs is not None:
        settings["train.epochs"] = epochs
    t0 = time.perf_counter()
    base_cfg = planned_config(None, dict(settings, method="baseline"), device="cpu")[0]  # the CPU plan: the benchmark's recipe
    recipe = base_cfg.data.noise
    data = load_run_data(base_cfg)
    prepare_output_folder(out, "demo", (), overwrite)
    tr = data.train
    stats = noise_stats(tr.clean, tr.original, data.source.num_classes, data.source.ignore_index)
    log(f"== 1/3 noise: recipe '{recipe}' on the {len(tr)} training slices of {DEMO_DATA} (separate structures on background; "
        f"{tr.labels[0].shape[0]}x{tr.labels[0].shape[1]})")
    log(format_table(stats, list(data.source.classes)))
    results = {}
    for step, method in ((2, "baseline"), (3, "adele")):
        cfg = planned_config(None, dict(settings, method=method), device="cpu")[0]
        log(f"\n== {step}/3 train {method} on the noisy labels ({cfg.train.epochs} epochs)")
        run_data = load_run_data(cfg, data.source) if method != "baseline" else data
        trainer = Trainer(cfg, out / method, data=run_data, log=log)
        trainer.prepare_run_dir(resume=False, overwrite=True)
        t = time.perf_counter()
        results[method] = trainer.fit()
        r = results[method]
        log(f"{method}: {time.perf_counter() - t:.0f} s, test mean Dice {r['test']['mean_dice']:.3f} (model.pt: "
            + (f"epoch {r['model']['epoch']}, the best on the noisy validation labels" if r["model"]["weights"] == "best_val"
               else "the last epoch") + f"; the last epoch: {r['last_epoch']['test']['mean_dice']:.3f})")
    log("\n== results (test split, per-class Dice of model.pt, the best epoch on the noisy validation labels; runs in " + str(out) + ")")
    log(format_metrics_table({"baseline (noisy)": results["baseline"], "ADELE (noisy)": results["adele"]}, split="test"))
    ad = results["adele"].get("adele", {})
    if ad.get("rounds"):
        last = ad["rounds"][-1]
        log(f"ADELE flagged {len(ad['onsets'])} classes; {len(ad['rounds'])} correction rounds; "
            f"training-label Dice vs clean {ad['rounds'][0].get('agreement_before', float('nan')):.3f} -> {last.get('agreement_after', float('nan')):.3f}")
    # model.pt of the baseline is early stopping as a user with noisy validation masks does it (from the same run)
    ours, early = results["adele"]["test"]["mean_dice"], results["baseline"]["test"]["mean_dice"]
    log(f"ADELE (model.pt) - early stopping (the baseline's model.pt) on this seed: {100 * (ours - early):+.1f} Dice points; "
        f"ADELE - the baseline's last epoch: {100 * (ours - results['baseline']['last_epoch']['test']['mean_dice']):+.1f}")
    bench = benchmark_line(recipe)
    if bench:
        log(bench)
    log("\n== report")
    _, _, table = analyze_memorization(out / "baseline")
    log("baseline, wrongly labelled training pixels (early learning vs memorization):")
    log(table)
    got = score_given_labels(out / "baseline", tr.original, data.source.ignore_index, base_cfg.quality.tau)
    if got is not None:  # which masks to re-annotate, from the baseline's own early-learning probabilities
        scores = got[0]
        wrong = np.array([true_error_frac(a, b, data.source.ignore_index) for a, b in zip(tr.original, tr.clean)])
        worst = np.argsort(scores, kind="stable")[:5]
        log("masks to re-annotate first (baseline run; true fraction of wrong pixels in brackets): "
            + ", ".join(f"{tr.ids[i]} ({wrong[i]:.2f})" for i in worst)
            + f"; median over all {len(tr)}: {np.median(wrong):.2f}; Spearman of the ranking with it: {spearmanr(-scores, wrong)[0]:.2f}")
    page = build_report([out / "baseline", out / "adele"], out / "report", device=device, log=lambda m: None)
    log(f"report: {page}")
    summary = {"noise": {"recipe": recipe, "fg_dice": float(stats["fg_dice"])},
               "test_mean_dice": {m: r["test"]["mean_dice"] for m, r in results.items()},
               "model_epoch": {m: r["model"]["epoch"] for m, r in results.items()},
               "test_mean_dice_last_epoch": {m: r["last_epoch"]["test"]["mean_dice"] for m, r in results.items()},
               "seconds": round(time.perf_counter() - t0, 1)}
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    log(f"total {summary['seconds']:.0f} s")
    return results
