"""Training-step cost of ADELE vs the baseline, input-pipeline share, epoch-time scaling, and a whole run's wall time.

    python benchmarks/bench_perf.py                 # the step, pipeline and scaling sections
    python benchmarks/bench_perf.py --only step     # one section: step | pipeline | scaling | run
    python benchmarks/bench_perf.py --only run --rounds 1   # whole `adele train` runs, baseline vs ADELE (minutes each)
    python benchmarks/bench_perf.py --smoke         # seconds: every section on tiny settings (checks the code path)

Every comparison is a ratio measured in the same process, with the variants
interleaved over several rounds (median kept), because this machine is noisy.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adele.config import load_config  # noqa: E402
from adele.data import load_colin27  # noqa: E402
from adele.data.folder import ArraySplit, Source  # noqa: E402
from adele.engine.trainer import Trainer, load_run_data  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import add_result_options, result_target, write_result  # noqa: E402

SETTINGS = ["data.size=[112,96]", "optim.name=adam", "optim.lr=0.002", "train.batch_size=2", "data.noise=final", "train.device=cpu"]
VARIANTS = {
    "baseline": ["method=baseline"],
    "ADELE, paper (3 scales every step)": ["method=adele", "adele.consistency.every_steps=1"],
    "ADELE, every 2nd step": ["method=adele", "adele.consistency.every_steps=2"],
    "ADELE, every 4th step": ["method=adele", "adele.consistency.every_steps=4"],
    "ADELE, every 5th step": ["method=adele", "adele.consistency.every_steps=5"],
    "ADELE, every 10th step": ["method=adele", "adele.consistency.every_steps=10"],
    "ADELE, every 15th step": ["method=adele", "adele.consistency.every_steps=15"],
    "ADELE, default config": ["method=adele"],
}


#: the step section's recipe: None = SETTINGS; (dataset, noise) = the recipe ``adele train`` plans from that dataset
PLANNED: Optional[tuple[str, str]] = None
#: settings added to every trainer's (``--smoke``: tiny sizes)
SMOKE: list[str] = []


def make_trainer(extra: list[str], tmp: Path, source=None) -> Trainer:
    if PLANNED is not None and source is None:
        from adele.plan import planned_config

        sets = [f"data.path={PLANNED[0]}", f"data.noise={PLANNED[1]}", "train.device=cpu", *SMOKE, *extra]
        cfg = planned_config(None, sets, device="cpu")[0]
    else:
        cfg = load_config(None, SETTINGS + extra)
    return Trainer(cfg, tmp, data=load_run_data(cfg, source), log=lambda m: None)


def recipe_line(cfg) -> str:
    """The step section's recipe in words (batch, size, network)."""
    size = "x".join(map(str, cfg.data.size)) if cfg.data.size else "native size"
    return f"batch {cfg.train.batch_size}, {size}, width-{cfg.model.width} {cfg.model.name}, {cfg.train.loss}"


def multiscale_every(tr: Trainer) -> int:
    """Every how many steps the trainer's method takes the multi-scale consistency step (0: never)."""
    con = tr.cfg.adele.consistency
    return con.every_steps if tr.cfg.method == "adele" and con.enabled else 0


def time_steps(tr: Trainer, steps: int) -> tuple[list[float], list[float]]:
    """Seconds of each of ``steps`` optimizer steps of the real training loop (no eval, no correction), split into
    (plain steps, multi-scale consistency steps)."""
    loader = tr.loader(1)
    it = iter(loader)
    net, opt = tr.net, tr.optimizer
    net.train()
    every = multiscale_every(tr)
    plain: list[float] = []
    multi: list[float] = []
    for step in range(steps):
        try:
            img, lab, idx = next(it)
        except StopIteration:
            it = iter(loader)
            img, lab, idx = next(it)
        t = time.perf_counter()
        out = tr.method.loss(net, img, lab, step)  # the method's own loss: the baseline's, or ADELE's with its schedule
        opt.zero_grad(set_to_none=True)
        out["total"].backward()
        opt.step()
        (multi if every and step % every == 0 else plain).append(time.perf_counter() - t)
    return plain, multi


