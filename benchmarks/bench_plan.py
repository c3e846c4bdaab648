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


def scaling() -> None:
    sys.path.insert(0, str(REPO))
    from adele.data.folder import ArraySplit, Source
    from adele.plan import fingerprint, plan

    rng = np.random.default_rng(0)
    print("| synthetic slices (217x181) | device | data.size | batch | steps per epoch | epochs | optimizer steps |")
    print("|---:|---|---|---:|---:|---:|---:|")
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_plan"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel (train.threads=1 each when > 1)")
    ap.add_argument("--scaling", action="store_true", help="only print the plans of synthetic datasets of growing size")
    ap.add_argument("--smoke", action="store_true", help="tiny settings (1 epoch of 2 steps at 32x32): checks the code path")
    args = ap.parse_args()
    if args.scaling:
        scaling()
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
    for name in sets:
        ratios = []
        for seed in seeds:
            got = {r: (d, w) for (n, _, r, s), d, w in results if n == name and s == seed}
            (dp, wp), (dh, wh) = got["planned"], got["preset"]
            ratio = dp / dh if dh else float("nan")
            ratios.append(ratio)
            print(f"| {name} | {seed} | {dp:.3f} | {dh:.3f} | {ratio:.3f} | {wp:.0f} | {wh:.0f} |")
        mp = np.mean([d for (n, _, r, _), d, _ in results if n == name and r == "planned"])
        mh = np.mean([d for (n, _, r, _), d, _ in results if n == name and r == "preset"])
        print(f"| {name} | mean | {mp:.3f} | {mh:.3f} | {mp / mh if mh else float('nan'):.3f} | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
