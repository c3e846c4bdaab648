"""Proof on real data: does ADELE help on noisy labels, and at which noise level?

For each noise recipe (the sweep), on an embedded Colin27 label set (default
``colin27-structures``: five separate structures on background, the paper's
regime; ``colin27`` and ``colin27-brodmann`` tile the brain) with the recipe
``adele train`` plans from the data (``--config FILE`` for another), for several
seeds (each seed draws its own noise realization: ``data.noise_seed = seed``),
this trains

* ``baseline_noisy``: the baseline on the noisy labels; from the same run, its
  best-validation epoch selected on noisy validation labels (the noise drawn on
  them too: what a user has; ``baseline_bestval_noisy``) and on clean ones (an
  upper bound; ``baseline_bestval_clean``), and the same two for ``adele``,
* ``adele``: ADELE on the same noisy labels, the default (per-class bars and the
  area guard; ``adele_noguard`` without the guard, ``adele_official`` one tau),
* ``baseline_gce``: generalized cross-entropy, a noise-robust loss,
* ``baseline_clean``: the baseline on the clean labels (once, recipe-free),
* with ``--ceiling``: the baseline on the smoothed consensus of 21 noise
  realizations (a perfect label corrector; see bench_noise_ceiling.py),

and prints per recipe a per-class table (mean ± std over seeds), the paired
per-seed differences ADELE - baseline with their mean and 95% t-interval,
the share of the gap to the consensus ceiling and to clean training that
ADELE closes; then one summary table over the recipes, written also as
``OUT/summary.json`` and, with ``--figure``, as a plot "ADELE gain vs noise
level" with the confidence intervals, and as the result file
``docs/benchmarks/NAME.json`` (``--result NAME``; default ``adele_DATASET_RECIPES``),
which benchmarks/render_docs.py renders into the docs. Every run goes through
the public CLI (``adele train``); a finished run (metrics.json present) is
reused only when its config.yaml holds the settings asked for (else refused,
or trained again with ``--retrain-mismatched``).

    python benchmarks/bench_adele.py --out runs/bench --seeds 0 1 2 3 4 --jobs 2 \\
        --variants adele baseline_noisy adele_guard baseline_gce baseline_clean
    python benchmarks/bench_adele.py --dataset colin27 --config configs/colin27.yaml --out runs/sweep --seeds 0 1 2 3 4 \\
        --recipes final:target_area=1000 final markov 'final+missing:p=0.2+extra:p=0.2' \\
        --ceiling final:target_area=1000 --jobs 2 --figure docs/figures/adele_gain_vs_noise.png
    python benchmarks/bench_adele.py --variants baseline_noisy adele adele_cons --seeds 0 1 2   # ablations
    python benchmarks/bench_adele.py --smoke --out /tmp/smoke --variants adele baseline_noisy   # seconds
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import add_result_options, consensus, fmt_ci, paired_ci, result_target, write_result  # noqa: E402
VARIANTS = {
    "baseline_noisy": ["method=baseline"],
    # the same training as baseline_noisy (same seeds and draw): only best.pt is chosen on noisy val labels
    "baseline_noisyval": ["method=baseline", "data.val_labels=noisy"],
    "adele_guard": ["method=adele", "adele.correction.class_share=null", "adele.correction.guard_area=0.25"],
    "adele_learned": ["method=adele", "adele.correction.class_share=null", "adele.correction.guard_area=null", "adele.correction.min_learned=0.5"],
    # the default (issue 25: per-class thresholds, class_share 0.5, with the area guard 0.25); the per-class bars
    # without the guard (the default of the tenth and eleventh sessions); the official single tau, no guard
    "adele": ["method=adele"],
    "adele_noguard": ["method=adele", "adele.correction.guard_area=null"],
    "adele_official": ["method=adele", "adele.correction.class_share=null", "adele.correction.guard_area=null"],
    # issue 25's candidates: both guards; restart every round from the given labels (official VOC --Reinit_dict);
    # the official VOC pixel rule with its per-image shrink guard
    "adele_learned_guard": ["method=adele", "adele.correction.class_share=null", "adele.correction.min_learned=0.5", "adele.correction.guard_area=0.25"],
    "adele_restart": ["method=adele", "adele.correction.class_share=null", "adele.correction.guard_area=null", "adele.correction.classes=flagged",
                      "adele.correction.restart_from_original=true"],
    "adele_voc": ["method=adele", "adele.correction.class_share=null", "adele.correction.guard_area=null", "adele.correction.rule=voc",
                  "adele.correction.classes=flagged"],
    # per-class thresholds: each class's own top half (CBST's final portion), no guard (= adele_noguard)
    "adele_classbal": ["method=adele", "adele.correction.class_share=0.5", "adele.correction.guard_area=null"],
    # ablation of the per-class bars: one tau, with background's at the bar the per-class rule gives it (q = 255)
    "adele_bgbar": ["method=adele", "adele.correction.class_share=null", "adele.correction.guard_area=null", "adele.correction.tau_bg=0.998"],
    # candidates against early stopping: each class corrected once, at its first flag; the rounds read the weights
    # early stopping on noisy val labels would keep; both
    "adele_once": ["method=adele", "adele.correction.classes=once"],
    "adele_bestw": ["method=adele", "adele.correction.weights=best_val"],
    "adele_once_bestw": ["method=adele", "adele.correction.classes=once", "adele.correction.weights=best_val"],
    "adele_changebars": ["method=adele", "adele.correction.bars_over=changes"],
    # the default until adele_changebars met the rule: the bars rank every pixel predicted k
    "adele_predbars": ["method=adele", "adele.correction.bars_over=predicted"],
    "adele_nocons": ["method=adele", "adele.consistency.enabled=false"],
    # item 5's candidates (the wall time): the consistency term at a lower cost, its gain kept or not
    "adele_cons10": ["method=adele", "adele.consistency.every_steps=10"],
    "adele_s07": ["method=adele", "adele.consistency.scales=[1.0,0.7]"],
    # item 1's candidate after them: the term carries the gain, and every 10th step scored below every 5th; more often
    "adele_cons2": ["method=adele", "adele.consistency.every_steps=2"],
    # item 8 (item 5 again): the term's extra cost about halved, keeping an upsampled view
    "adele_s15e7": ["method=adele", "adele.consistency.scales=[1.0,1.5]", "adele.consistency.every_steps=7"],
    "adele_s125": ["method=adele", "adele.consistency.scales=[1.0,1.25]"],
    "adele_s0705": ["method=adele", "adele.consistency.scales=[1.0,0.7,0.5]"],
    "baseline_clean": ["method=baseline", "data.train_labels=clean"],
    "adele_cons": ["method=adele", "adele.consistency.enabled=true"],
    "adele_cons1": ["method=adele", "adele.consistency.enabled=true", "adele.consistency.every_steps=1"],
    "adele_paper": ["method=adele", "adele.correction.restart_from_original=false", "adele.correction.classes=new",
                    "adele.correction.class_share=null", "adele.correction.guard_area=null",
                    "adele.consistency.enabled=true", "adele.consistency.every_steps=1"],
    "adele_nocorr": ["method=adele", "adele.correction.enabled=false", "adele.consistency.enabled=true"],
    "adele_late": ["method=adele", "adele.detection.min_points=10"],
    "baseline_noema": ["method=baseline", "train.ema=0"],
    "baseline_gce": ["method=baseline", "train.loss=gce"],
    "adele_noema": ["method=adele", "train.ema=0"],
}
LABELS = {"baseline_noisy": "baseline, noisy", "baseline_noisyval": "baseline, noisy val labels",
          "adele_guard": "ADELE + area guard 0.25", "adele_learned": "ADELE, learned classes only (0.5)",
          "adele_learned_guard": "ADELE, learned only (0.5) + area guard 0.25", "adele_restart": "ADELE, each round from the given labels",
          "adele_voc": "ADELE, official VOC rule (shrink guard)",
          "adele_classbal": "ADELE, per-class thresholds (top half)",
          "adele_bgbar": "ADELE, one tau, background's 0.998", "adele_noguard": "ADELE, per-class bars without the guard",
          "adele_official": "ADELE, one tau (official; the default before issue 25)", "adele": "ADELE, noisy", "baseline_clean": "baseline, clean",
          "consensus": "baseline, consensus (ceiling)", "adele_cons": "ADELE + consistency (every 5th step)",
          "adele_cons1": "ADELE + consistency (every step)", "adele_paper": "ADELE, paper's rules unchanged",
          "adele_nocorr": "ADELE without correction", "adele_late": "ADELE, fit needs 10 points",
          "adele_once": "ADELE, each class corrected once", "adele_bestw": "ADELE, rounds read the best-noisy-val weights",
          "adele_once_bestw": "ADELE, once + best-noisy-val weights", "adele_changebars": "ADELE, bars over the candidate changes",
          "adele_predbars": "ADELE, bars over every predicted pixel (the earlier default)",
          "adele_nocons": "ADELE without the consistency term",
          "adele_cons10": "ADELE, consistency every 10th step", "adele_s07": "ADELE, consistency at scales 1 and 0.7",
          "adele_cons2": "ADELE, consistency every 2nd step",
          "adele_s15e7": "ADELE, consistency at scales 1 and 1.5 every 7th step",
          "adele_s125": "ADELE, consistency at scales 1 and 1.25",
          "adele_s0705": "ADELE, consistency at scales 1, 0.7 and 0.5",
          "baseline_noema": "baseline, no weight average", "baseline_gce": "baseline, generalized CE (q 0.7)", "adele_noema": "ADELE, no weight average"}
RECIPE_FREE = {"baseline_clean"}


def slug(recipe: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", recipe).strip("-")


def train_argv(run_dir: Path, sets: list[str], data: str, config: str) -> list[str]:
    """``adele train`` arguments of one run: with ``config`` = ``plan`` the recipe planned from the data (no --config), else that file."""
    return ["train", *([] if config == "plan" else ["--config", config]), "--data", data, "--out", str(run_dir), "--overwrite", "--set", *sets]


def asked_config(run_dir: Path, sets: list[str], data: str = "colin27", config: str = "plan") -> dict:
    """The resolved config ``adele train`` would give this run (defaults <- plan <- --config <- --set), without training."""
    from adele.cli import build_parser
    from adele.cli.train import train_config_from_args

    return train_config_from_args(build_parser().parse_args(train_argv(run_dir, sets, data, config)))[0].to_dict()


#: settings added after runs were recorded, with the value that gives the code's behaviour before them: a finished run
#: whose config.yaml lacks one counts as having that value (a run without ``bars_over`` ranked every predicted pixel)
ADDED_SETTINGS = {"adele.correction.bars_over": "predicted"}


#: settings that choose what a run writes, not how it trains: the benchmark reads every selection from metrics.json
OUTPUT_ONLY = ("train.model_weights",)


def config_mismatch(recorded: dict, asked: dict) -> list[tuple[str, object, object]]:
    """``(key, recorded, asked)`` for each setting of a finished run's config.yaml (``recorded``, as saved) that differs from
    the config asked for (:func:`asked_config`); a key only one of them has counts (None on the other side), how the run
    executes (``EXECUTION_KEYS``: device, threads, ...) does not, nor, between two baseline runs, the ``adele.*`` settings
    a baseline never reads (a setting added for ADELE leaves the baselines reusable). The code's commit is not compared."""
    from adele.config import EXECUTION_KEYS
    from adele.engine.rundir import config_changes

    import copy

    recorded = copy.deepcopy(recorded)
    for key, value in ADDED_SETTINGS.items():
        *parents, leaf = key.split(".")
        node = recorded
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.setdefault(leaf, value)
    baseline = recorded.get("method") == asked.get("method") == "baseline"
    return [c for c in config_changes(recorded, asked) if c[0] not in EXECUTION_KEYS + OUTPUT_ONLY
            and not (baseline and c[0].startswith("adele."))]