def section_step(rounds: int, steps: int, tmp: Path) -> dict:
    """ms per step of each variant: the median plain step and the median multi-scale step (over every round), weighed
    by the variant's schedule (one multi-scale step in ``every_steps``): robust to a slow stretch of the machine, which
    a mean over the steps of a round is not."""
    trainers = {name: make_trainer(extra, tmp / name.replace(" ", "_")) for name, extra in VARIANTS.items()}
    for tr in trainers.values():
        time_steps(tr, 2)  # warm-up
    plain: dict[str, list[float]] = {n: [] for n in trainers}
    multi: dict[str, list[float]] = {n: [] for n in trainers}
    for _ in range(rounds):
        for name, tr in trainers.items():
            p, m = time_steps(tr, steps)
            plain[name] += p
            multi[name] += m
    med = {name: {k: statistics.median(v[name]) if v[name] else None for k, v in (("plain", plain), ("multi", multi))}
           for name in trainers}
    per_step = {}
    for name, tr in trainers.items():
        every, p, m = multiscale_every(tr), med[name]["plain"], med[name]["multi"]
        per_step[name] = p if not every else (m if every == 1 else ((every - 1) * p + m) / every)
    base = per_step["baseline"]
    recipe = recipe_line(trainers["baseline"].cfg) + (f", planned from {PLANNED[0]}" if PLANNED else "")
    print(f"\n### ADELE training-step cost ({recipe}, CPU, {torch.get_num_threads()} threads; {rounds} rounds x {steps} steps, "
          "median plain and multi-scale step weighed by the schedule)\n")
    print("| variant | plain step ms | multi-scale step ms | ms / step | ratio to baseline | goal |")
    print("|---|---:|---:|---:|---:|---|")
    out = {}
    for name, tr in trainers.items():
        p, m = med[name]["plain"], med[name]["multi"]
        goal = "<= 1.6x" if "default" in name else ""
        print(f"| {name} | {'' if p is None else f'{1000 * p:.1f}'} | {'' if m is None else f'{1000 * m:.1f}'} | "
              f"{1000 * per_step[name]:.1f} | {per_step[name] / base:.2f}x | {goal} |")
        out[name] = {"ms_per_step": 1000 * per_step[name], "ratio_to_baseline": per_step[name] / base,
                     "plain_step_ms": None if p is None else 1000 * p, "multiscale_step_ms": None if m is None else 1000 * m,
                     "every_steps": multiscale_every(tr) or None}
    return out


def section_pipeline(tmp: Path) -> dict:
    tr = make_trainer(VARIANTS["baseline"], tmp / "pipe")
    loader = tr.loader(1)
    t = time.perf_counter()
    n = 0
    for _ in range(3):
        for _batch in loader:
            n += 1
    load_s = (time.perf_counter() - t) / n
    step_s = float(np.mean(time_steps(tr, 20)[0]))
    print("\n### Input pipeline\n")
    print("| measure | value | goal |")
    print("|---|---:|---|")
    print(f"| data loading per batch | {1000 * load_s:.2f} ms | |")
    print(f"| training step (baseline) | {1000 * step_s:.1f} ms | |")
    print(f"| loading share of step time | {100 * load_s / (load_s + step_s):.1f}% | < 5% |")
    return {"load_ms_per_batch": 1000 * load_s, "step_ms": 1000 * step_s, "load_share_percent": 100 * load_s / (load_s + step_s)}


def tiled_source(k: int) -> Source:
    full = load_colin27()
    tr = full.splits["train"]
    ids = tuple(f"{i}_{t}" for t in range(k) for i in tr.ids)
    splits = dict(full.splits)
    splits["train"] = ArraySplit(ids, np.concatenate([tr.images] * k), np.concatenate([tr.labels] * k))
    return Source(full.name, full.classes, 255, splits)


