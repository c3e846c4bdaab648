"""Memory of a training run against the dataset's size: the prepared splits in memory or on disk (data.memory_budget_mb).

    python benchmarks/bench_memory.py                      # 1x, 4x, 16x the images on disk, and 1x in memory (minutes)
    python benchmarks/bench_memory.py --smoke              # seconds: tiny sizes, checks the code path
    python benchmarks/bench_memory.py --huge --huge-gb 26  # opt-in: one dataset whose prepared form exceeds GB

A synthetic dataset in the generic folder format (``.npy`` images and labels, ``--side`` x ``--side``, float32 after
the z-score) is generated into a temporary folder for each scale. Each run is a fresh subprocess that loads the data
(preparing it on disk the first time), trains ``--steps`` steps (one epoch of ``train.steps_per_epoch``), scores the
validation split, then makes one correction round over every training image (forced, on every foreground class: the
eval-mode pass into the prediction store, the rule, the new labels written). It prints its peak resident memory:
``peak_rss_mb`` (the kernel's high-water mark, VmHWM: it counts the pages of memory-mapped files it touched, the
prediction store's among them, which the kernel can drop at any time) and ``peak_anon_mb`` (the largest anonymous
resident memory sampled every 20 ms: what the process itself holds). ``step_s``: seconds per training step; at 1x
the disk and memory runs alternate twice and the best of each is compared.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import add_result_options, result_target, write_result  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, threading, time
import torch
from adele.config import Config
from adele.engine.trainer import Trainer

args = json.loads(sys.argv[1])
peak = {"anon": 0}
def sample():
    while True:
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                peak["anon"] = max(peak["anon"], int(line.split()[1]))
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()
cfg = Config().replace(**args["settings"])
t0 = time.perf_counter()
tr = Trainer(cfg, args["run"], log=lambda m: None)
load_s = time.perf_counter() - t0
tr.prepare_run_dir(resume=False, overwrite=True)
steps = cfg.train.steps_per_epoch
t0 = time.perf_counter()
tr.train_epoch(1, 0, steps)
step_s = (time.perf_counter() - t0) / steps
tr.epoch = 1
t0 = time.perf_counter()
val = tr.evaluate(tr.data.val)
t1 = time.perf_counter()
info = tr.method.correction_round(1, tr.net, tr.device, tr.dist, list(range(1, tr.num_classes)))
round_s = time.perf_counter() - t1
print(json.dumps({"on_disk": tr.data.train.on_disk, "n_train": len(tr.data.train), "load_s": round(load_s, 2),
                  "step_s": round(step_s, 4), "val_s": round(t1 - t0, 2), "round_s": round(round_s, 2),
                  "pixels_changed": info["pixels_changed"], "val_mean_dice": val["mean_dice"],
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "peak_anon_mb": round(peak["anon"] / 1024, 1)}))
"""


def make_dataset(root: Path, n_train: int, n_eval: int, side: int, seed: int = 0) -> Path:
    """``n_train`` training and ``n_eval`` val/test images (float32 ``side`` x ``side`` .npy, 3 classes: two squares)."""
    rng = np.random.default_rng(seed)
    (root).mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps({"name": "synthetic", "classes": ["background", "a", "b"], "ignore_index": 255}))
    for split, n in (("train", n_train), ("val", n_eval), ("test", n_eval)):
        for d in ("images", "labels"):
            (root / split / d).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            lab = np.zeros((side, side), np.uint8)
            for c in (1, 2):
                s = side // 4
                y, x = rng.integers(0, side - s, 2)
                lab[y:y + s, x:x + s] = c
            img = (lab * 0.4 + rng.normal(0, 0.2, lab.shape)).astype(np.float32)
            np.save(root / split / "images" / f"im{i:06d}.npy", img)
            np.save(root / split / "labels" / f"im{i:06d}.npy", lab)
    return root