def check_reuse(runs: dict, config: str, retrain: bool) -> None:
    """Before anything trains: each finished run of ``runs`` ({run_dir: (sets, data)}) whose config.yaml differs from the
    settings asked for is refused in one line naming the differing keys, or with ``retrain`` its metrics.json is removed."""
    import yaml

    bad = []
    for run_dir, (sets, data) in runs.items():
        if not (run_dir / "metrics.json").exists():
            continue
        saved = run_dir / "config.yaml"
        recorded = yaml.safe_load(saved.read_text()) if saved.is_file() else {}
        diff = config_mismatch(recorded or {}, asked_config(run_dir, sets, data, config))
        if diff:
            bad.append((run_dir, diff))
    if bad and not retrain:
        listed = "; ".join(f"{d}: " + ", ".join(f"{k} {a!r} (asked {b!r})" for k, a, b in diff[:4]) + (f" and {len(diff) - 4} more" if len(diff) > 4 else "")
                           for d, diff in bad[:3])
        raise SystemExit(f"error: {len(bad)} finished run(s) were made with other settings than asked for ({listed}"
                         f"{f'; and {len(bad) - 3} more runs' if len(bad) > 3 else ''}); pass --retrain-mismatched to train them "
                         "again, or choose another --out")
    for run_dir, diff in bad:
        print(f"  {run_dir}: settings differ ({', '.join(k for k, _, _ in diff)}): trained again", file=sys.stderr)
        (run_dir / "metrics.json").unlink()


