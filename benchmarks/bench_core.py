"""Timings and sizes of the ADELE core; prints a markdown table.

    .venv/bin/python benchmarks/bench_core.py
    .venv/bin/python benchmarks/bench_core.py --smoke     # a second: the same code on tiny arrays
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adele.config import DetectionConfig  # noqa: E402
from adele.core import OnsetRule, PredictionStore, correct_labels, detect_onset  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import add_result_options, result_target, write_result  # noqa: E402

RULE = OnsetRule(**DetectionConfig().fit_settings())
#: pixels per correct_labels call (~50 Mpixel; --smoke: 0.1) and repeats per timing
SIZE = {"pixels": 50e6, "repeats": 3}


def best_of(fn) -> float:
    times = []
    for _ in range(SIZE["repeats"]):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def correction_throughput(conf_kind: str, computed_allowed: bool) -> float:
    """Mpixel/s of correct_labels on 72 x 192 x 224 random slices repeated to ~50 Mpixel."""
    rng = np.random.default_rng(0)
    n, h, w, c = 72, 192, 224, 10
    reps = int(np.ceil(SIZE["pixels"] / (n * h * w)))
    labels = np.tile(rng.integers(0, c, (n, h, w), dtype=np.uint8), (reps, 1, 1))
    pred = np.tile(rng.integers(0, c, (n, h, w), dtype=np.uint8), (reps, 1, 1))
    q = np.tile(rng.integers(0, 256, (n, h, w), dtype=np.uint8), (reps, 1, 1))
    conf = q if conf_kind == "uint8" else PredictionStore.dequantize(q)
    flagged = np.zeros(c, dtype=bool)
    flagged[[1, 3, 4, 7]] = True
    allowed = None if computed_allowed else np.ones((labels.shape[0], c), dtype=bool)
    dt = best_of(lambda: correct_labels(labels, pred, conf, flagged, allowed=allowed))
    return labels.size / dt / 1e6, labels.size


def curve_check_ms(num_classes=10, epochs=100) -> float:
    """ms for one detector check: fit + onset for every class on a 100-epoch curve."""
    rng = np.random.default_rng(0)
    t = np.arange(1, epochs + 1)
    curves = [np.clip(0.8 * (1 - np.exp(-t / rng.uniform(3, 20))) + rng.normal(0, 0.02, epochs), 0, 1)
              for _ in range(num_classes)]
    dt = best_of(lambda: [detect_onset(y, epochs, epochs, RULE) for y in curves])
    return dt * 1e3


def store_write_mpx_s() -> float:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=(16, 192, 224)).transpose(0, 3, 1, 2)
    probs = np.ascontiguousarray(probs, dtype=np.float32)  # (16, C, H, W) like a network output
    with tempfile.TemporaryDirectory() as d:
        store = PredictionStore.create(d, [(192, 224)] * 16)
        dt = best_of(lambda: store.write_batch(range(16), probs))
        store.flush()
    return 16 * 192 * 224 / dt / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny arrays, one repeat: the code path in about a second")
    add_result_options(ap, "core")
    args = ap.parse_args()
    if args.smoke:
        SIZE.update(pixels=1e5, repeats=1)
    rows = []
    figures: dict[str, float] = {}
    for kind in ("uint8", "float32"):
        for computed in (True, False):
            mpx, size = correction_throughput(kind, computed)
            src = "computed from labels" if computed else "given"
            rows.append((f"correct_labels, conf {kind}, allowed {src} ({size / 1e6:.1f} Mpx)",
                         f"{mpx:.0f} Mpixel/s"))
            figures[f"correct_labels_{kind}_allowed_{'computed' if computed else 'given'}_mpx_s"] = mpx
    figures["correct_labels_mpx"] = size / 1e6
    figures["onset_check_ms"] = curve_check_ms()
    figures["store_write_mpx_s"] = store_write_mpx_s()
    rows.append(("onset check, 10 classes x 100 epochs", f"{figures['onset_check_ms']:.1f} ms per check"))
    rows.append(("PredictionStore.write, C=10, 192x224", f"{figures['store_write_mpx_s']:.0f} Mpixel/s"))
    c = 10
    rows.append((f"store vs float32 softmax, C={c}",
                 f"{PredictionStore.bytes_per_pixel:.0f} vs {4 * c} bytes/pixel"))
    voc_px = 10582 * 500 * 375
    rows.append(("VOC trainaug (10582 x 500x375, C=21): store",
                 f"{voc_px * PredictionStore.bytes_per_pixel / 1e9:.2f} GB"))
    rows.append(("VOC trainaug (10582 x 500x375, C=21): float32 softmax",
                 f"{voc_px * 4 * 21 / 1e9:.1f} GB"))
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    target = result_target(args, "core", args.smoke)
    if target:
        write_result(target[0], {"pixels": SIZE["pixels"], "repeats": SIZE["repeats"], "smoke": args.smoke,
                                 "store_bytes_per_pixel": PredictionStore.bytes_per_pixel}, figures, out_dir=target[1])


if __name__ == "__main__":
    main()