def section_scaling(tmp: Path, rounds: int) -> dict:
    """Epoch time at 1x/2x/4x the embedded training set; sizes interleaved over ``rounds`` rounds, median kept."""
    variants = {"baseline": VARIANTS["baseline"], "ADELE, default config": VARIANTS["ADELE, default config"]}
    print(f"\n### Epoch time vs training-set size (tiled embedded set; median of {rounds} interleaved rounds, {torch.get_num_threads()} threads)\n")
    print("| variant | training images | epoch s (median) | epoch s (min-max) | ms per image | relative to 1x |")
    print("|---|---:|---:|---:|---:|---:|")
    out: dict[str, dict] = {}
    for vname, extra in variants.items():
        trainers = {k: make_trainer(extra + ["train.epochs=1"], tmp / f"scale_{vname[:5]}_{k}", tiled_source(k)) for k in (1, 2, 4)}
        for tr in trainers.values():
            tr.train_epoch(1, 0, 10**6)  # warm-up epoch
        times: dict[int, list[float]] = {k: [] for k in trainers}
        for r in range(rounds):
            for k, tr in trainers.items():
                t = time.perf_counter()
                tr.train_epoch(2 + r, 0, 10**6)
                times[k].append(time.perf_counter() - t)
        per = {k: statistics.median(v) / len(trainers[k].data.train) for k, v in times.items()}
        for k, v in times.items():
            n = len(trainers[k].data.train)
            print(f"| {vname} | {n} | {statistics.median(v):.2f} | {min(v):.2f}-{max(v):.2f} | {1000 * per[k]:.1f} | {per[k] / per[1]:.2f}x per image |")
        out[vname] = {f"{k}x": {"images": len(trainers[k].data.train), "epoch_s_median": statistics.median(v), "epoch_s_per_round": v,
                                "ms_per_image": 1000 * per[k], "per_image_vs_1x": per[k] / per[1]} for k, v in times.items()}
    ratios = [x["per_image_vs_1x"] for row in out.values() for k, x in row.items() if k != "1x"]
    out["per_image_vs_1x_range"] = {"min": min(ratios), "max": max(ratios)}  # the range quoted for the larger sets
    return out