def train(run_dir: Path, sets: list[str], data: str = "colin27", config: str = "plan") -> dict:
    """One run through the CLI (:func:`train_argv`); a finished one (metrics.json, checked by :func:`check_reuse`) is reused."""
    if (run_dir / "metrics.json").exists():
        return json.loads((run_dir / "metrics.json").read_text())
    cmd = [sys.executable, "-m", "adele", *train_argv(run_dir, sets, data, config)]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    print(f"  {run_dir.parent.name}/{run_dir.name}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    return json.loads((run_dir / "metrics.json").read_text())


def trained_values(run: dict) -> dict:
    """What a run's training decided, in the form every version of metrics.json holds: the last epoch's test and
    validation scores, each best-validation selection (epoch and scores) and each correction round's epoch and changed
    pixel count; not which checkpoint model.pt holds (``train.model_weights``) nor any time."""
    last = run.get("last_epoch") or run  # runs recorded before model.pt could hold another epoch: "test" is the last
    rounds = run.get("adele", {}).get("rounds", [])
    return {"last_epoch": {k: last.get(k) for k in ("test", "val")},
            **{k: run.get(k) for k in ("best_checkpoint_noisy_val", "best_checkpoint_clean_val")},
            "rounds": [[x.get("epoch"), x.get("pixels_changed")] for x in rounds]}


def _differing(a, b, at: str = "") -> list[str]:
    """The paths (``a.b.0``) where two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [p for k in sorted(set(a) | set(b)) for p in _differing(a.get(k), b.get(k), f"{at}.{k}" if at else str(k))]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [p for i, (x, y) in enumerate(zip(a, b)) for p in _differing(x, y, f"{at}.{i}")]
    return [] if a == b else [at or "."]


def verify(run_dir: Path, sets: list[str], data: str, config: str, work: Path) -> dict:
    """Train a reused run again with this code, in ``work``, and compare what the training decided
    (:func:`trained_values`) with the stored run: a reused run stands for this code only if it is the same. A run
    already in ``work`` is trained again (`adele train --overwrite`, which replaces only a run folder of its own)."""
    (work / "metrics.json").unlink(missing_ok=True)  # so that train() does not reuse it
    again = train(work, sets, data, config)
    stored = json.loads((run_dir / "metrics.json").read_text())
    diff = _differing(trained_values(stored), trained_values(again))
    return {"run": f"{run_dir.parent.name}/{run_dir.name}", "same": not diff, "differences": diff[:20],
            "verdict": "the same" if not diff else f"different ({len(diff)} values)"}


def consensus_data(out: Path, recipe: str, dataset: str = "colin27", k: int = 21, sigma: float = 2.0) -> tuple[Path, float]:
    """The smoothed consensus of ``k`` realizations as training labels of a dataset folder; (folder, Dice with clean)."""
    from adele.data import open_source
    from adele.data.io import write_array
    from adele.noise import noise_dataset, noise_stats

    data = out / "data"
    done = data / "consensus.json"
    if done.is_file():
        return data, json.loads(done.read_text())["dice_with_clean"]
    src = open_source(dataset)
    tr, C = src.splits["train"], src.num_classes
    votes = np.zeros((C,) + tr.labels.shape, np.int32)
    for j in range(k):
        noisy = np.stack(noise_dataset(tr.labels, recipe, seed=1000 + j, num_classes=C)[0])
        for c in range(C):
            votes[c] += noisy == c
    cons = consensus(votes, sigma)
    from adele.data.folder import write_dataset_json

    for name, split in src.splits.items():
        for i, sid in enumerate(split.ids):
            write_array(data / name / "images" / f"{sid}.png", split.images[i])
            write_array(data / name / "labels" / f"{sid}.png", split.labels[i])
    write_dataset_json(data, f"{src.name}-consensus", src.classes, src.ignore_index)
    for i, sid in enumerate(tr.ids):
        write_array(data / "train" / "labels_clean" / f"{sid}.png", tr.labels[i])
        write_array(data / "train" / "labels" / f"{sid}.png", cons[i])
    dice = float(noise_stats(tr.labels, cons, C, src.ignore_index)["fg_dice"])
    done.write_text(json.dumps({"recipe": recipe, "k": k, "sigma": sigma, "dice_with_clean": dice}))
    return data, dice


def noisy_vs_clean(recipe: str, seeds, dataset: str = "colin27") -> float:
    from adele.data import open_source
    from adele.noise import noise_dataset, noise_stats

    src = open_source(dataset)
    tr, C = src.splits["train"], src.num_classes
    vals = [noise_stats(tr.labels, np.stack(noise_dataset(tr.labels, recipe, seed=s, num_classes=C)[0]), C, src.ignore_index)["fg_dice"]
            for s in seeds]
    return float(np.mean(vals))


# the "keep the best checkpoint" competitors, read from the same training (metrics.json, key, column label): validation
# is scored every epoch against the noisy val labels (what a user has) and the clean ones (an upper bound)
BEST = {"baseline_bestval_noisy": ("baseline_noisy", "best_checkpoint_noisy_val", "baseline, best val epoch (noisy val labels)"),
        "baseline_bestval_clean": ("baseline_noisy", "best_checkpoint_clean_val", "baseline, best val epoch (clean val labels)"),
        "adele_bestval_noisy": ("adele", "best_checkpoint_noisy_val", "ADELE, best val epoch (noisy val labels)"),
        "adele_bestval_clean": ("adele", "best_checkpoint_clean_val", "ADELE, best val epoch (clean val labels)")}


def best_column(name: str) -> Optional[tuple[str, str, str]]:
    """(trained variant, metrics.json key, label) of a best-val column: those of :data:`BEST`, and for every other ADELE
    variant V, ``V_bestval_noisy`` (its best epoch on the noisy val labels: the checkpoint a candidate ships); else None."""
    if name in BEST:
        return BEST[name]
    suffix = "_bestval_noisy"
    if name.startswith("adele_") and name.endswith(suffix) and name[: -len(suffix)] in VARIANTS:
        v = name[: -len(suffix)]
        return v, "best_checkpoint_noisy_val", f"{LABELS.get(v, v)}, best val epoch (noisy val labels)"
    return None


def best_columns(variants) -> dict[str, tuple[str, str, str]]:
    """The best-val columns the trained ``variants`` give (:func:`best_column`)."""
    cols = {k: c for k, c in BEST.items() if c[0] in variants}
    cols.update({f"{v}_bestval_noisy": best_column(f"{v}_bestval_noisy") for v in variants
                 if v.startswith("adele_") and best_column(f"{v}_bestval_noisy")})
    return cols


def scores(run: dict, variant: str) -> dict:
    """The test scores a column shows: the last epoch's, or for a best-val column those of that selection's epoch."""
    col = best_column(variant)
    if col is not None:
        best = run.get(col[1]) or {}
        if "test" not in best:
            raise SystemExit(f"{variant}: the run has no {col[1]} test scores (validation every epoch is needed)")
        return best["test"]
    return (run.get("last_epoch") or run)["test"]  # the last epoch's (metrics.json's "test" scores model.pt)


def _first_last(rounds: list[list[dict]], key: str, c: str) -> str:
    """'first -> last' of a per-class round field over the rounds that corrected class ``c``, averaged over the runs
    that corrected it (what the network predicted when the class's correction began and when it ended)."""
    mine = [[x for x in rr if c in x["corrected"]] for rr in rounds]
    first = [rr[0].get(key, {}).get(c) for rr in mine if rr]
    last = [rr[-1].get(key, {}).get(c) for rr in mine if rr]
    first, last = [v for v in first if v is not None], [v for v in last if v is not None]
    return f"{np.mean(first):.2f} -> {np.mean(last):.2f}" if first and last else "-"


def round_report(name: str, runs: list[dict], classes: list[str]) -> None:
    """Per class over the runs' correction rounds: how many rounds corrected it, the share of its changes that went to
    background, its area after the last round vs the noisy labels, the changes' precision, guard firings, and what the
    network predicted before the first and the last round (its area vs the labels it trained on and vs the truth, the
    share of the class's labelled pixels it called background with confidence)."""
    rounds = [r.get("adele", {}).get("rounds", []) for r in runs]
    print(f"\n{name}: correction rounds per class (over {len(runs)} runs; 'a -> b': before the first round that corrected "
          "the class -> before the last)\n")
    print("| class | rounds correcting it | changed pixels that became background (all rounds) | area after the last round / noisy "
          "| precision of changes to it | guard fired | network's area / its labels | network's area / truth "
          "| labelled pixels it calls background |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    to_bg = sum(x["changed_per_class"].get(classes[0], 0) for rr in rounds for x in rr)
    for c in classes[1:]:
        n = sum(c in x["corrected"] for rr in rounds for x in rr)
        area = [rr[-1].get("area_vs_noisy", {}).get(c) for rr in rounds if rr]
        area = [a for a in area if a is not None]
        prec = [x.get("precision_per_class", {}).get(c) for rr in rounds for x in rr]
        prec = [p for p in prec if p is not None]
        fired = sum(c in (r.get("adele", {}).get("guard_stopped") or {}) for r in runs)
        view = " | ".join(_first_last(rounds, k, c) for k in ("predicted_area_vs_labels", "predicted_area_vs_clean",
                                                              "confident_background_share"))
        print(f"| {c} | {n} | - | {np.mean(area) if area else float('nan'):.2f} (min {min(area) if area else float('nan'):.2f}) | "
              f"{np.mean(prec) if prec else float('nan'):.2f} | {fired}/{len(runs)} | {view} |")
    total = sum(x["pixels_changed"] for rr in rounds for x in rr)
    bgp = [x.get("precision_per_class", {}).get(classes[0]) for rr in rounds for x in rr]
    bgp = [p for p in bgp if p is not None]
    print(f"| {classes[0]} | - | {to_bg} of {total} ({100 * to_bg / max(total, 1):.0f}%) | - | "
          f"{np.mean(bgp) if bgp else float('nan'):.2f} | - | - | - | - |")
    # per run (in seed order): the class a round left smallest against its given area, with the share of its labelled
    # pixels the network called background before that round; and each firing of the area guard
    shrunk = []
    for rr in rounds:
        low = min(((a, c, x) for x in rr for c, a in (x.get("area_vs_noisy") or {}).items()), default=None, key=lambda t: t[0])
        shrunk.append("-" if low is None else f"{low[1]} {low[0]:.2f}x at epoch {low[2]['epoch']} (called background: "
                      f"{(low[2].get('confident_background_share') or {}).get(low[1], float('nan')):.2f})")
    print("\nsmallest area after a round / given, per run: " + "; ".join(shrunk))
    fired = ["; ".join(f"{c} {v:.2f}x at epoch {x['epoch']}" for x in rr for c, v in (x.get("guard") or {}).items()) or "-"
             for rr in rounds]
    if any("guard" in x for rr in rounds for x in rr):  # the guard was on (adele.correction.guard_area)
        print("area guard fired, per run: " + " | ".join(fired))
    bars = [x["thresholds"] for rr in rounds for x in rr if "thresholds" in x]
    if bars:  # per-class thresholds (correction.class_share): each class's bar, mean over the rounds (min - max)
        print("\nper-class thresholds, mean over rounds (min - max): " + "; ".join(
            f"{c} {np.mean([b[c] for b in bars]):.3f} ({min(b[c] for b in bars):.3f} - {max(b[c] for b in bars):.3f})"
            for c in classes if all(c in b for b in bars)))


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_adele"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--clean-seeds", type=int, nargs="+", default=None,
                    help="seeds of baseline_clean, the reference trained on the clean labels (default: --seeds); not paired "
                         "with the others, so fewer seeds give its mean")
    ap.add_argument("--epochs", type=int, default=None, help="override train.epochs of the recipe")
    ap.add_argument("--recipes", nargs="+", default=["final:target_area=1000"])
    ap.add_argument("--dataset", default="colin27-structures",
                    help="embedded dataset: colin27-structures (separate structures on background, the paper's regime), "
                         "colin27 (AAL lobes, tiled) or colin27-brodmann (tiled)")
    ap.add_argument("--config", default="plan",
                    help="'plan' (default): the recipe planned from the data, as `adele train` without --config; or a config file")
    ap.add_argument("--variants", nargs="+", default=["baseline_noisy", "adele", "baseline_clean"], choices=list(VARIANTS))
    ap.add_argument("--ceiling", nargs="*", default=None, metavar="RECIPE",
                    help="also train the baseline on the consensus labels of these recipes (no name: every recipe)")
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel (each with train.threads=1 when > 1)")
    ap.add_argument("--figure", type=Path, help="write the 'ADELE gain vs noise level' plot here")
    ap.add_argument("--set", nargs="*", default=[], help="extra overrides for every run")
    ap.add_argument("--smoke", action="store_true", help="seconds: seeds 0 1, 2 epochs of 5 steps at 28x24, width 4 (the same code path)")
    ap.add_argument("--verify", nargs="*", default=[], metavar="VARIANT:SEED",
                    help="after reading the runs, train these again with this code (in OUT/verify/) and record whether each "
                         "gives what its stored run holds (every score, best epoch and correction round)")
    ap.add_argument("--retrain-mismatched", action="store_true",
                    help="train again a finished run whose config.yaml differs from the settings asked for (default: refused)")
    add_result_options(ap, "adele_DATASET_RECIPES; with --smoke the result goes to OUT/")
    return ap


def main() -> None:
    args = parser().parse_args()
    if args.smoke:
        args.seeds = args.seeds[:2]
        args.set = list(args.set) + ["train.epochs=2", "train.steps_per_epoch=5", "data.size=[28,24]", "model.width=4", "model.depth=2"]
    config = args.config if args.config == "plan" else str(Path(args.config).resolve())
    extra = list(args.set) + ([f"train.epochs={args.epochs}"] if args.epochs else []) + (["train.threads=1"] if args.jobs > 1 else [])

    clean_seeds = args.clean_seeds or args.seeds
    apart = "baseline_clean" in args.variants and clean_seeds != args.seeds  # its own seeds: a mean, not paired
    # every run validates on the val labels as given and scores the noise drawn on them beside (metrics.json holds both
    # selections, which is what this benchmark reads): data.val_labels pinned to clean, so that the runs recorded before
    # its default became noisy under data.noise stay reusable (a variant's own val_labels, later in the list, wins)
    pinned = ["data.val_labels=clean"]
    jobs = {}  # (recipe, variant, seed) -> (run_dir, sets, data)
    cons_dice = {}
    for recipe in args.recipes:
        for v in args.variants:
            for s in (clean_seeds if v == "baseline_clean" else args.seeds):
                where = args.out / ("clean" if v in RECIPE_FREE else slug(recipe))
                sets = pinned + VARIANTS[v] + [f"train.seed={s}", f"data.noise={recipe}", f"data.noise_seed={s}"] + extra
                jobs[(recipe, v, s)] = (where / f"{v}_s{s}", sets, args.dataset)
        if args.ceiling is not None and (not args.ceiling or recipe in args.ceiling):
            data, cons_dice[recipe] = consensus_data(args.out / slug(recipe) / "consensus", recipe, args.dataset)
            for s in args.seeds:
                sets = pinned + VARIANTS["baseline_noisy"] + [f"train.seed={s}", "data.noise=null"] + extra
                jobs[(recipe, "consensus", s)] = (args.out / slug(recipe) / "consensus" / f"baseline_s{s}", sets, str(data))
    unique = {}  # seed by seed, so that a run cut short leaves whole seeds
    order = list(dict.fromkeys(args.seeds + clean_seeds))
    for key, (run_dir, sets, data) in sorted(jobs.items(), key=lambda kv: order.index(kv[0][2])):
        unique.setdefault(run_dir, (sets, data))
    check_reuse(unique, config, args.retrain_mismatched)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        done = dict(zip(unique, pool.map(lambda item: train(item[0], *item[1], config), unique.items())))
    res = {key: done[run_dir] for key, (run_dir, _, _) in jobs.items()}
    for recipe in args.recipes:  # the best-val columns read best.pt's scores of runs already made
        for col, (v, key, _) in best_columns(args.variants).items():
            if all("test" in (res[(recipe, v, s)].get(key) or {}) for s in args.seeds):
                for s in args.seeds:
                    res[(recipe, col, s)] = res[(recipe, v, s)]
    best_cols = best_columns(args.variants)
    labels = {**LABELS, **{k: lab for k, (_, _, lab) in best_cols.items()}}

    summary = []
    with_ceiling = set(cons_dice)
    for recipe in args.recipes:
        level = noisy_vs_clean(recipe, args.seeds, args.dataset)
        variants = [v for v in args.variants if v != "baseline_noisyval" and not (apart and v == "baseline_clean")]
        variants += [k for k in best_cols if (recipe, k, args.seeds[0]) in res]
        variants += ["consensus"] if recipe in with_ceiling else []
        per = {v: [res[(recipe, v, s)] for s in args.seeds] for v in variants}
        classes = per[variants[0]][0]["classes"][1:]
        print(f"\n### {args.dataset}, `{recipe}` (training labels' Dice with clean {level:.3f}), seeds {args.seeds}, "
              f"recipe {'planned' if config == 'plan' else Path(config).name}: test Dice, mean ± std\n")
        print("| class | " + " | ".join(labels.get(v, v) for v in variants) + " |")
        print("|---|" + "---:|" * len(variants))

        def cell(vals):
            vals = np.array([np.nan if v is None else v for v in vals], dtype=float)
            return f"{np.nanmean(vals):.3f} ± {np.nanstd(vals, ddof=1) if np.isfinite(vals).sum() > 1 else 0:.3f}"

        for c in classes:
            print(f"| {c} | " + " | ".join(cell([scores(r, v)["dice"].get(c) for r in per[v]]) for v in variants) + " |")
        means = {v: np.array([scores(r, v)["mean_dice"] for r in per[v]], dtype=float) for v in variants}
        print("| **mean** | " + " | ".join(f"**{cell(means[v])}**" for v in variants) + " |")
        print("\nPer seed: " + "; ".join(f"{v} " + ", ".join(f"{x:.3f}" for x in means[v]) for v in variants))
        for v in best_cols:
            if v in per:
                print(f"{v}: best epochs " + ", ".join(str(r[best_cols[v][1]]["epoch"]) for r in per[v]))
        row = {"dataset": args.dataset, "recipe": recipe, "config": "plan" if config == "plan" else Path(config).name,
               "labels_dice_with_clean": level, "seeds": args.seeds, **{v: [float(x) for x in means[v]] for v in variants}}
        if apart:
            row["baseline_clean"] = [float(scores(res[(recipe, "baseline_clean", s)], "baseline_clean")["mean_dice"]) for s in clean_seeds]
            row["baseline_clean_seeds"] = clean_seeds
            print(f"baseline_clean (seeds {clean_seeds}): " + ", ".join(f"{x:.3f}" for x in row["baseline_clean"])
                  + f"; mean {np.mean(row['baseline_clean']):.3f}")
        if "baseline_noisy" in means:
            base = means["baseline_noisy"]
            others = [v for v in variants if v.startswith(("adele", "baseline_gce", "baseline_best"))]
            for ref in ("baseline_bestval_noisy", "baseline_bestval_clean"):  # the competitor a user has, and its bound
                if ref not in means:
                    continue
                for v in [v for v in variants if v.startswith("adele")]:
                    d = 100 * (means[v] - means[ref])
                    m, lo, hi = paired_ci(d)
                    print(f"{v} - {ref}, paired by seed: " + ", ".join(f"{x:+.1f}" for x in d)
                          + f" points; mean {fmt_ci(m, lo, hi)}; ahead on {int((d > 0).sum())} of {d.size}")
                    row[f"{v}_vs_{ref}"] = {"mean": m, "low": lo, "high": hi, "per_seed": [float(x) for x in d], "ahead": int((d > 0).sum())}
                    worst = min(((100 * (np.nanmean([scores(r, v)["dice"].get(c) or np.nan for r in per[v]])
                                         - np.nanmean([scores(r, ref)["dice"].get(c) or np.nan for r in per[ref]])), c) for c in classes))
                    print(f"  the class {v} loses most on against {ref}: {worst[1]} {worst[0]:+.1f} points (mean over seeds)")
                    row[f"{v}_vs_{ref}"]["worst_class"] = {"class": worst[1], "points": worst[0]}
            for v in others:
                d = 100 * (means[v] - base)
                m, lo, hi = paired_ci(d)
                ahead = int((d > 0).sum())
                print(f"{v} - baseline_noisy, paired by seed: " + ", ".join(f"{x:+.1f}" for x in d)
                      + f" points; mean {fmt_ci(m, lo, hi)} (95% t-interval, n={d.size}); ahead on {ahead} of {d.size}")
                for ref in ("consensus", "baseline_clean"):
                    if ref in means and v.startswith("adele"):
                        gap = 100 * (means[ref].mean() - base.mean())
                        print(f"  gap to {ref} ({means[ref].mean():.3f}): {gap:.1f} points, {v} closes {100 * m / gap:.0f}%")
                        row[f"{v}_closes_{ref}"] = float(m / gap) if gap else None
                row[f"{v}_diff"] = {"mean": m, "low": lo, "high": hi, "per_seed": [float(x) for x in d], "ahead": ahead}
            if "adele" in means:  # every other ADELE variant against the default, same seeds and draws (ablations)
                for v in (v for v in variants if v.startswith("adele_") and best_column(v) is None):
                    d = 100 * (means["adele"] - means[v])
                    m, lo, hi = paired_ci(d)
                    print(f"adele (the default) - {v}, paired by seed: " + ", ".join(f"{x:+.1f}" for x in d)
                          + f" points; mean {fmt_ci(m, lo, hi)}")
                    row[f"adele_vs_{v}"] = {"mean": m, "low": lo, "high": hi}
            if "adele_bestval_noisy" in means:  # the checkpoint the default ships against each candidate's, same seeds
                for v in (v for v in variants if v.startswith("adele_") and v.endswith("_bestval_noisy") and v not in BEST):
                    d = 100 * (means["adele_bestval_noisy"] - means[v])
                    m, lo, hi = paired_ci(d)
                    print(f"adele_bestval_noisy (the default's model.pt) - {v}, paired by seed: "
                          + ", ".join(f"{x:+.1f}" for x in d) + f" points; mean {fmt_ci(m, lo, hi)}")
                    row[f"adele_bestval_noisy_vs_{v}"] = {"mean": m, "low": lo, "high": hi, "per_seed": [float(x) for x in d]}
            for v in (v for v in variants if v.startswith("adele") and best_column(v) is None):
                for ref in (r for r in BEST if r in means and r.startswith("baseline") and f"{v}_vs_{r}" not in row):
                    m, lo, hi = paired_ci(100 * (means[v] - means[ref]))  # (the competitors' pairs above already hold it)
                    print(f"{v} - {ref}, paired by seed: mean {fmt_ci(m, lo, hi)}")
                    row[f"{v}_vs_{ref}"] = {"mean": m, "low": lo, "high": hi}
                rounds = [r.get("adele", {}).get("rounds", []) for r in per[v]]
                agree = [(rr[0]["agreement_before"], rr[-1]["agreement_after"]) for rr in rounds if rr and "agreement_after" in rr[-1]]
                prec = [np.nanmean([x["precision"] for x in rr if x.get("precision") is not None] or [np.nan]) for rr in rounds if rr]
                if agree:
                    a = np.array(agree)
                    print(f"{v}: training-label Dice vs clean {a[:, 0].mean():.3f} -> {a[:, 1].mean():.3f}; mean correction "
                          f"precision {np.nanmean(prec):.3f}; rounds per run {np.mean([len(rr) for rr in rounds]):.1f}")
                round_report(v, per[v], per[v][0]["classes"])
        if recipe in cons_dice:
            row["consensus_labels_dice_with_clean"] = cons_dice[recipe]
            print(f"consensus labels (21 realizations, sigma 2 px): Dice with clean {cons_dice[recipe]:.3f}")
        summary.append(row)

    print("\n### Summary: test mean Dice (mean over seeds), ADELE - baseline in Dice points with its 95% paired t-interval\n")
    head = ["noise", "labels vs clean", "baseline, noisy", "ADELE, noisy", "ADELE - baseline [95% CI]", "ahead"]
    if with_ceiling:
        head += ["consensus ceiling", "gap to ceiling closed"]
    if "baseline_clean" in args.variants:
        head += ["clean"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for row in summary:
        if "adele_diff" not in row:
            continue
        d = row["adele_diff"]
        cells = [f"`{row['recipe']}`", f"{row['labels_dice_with_clean']:.3f}", f"{np.mean(row['baseline_noisy']):.3f}",
                 f"{np.mean(row['adele']):.3f}", fmt_ci(d["mean"], d["low"], d["high"]), f"{d['ahead']}/{len(row['seeds'])}"]
        if with_ceiling:
            c = row.get("adele_closes_consensus")
            cells += ([f"{np.mean(row['consensus']):.3f}", "-" if c is None else f"{100 * c:.0f}%"] if "consensus" in row
                      else ["not run", "-"])
        if "baseline_clean" in row:
            cells += [f"{np.mean(row['baseline_clean']):.3f}"]
        print("| " + " | ".join(cells) + " |")
    checked = []
    for item in args.verify:  # the reused runs against this code: trained again, compared
        v, _, s = item.partition(":")
        key = (args.recipes[0], v, int(s)) if s.lstrip("-").isdigit() else None
        if key not in jobs:
            raise SystemExit(f"--verify {item}: not a run of this benchmark (VARIANT:SEED of --variants and --seeds)")
        run_dir, sets, data = jobs[key]
        checked.append(verify(run_dir, sets, data, config, args.out / "verify" / run_dir.parent.name / run_dir.name))
        print(f"verify {checked[-1]['run']}: trained again, {checked[-1]['verdict']}"
              + ("" if checked[-1]["same"] else ": " + ", ".join(checked[-1]["differences"])))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    if args.smoke and args.result_dir is None:
        args.result_dir = args.out  # a smoke run never replaces a committed result
    name, where = result_target(args, f"adele_{slug(args.dataset)}_" + "_".join(slug(r) for r in args.recipes))
    write_result(name, {"dataset": args.dataset, "recipes": args.recipes, "config": args.config if args.config == "plan" else
                        Path(config).name, "variants": args.variants, "seeds": args.seeds, "clean_seeds": clean_seeds if "baseline_clean" in args.variants else None, "ceiling": args.ceiling,
                        "set": extra, "overrides": {v: VARIANTS[v] for v in args.variants}},
                 {"summary": summary, **({"verified": checked} if checked else {})}, out_dir=where)
    if args.figure and all("adele_diff" in r for r in summary):
        plot(summary, args.figure)
        print(f"\nfigure: {args.figure}")


def plot(summary: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=120)
    x = [r["labels_dice_with_clean"] for r in summary]
    m = [r["adele_diff"]["mean"] for r in summary]
    err = np.array([[r["adele_diff"]["mean"] - r["adele_diff"]["low"], r["adele_diff"]["high"] - r["adele_diff"]["mean"]]
                    for r in summary]).T
    ax.axhline(0, color="0.5", lw=1)
    ax.errorbar(x, m, yerr=np.nan_to_num(err), fmt="o", color="C3", capsize=4, label="ADELE - baseline (95% CI)")
    ceil = [r for r in summary if "consensus" in r]
    if ceil:
        ax.plot([r["labels_dice_with_clean"] for r in ceil], [100 * (np.mean(r["consensus"]) - np.mean(r["baseline_noisy"])) for r in ceil],
                "s", color="C2", mfc="none", label="consensus ceiling - baseline")
    for xi, mi, r in zip(x, m, summary):
        ax.annotate(r["recipe"], (xi, mi), textcoords="offset points", xytext=(6, 6), fontsize=7)
    ax.set_xlabel("training labels' Dice with the clean labels (noise level; lower = noisier)")
    ax.set_ylabel("test Dice points")
    recipe = "planned recipe" if summary[0].get("config") == "plan" else summary[0].get("config")
    ax.set_title(f"ADELE gain vs noise level ({summary[0].get('dataset', 'colin27')}, {recipe}, {len(summary[0]['seeds'])} seeds)", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
