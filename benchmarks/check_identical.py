"""Behaviour-preserving changes: do a seed-0 baseline and ADELE run, with export and report, give the same files?

Runs, through the public CLI, on the embedded data with small settings (about a minute on one core):
a baseline and an ADELE run (seed 0, noisy labels, correction rounds), ``adele export-labels`` of the ADELE
run and ``adele report`` of both; then hashes every file they wrote and writes the manifest
(``relative path -> sha256``) to ``--manifest``. With ``--against OLD.json`` it compares with a manifest
made by another commit and exits 1 when a file differs, is missing or is new.

Files that differ between two runs of one commit are left out, each with the reason: wall-clock times
and dates (history timings and peak memory, run.json times, the log, the report's date line), the output marker and
lock (process id, time) and TensorBoard event files.

    git stash; python benchmarks/check_identical.py --manifest /tmp/before.json; git stash pop
    python benchmarks/check_identical.py --manifest /tmp/after.json --against /tmp/before.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

SETTINGS = ["--device", "cpu", "--seed", "0", "--noise", "final:target_area=1000", "--set", "data.size=[56,48]", "model.width=8",
            "train.epochs=8", "train.steps_per_epoch=null", "train.threads=1", "adele.detection.min_points=3",
            "adele.detection.trim_flat=null", "adele.correction.every=2"]
#: (pattern, why it is not compared): files whose content depends on the clock
VOLATILE = [
    (r"(^|/)events\.out\.tfevents", "TensorBoard event files carry wall-clock stamps"),
    (r"(^|/)train\.log$", "the log has each epoch's duration"),
    (r"(^|/)\.adele(-output\.json|\.lock)$", "the output marker and the lock hold the process and the time"),
]
TIME_KEY = r"time|seconds|duration|started|finished|date|wall|_s$|rss"  # clock and memory fields


def adele(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "adele", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stable_bytes(path: Path) -> bytes:
    """The file's bytes, with clock fields taken out of the JSON/CSV/HTML files that carry them."""
    data = path.read_bytes()
    if path.suffix == ".json":
        try:
            obj = json.loads(data)
        except ValueError:
            return data
        return json.dumps(_drop_times(obj), sort_keys=True).encode()
    if path.suffix == ".pt":
        import torch

        h = hashlib.sha256()
        _hash_obj(_drop_times(torch.load(path, map_location="cpu", weights_only=False)), h)
        return h.digest()
    if path.suffix == ".csv":
        rows = [line.split(",") for line in data.decode("utf-8", "replace").splitlines()]
        keep = [i for i, name in enumerate(rows[0] if rows else []) if not re.search(TIME_KEY, name)]
        return "\n".join(",".join(r[i] for i in keep if i < len(r)) for r in rows).encode()
    if path.suffix == ".html":
        text = data.decode("utf-8", "replace")
        text = re.sub(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:?\d{2}|Z)?", "<date>", text)
        text = re.sub(r"\b\d+(\.\d+)? ?(s|min|seconds)\b", "<time>", text)
        return text.encode()
    return data


def _drop_times(obj):
    if isinstance(obj, dict):
        return {k: _drop_times(v) for k, v in obj.items() if not (isinstance(k, str) and re.search(TIME_KEY, k))}
    if isinstance(obj, list):
        return [_drop_times(v) for v in obj]
    return obj


def _hash_obj(obj, h) -> None:
    """A checkpoint's content, key by key: tensors by dtype, shape and bytes; the rest by repr."""
    import numpy as np
    import torch

    if isinstance(obj, dict):
        for k in sorted(obj, key=str):
            h.update(repr(k).encode())
            _hash_obj(obj[k], h)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _hash_obj(v, h)
    elif isinstance(obj, torch.Tensor):
        h.update(f"{obj.dtype}{tuple(obj.shape)}".encode() + obj.detach().cpu().contiguous().numpy().tobytes())
    elif isinstance(obj, np.ndarray):
        h.update(f"{obj.dtype}{obj.shape}".encode() + np.ascontiguousarray(obj).tobytes())
    else:
        h.update(repr(obj).encode())


def manifest(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not any(re.search(pat, rel) for pat, _ in VOLATILE):
            out[rel] = hashlib.sha256(stable_bytes(p)).hexdigest()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, required=True, help="write the manifest here")
    ap.add_argument("--against", type=Path, help="compare with this manifest (from another commit)")
    ap.add_argument("--keep", type=Path, help="keep the run folders here (default: a temporary folder)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="identical_"))
    for method in ("baseline", "adele"):
        adele("train", "--method", method, "--out", str(work / method), "--overwrite", *SETTINGS)
    adele("export-labels", str(work / "adele"), "--out", str(work / "export"), "--overwrite", "--device", "cpu")
    adele("report", str(work / "baseline"), str(work / "adele"), "--out", str(work / "report"), "--overwrite", "--device", "cpu")
    man = manifest(work)
    args.manifest.write_text(json.dumps(man, indent=1, sort_keys=True) + "\n")
    print(f"{len(man)} files hashed (left out: " + "; ".join(why for _, why in VOLATILE) + f"); manifest: {args.manifest}")
    if args.against is None:
        return 0
    old = json.loads(args.against.read_text())
    diff = sorted(k for k in set(old) | set(man) if old.get(k) != man.get(k))
    for k in diff:
        print(f"  differs: {k} ({'missing now' if k not in man else 'new' if k not in old else 'content'})")
    print("identical" if not diff else f"{len(diff)} file(s) differ")
    return 1 if diff else 0


if __name__ == "__main__":
    raise SystemExit(main())
