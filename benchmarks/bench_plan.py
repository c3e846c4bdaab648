"""Does the planned recipe train as well as the hand-tuned one? (issue: plan the recipe from the data)

Trains, through the public CLI, the baseline on the clean labels (the embedded labels, no noise)

* ``planned``: ``adele train`` with no config (the recipe ``adele plan`` derives from the data),
* ``preset``: ``adele train --config colin27`` (the hand-tuned recipe of the embedded data),

on the embedded Colin27 slices and on a 40-slice subset of them (the first 40 training slices
of ``adele data export colin27``, same val/test), for each seed; prints test mean Dice per run,
planned / preset as a ratio, and each run's wall time. With ``--scaling`` it also prints the
plan of synthetic datasets of 40 to 2,000 slices (no training): steps per epoch grow, epochs do not.

    python benchmarks/bench_plan.py --out runs/bench_plan --seeds 0 1 2 --jobs 2
    python benchmarks/bench_plan.py --scaling
    python benchmarks/bench_plan.py --smoke          # seconds: the same code path on tiny settings

The training comparison writes docs/benchmarks/plan.json (settings; per data set and seed both test Dice values, their
ratio and wall times; the per-data means as printed), ``--scaling`` writes docs/benchmarks/plan_scaling.json (each
synthetic size's plan per device); ``--result NAME`` and ``--result-dir DIR`` choose another file; ``--smoke`` writes
only with ``--result-dir``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import add_result_options, result_target, write_result  # noqa: E402


def subset(out: Path, n_train: int) -> Path:
    """A dataset folder with the first ``n_train`` training slices of the embedded data (val/test whole)."""
    folder = out / f"colin27-{n_train}"
    if (folder / "dataset.json").is_file():
        return folder
    tmp = out / f"colin27-{n_train}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "adele", "data", "export", "colin27", str(tmp)], check=True, stdout=subprocess.DEVNULL)
    for sub in ("images", "labels"):
        for f in sorted((tmp / "train" / sub).iterdir())[n_train:]:
            f.unlink()
    tmp.rename(folder)
    return folder


def train(run: Path, data: str, recipe: str, seed: int, extra: list[str], threads: int) -> tuple[dict, float]:
    if (run / "metrics.json").is_file():
        return json.loads((run / "metrics.json").read_text()), json.loads((run / "wall.json").read_text())["s"]
    cmd = [sys.executable, "-m", "adele", "train", "--data", data, "--out", str(run), "--overwrite", "--device", "cpu",
           "--seed", str(seed), "--set", "data.noise=null", f"train.threads={threads}", *extra]
    if recipe == "preset":
        cmd[4:4] = ["--config", "colin27"]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    (run / "wall.json").write_text(json.dumps({"s": wall}))
    return json.loads((run / "metrics.json").read_text()), wall


def scaling() -> list[dict]:
    sys.path.insert(0, str(REPO))
    from adele.data.folder import ArraySplit, Source
    from adele.plan import fingerprint, plan

    rng = np.random.default_rng(0)
    print("| synthetic slices (217x181) | device | data.size | batch | steps per epoch | epochs | optimizer steps |")
    print("|---:|---|---|---:|---:|---:|---:|")
    rows = []
    for n in (40, 72, 500, 2000):
        labs = np.zeros((n, 217, 181), np.uint8)
        labs[:, 50:150, 40:140] = 1
        labs[:, 160:180, 60:80] = 2
        src = Source("synthetic", ("background", "a", "b"), 255,
                     {"train": ArraySplit(tuple(map(str, range(n))), rng.random((n, 217, 181)).astype(np.float32), labs)})
        fp = fingerprint(src)
        for device in ("cpu", "cuda"):
            p = plan(fp, device)
            print(f"| {n} | {device} | {p['data.size'][0]}x{p['data.size'][1]} | {p['train.batch_size']} | "
                  f"{p['train.steps_per_epoch']} | {p['train.epochs']} | {p['train.steps_per_epoch'] * p['train.epochs']} |")
            rows.append({"slices": n, "device": device, "data.size": list(p["data.size"]), "batch_size": p["train.batch_size"],
                         "steps_per_epoch": p["train.steps_per_epoch"], "epochs": p["train.epochs"],
                         "optimizer_steps": p["train.steps_per_epoch"] * p["train.epochs"]})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_plan"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel (train.threads=1 each when > 1)")
    ap.add_argument("--scaling", action="store_true", help="only print the plans of synthetic datasets of growing size")
    ap.add_argument("--smoke", action="store_true", help="tiny settings (1 epoch of 2 steps at 32x32): checks the code path")
    add_result_options(ap, "plan, or plan_scaling with --scaling")
    args = ap.parse_args()
    if args.scaling:
        rows = scaling()
        target = result_target(args, "plan_scaling")
        if target:
            write_result(target[0], {"scaling": True, "image_size": [217, 181], "classes": 3}, {"plans": rows}, out_dir=target[1])
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    extra = ["train.epochs=1", "train.steps_per_epoch=2", "data.size=[32,32]", "quality.track=false"] if args.smoke else []
    seeds = args.seeds[:1] if args.smoke else args.seeds
    threads = 1 if args.jobs > 1 else 2
    sets = {"colin27 (72 slices)": "colin27", "40-slice subset": str(subset(args.out, 40))}
    jobs = [(name, data, recipe, seed) for name, data in sets.items() for recipe in ("planned", "preset") for seed in seeds]

    def one(job):
        name, data, recipe, seed = job
        run = args.out / ("smoke" if args.smoke else "") / f"{'c27' if data == 'colin27' else 'c27-40'}_{recipe}_s{seed}"
        m, wall = train(run, data, recipe, seed, extra, threads)
        print(f"  {run.name}: test {m['test']['mean_dice']:.4f} in {wall:.0f} s", file=sys.stderr, flush=True)
        return job, m["test"]["mean_dice"], wall

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        results = list(pool.map(one, jobs))
    print("| data | seed | planned: test Dice | preset: test Dice | planned / preset | planned run (s) | preset run (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    per_seed, means = [], []
    for name in sets:
        ratios = []
        for seed in seeds:
            got = {r: (d, w) for (n, _, r, s), d, w in results if n == name and s == seed}
            (dp, wp), (dh, wh) = got["planned"], got["preset"]
            ratio = dp / dh if dh else float("nan")
            ratios.append(ratio)
            print(f"| {name} | {seed} | {dp:.3f} | {dh:.3f} | {ratio:.3f} | {wp:.0f} | {wh:.0f} |")
            per_seed.append({"data": name, "seed": seed, "planned_test_dice": dp, "preset_test_dice": dh, "ratio": ratio,
                             "planned_wall_s": wp, "preset_wall_s": wh})
        mp = np.mean([d for (n, _, r, _), d, _ in results if n == name and r == "planned"])
        mh = np.mean([d for (n, _, r, _), d, _ in results if n == name and r == "preset"])
        print(f"| {name} | mean | {mp:.3f} | {mh:.3f} | {mp / mh if mh else float('nan'):.3f} | | |")
        means.append({"data": name, "planned_test_dice": mp, "preset_test_dice": mh, "ratio": mp / mh if mh else float("nan")})
    target = result_target(args, "plan", args.smoke)
    if target:
        write_result(target[0], {"seeds": seeds, "jobs": args.jobs, "threads_per_run": threads, "smoke": args.smoke,
                                 "extra_settings": extra, "data": {name: ("colin27" if data == "colin27" else "first 40 training slices "
                                                                          "of colin27") for name, data in sets.items()}},
                     {"per_seed": per_seed, "mean": means}, out_dir=target[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