def section_run(tmp: Path, rounds: int, dataset: str, noise: str, threads: int, extra: list[str],
                candidates: Optional[dict[str, list[str]]] = None) -> dict:
    """Wall time of whole ``adele train`` runs (the recipe planned from ``dataset``, as a user runs it), the baseline and
    ADELE's default (and each of ``candidates``: name -> ADELE's overrides) over ``rounds`` rounds, the order rotated each
    round so a drift in the machine's speed weighs on all; each run's epochs (history.csv ``time_s``: training, validation,
    ADELE's rounds) summed beside it."""
    import csv
    import subprocess

    variants = {"baseline": ["method=baseline"], "ADELE, default config": ["method=adele"]}
    variants.update({name: ["method=adele", *sets] for name, sets in (candidates or {}).items()})
    walls: dict[str, list[float]] = {v: [] for v in variants}
    epochs: dict[str, list[float]] = {v: [] for v in variants}
    #: CPU seconds (user + system) of each run: time a hypervisor steals from the machine is not in them, so a round
    #: whose wall time a neighbour stretched shows as one (its wall ratio moves, its CPU ratio does not)
    cpus: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(rounds):
        names = list(variants)
        order = names[r % len(names):] + names[:r % len(names)]  # rotated: each variant first in turn
        for i, name in enumerate(order):
            out = tmp / f"run_{r}_{i}"
            cmd = [sys.executable, "-m", "adele", "train", "--data", dataset, "--out", str(out), "--overwrite", "--set",
                   *variants[name], f"data.noise={noise}", "train.seed=0", f"train.threads={threads}", *extra]
            t = time.perf_counter()
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            walls[name].append(time.perf_counter() - t)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus[name].append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
            with open(out / "history.csv") as f:
                epochs[name].append(sum(float(row["time_s"]) for row in csv.DictReader(f)))
            print(f"round {r + 1}/{rounds}: {name}: {walls[name][-1]:.0f} s", file=sys.stderr)
    ratios = {name: [a / b for a, b in zip(walls[name], walls["baseline"])] for name in variants if name != "baseline"}
    cpu_ratios = {name: [a / b for a, b in zip(cpus[name], cpus["baseline"])] for name in variants if name != "baseline"}
    print(f"\n### Whole run: `adele train --data {dataset}`, planned recipe, noise {noise} ({rounds} round(s), the variants "
          f"in turn, {threads} thread(s))\n")
    print("| variant | wall s (median) | epochs s (median) | CPU s (median) | ratio to baseline (median of rounds) | "
          "CPU ratio (median of rounds) | goal |")
    print("|---|---:|---:|---:|---:|---:|---|")
    out: dict[str, dict] = {}
    for name in variants:
        ratio = statistics.median(ratios[name]) if name != "baseline" else 1.0
        cpu_ratio = statistics.median(cpu_ratios[name]) if name != "baseline" else 1.0
        print(f"| {name} | {statistics.median(walls[name]):.0f} | {statistics.median(epochs[name]):.0f} | "
              f"{statistics.median(cpus[name]):.0f} | {ratio:.2f}x | {cpu_ratio:.2f}x | {'<= 1.15x' if name != 'baseline' else ''} |")
        out[name] = {"settings": variants[name], "wall_s_per_round": walls[name], "epochs_s_per_round": epochs[name],
                     "wall_s_median": statistics.median(walls[name]), "cpu_s_per_round": cpus[name]}
        if name != "baseline":
            out[name].update(to_baseline_wall_ratio_per_round=ratios[name], to_baseline_wall_ratio=statistics.median(ratios[name]),
                             to_baseline_cpu_ratio_per_round=cpu_ratios[name], to_baseline_cpu_ratio=statistics.median(cpu_ratios[name]))
    out["adele_to_baseline_wall_ratio_per_round"] = ratios["ADELE, default config"]
    out["adele_to_baseline_wall_ratio"] = statistics.median(ratios["ADELE, default config"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["step", "pipeline", "scaling", "run"], default=None)
    ap.add_argument("--dataset", default="colin27-structures", help="run section: the embedded set or folder trained on")
    ap.add_argument("--noise", default="final:target_area=1000", help="run section: data.noise of both runs")
    ap.add_argument("--threads", type=int, default=None, help="run section: train.threads of each run (default: torch's)")
    ap.add_argument("--candidate", nargs=2, action="append", default=[], metavar=("NAME", "SETTINGS"),
                    help="run section: one more ADELE variant timed beside the default, e.g. --candidate cons10 "
                         "adele.consistency.every_steps=10 (settings separated by spaces)")
    ap.add_argument("--planned", action="store_true",
                    help="step section: time the steps of the recipe `adele train` plans from --dataset (with --noise) "
                         "instead of the fixed 112x96 settings")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one round of 2 steps: the same code path in seconds")
    add_result_options(ap, "perf, or perf_SECTION with --only")
    args = ap.parse_args()
    global PLANNED
    if args.planned:
        PLANNED = (args.dataset, args.noise)
    if args.smoke:
        SMOKE[:] = ["data.size=[32,32]", "model.width=4", "model.depth=2", "train.threads=1"]
        SETTINGS[:] = SETTINGS + SMOKE
        args.rounds, args.steps = 1, 2
    run_extra = ["data.size=[32,32]", "model.width=4", "model.depth=2", "train.epochs=3"] if args.smoke else []
    import tempfile

    torch.manual_seed(0)
    results = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.only in (None, "step"):
            results["step"] = section_step(args.rounds, args.steps, tmp)
        if args.only in (None, "pipeline"):
            results["pipeline"] = section_pipeline(tmp)
        if args.only in (None, "scaling"):
            results["scaling"] = section_scaling(tmp, args.rounds)
        if args.only == "run":
            results["run"] = section_run(tmp, args.rounds, args.dataset, args.noise, args.threads or torch.get_num_threads(), run_extra,
                                         {name: sets.split() for name, sets in args.candidate})
    target = result_target(args, "perf" + (f"_{args.only}" if args.only else ""), args.smoke)
    if target:
        write_result(target[0], {"only": args.only, "rounds": args.rounds, "steps": args.steps, "smoke": args.smoke,
                                 **({"dataset": args.dataset, "noise": args.noise, "run_extra": run_extra,
                                     "candidates": dict(args.candidate)} if args.only == "run" else {}),
                                 "planned": {"dataset": args.dataset, "noise": args.noise} if args.planned else None,
                                 "settings": SETTINGS, "variants": VARIANTS, "threads": torch.get_num_threads()},
                     results, out_dir=target[1])


if __name__ == "__main__":
    main()