def run_child(data: Path, run: Path, cache: Path, budget: float, steps: int, side: int, width: int) -> dict:
    settings = {"data.path": str(data), "data.size": None, "data.memory_budget_mb": budget, "data.cache_dir": str(cache),
                "model.width": width, "model.depth": 2, "train.batch_size": 8, "train.steps_per_epoch": steps, "train.epochs": 1,
                "train.threads": 1, "train.device": "cpu", "method": "adele", "quality.track": False,
                "adele.consistency.enabled": False}
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), ADELE_NO_PROGRESS="1")
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps({"settings": settings, "run": str(run)})], env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=int, default=256, help="training images at 1x (default 256)")
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--side", type=int, default=128, help="image side in pixels (default 128)")
    ap.add_argument("--steps", type=int, default=20, help="training steps (default 20)")
    ap.add_argument("--width", type=int, default=4, help="model.width (default 4)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    ap.add_argument("--huge", action="store_true", help="one dataset whose prepared form exceeds --huge-gb (opt-in: long)")
    ap.add_argument("--huge-gb", type=float, default=26.0, help="with --huge: size of the prepared form in GB (default 26)")
    ap.add_argument("--work", type=Path, default=None, help="folder for the datasets, cache and runs (default: a temporary one; "
                    "--huge needs that much free disk there)")
    add_result_options(ap, "memory (memory_huge with --huge)")
    args = ap.parse_args()
    if args.smoke:
        args.base, args.scales, args.side, args.steps = 16, [1, 2], 32, 3
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_memory_"))
    n_eval = max(4, args.base // 16)
    rows = []
    try:
        if args.huge:
            n = int(args.huge_gb * 1e9 / (args.side * args.side * 5)) + 1  # float32 image + uint8 label per pixel
            t0 = time.perf_counter()
            data = make_dataset(work / "huge", n, n_eval, args.side)
            gen_s = time.perf_counter() - t0
            r = run_child(data, work / "run_huge", work / "cache", 0.0, args.steps, args.side, args.width)
            r.update(scale=None, mode="disk", generate_s=round(gen_s, 1),
                     cache_gb=round(sum(p.stat().st_size for p in (work / "cache").rglob("*") if p.is_file()) / 1e9, 2))
            rows.append(r)
            print(json.dumps(r))
        else:
            for scale in args.scales:
                data = make_dataset(work / f"x{scale}", args.base * scale, n_eval, args.side)
                # at the first scale, disk and memory alternate, twice each: step times compared by their best run
                # (the machine is shared; the slower runs measure the neighbours)
                modes = [("disk", 0.0)] + ([("memory", 1e9), ("disk", 0.0), ("memory", 1e9)] if scale == args.scales[0] else [])
                for mode, budget in modes:
                    r = run_child(data, work / f"run_x{scale}_{mode}", work / "cache", budget, args.steps, args.side, args.width)
                    r.update(scale=scale, mode=mode)
                    rows.append(r)
                    print(f"{scale:>3}x {mode:<6} n_train={r['n_train']:>6}  peak_rss={r['peak_rss_mb']:>7.1f} MB  "
                          f"peak_anon={r['peak_anon_mb']:>7.1f} MB  step={r['step_s'] * 1000:>6.1f} ms  load={r['load_s']:.1f} s  "
                          f"round={r['round_s']:.1f} s")
                shutil.rmtree(data)
            disk = {r["scale"]: r for r in rows if r["mode"] == "disk"}
            lo, hi = min(disk), max(disk)
            step = {m: min(r["step_s"] for r in rows if r["mode"] == m and r["scale"] == lo) for m in ("disk", "memory")}
            first = [r for r in rows if r["scale"] == lo and r["mode"] == "disk"][0]
            summary = {"rss_ratio": disk[hi]["peak_rss_mb"] / first["peak_rss_mb"],
                       "anon_ratio": disk[hi]["peak_anon_mb"] / first["peak_anon_mb"],
                       "step_ratio_disk_vs_memory": step["disk"] / step["memory"]}
            print(f"{hi}x / {lo}x peak: rss {summary['rss_ratio']:.3f}, anonymous {summary['anon_ratio']:.3f} (target <= 1.2); "
                  f"step time on disk / in memory at {lo}x: {summary['step_ratio_disk_vs_memory']:.3f} (target <= 1.1)")
            rows.append({"summary": summary})
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    target = result_target(args, "memory_huge" if args.huge else "memory", smoke=args.smoke)
    if target is not None:
        write_result(target[0], {k: getattr(args, k) for k in ("base", "scales", "side", "steps", "width", "smoke", "huge", "huge_gb")},
                     {"runs": rows}, out_dir=target[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
