"""Mutation check: each deliberate science bug must turn the default test suite red.

Copies the tracked files of the repository to a temporary folder, applies one mutation at a
time (a literal source edit that must match exactly once), runs the default
suite there with ``-x`` and prints which test failed first. Exit code 1 if any
mutation survives (the suite stays green).

    python benchmarks/mutation_check.py            # all mutations
    python benchmarks/mutation_check.py --only 2   # one of them
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# (name, file, original text, mutated text)
MUTATIONS = [
    ("background included in the mean Dice", "adele/metrics.py",
     "np.where(np.asarray(present)[..., 1:], np.asarray(scores, dtype=np.float64)[..., 1:], np.nan)",
     "np.where(np.asarray(present)[..., 0:], np.asarray(scores, dtype=np.float64)[..., 0:], np.nan)"),
    ("a class absent from label and prediction scored 0 instead of NaN", "adele/metrics.py",
     "dice = np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)",
     "dice = np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)"),
    ("correction started from the clean labels", "adele/engine/adele.py",
     "base = self.train.original if c.restart_from_original else self.train.labels",
     "base = self.train.clean if self.train.clean is not None else self.train.labels"),
    ("a correction round every epoch regardless of correction.every", "adele/core/schedule.py",
     "reset = epoch % self.every == 0",
     "reset = True"),
    ("a class flagged in the onset epoch instead of one epoch after (official)", "adele/core/curves.py",
     "flagged = current_epoch - flag_offset >= onset",
     "flagged = current_epoch >= onset"),
    ("consistency averaged over the masked pixels instead of all pixels", "adele/core/consistency.py",
     'normalize: str = "all",\n) -> Tensor:',
     'normalize: str = "masked",\n) -> Tensor:'),
    ("IoU points every K steps placed in check units instead of epochs", "adele/core/curves.py",
     "t = np.linspace(0, T * float(dt), T)",
     "t = np.linspace(0, T, T)"),
    ("flipped views not flipped back in multiscale_probs", "adele/prediction.py",
     "v = v.flip(-1) if flip else v",
     "v = v"),
    # issue 24: the six official behaviours
    ("1. consistency/correction on calibrated logits instead of the official 3x scale", "adele/config.py",
     "return con.temperature if con.temperature is not None else 1.0 / len(con.scales)",
     "return con.temperature if con.temperature is not None else 1.0"),
    ("1. the VOC loss divided by the number of scales", "adele/core/consistency.py",
     '"total": total if voc else total / len(logits_list)}',
     '"total": total / len(logits_list)}'),
    ("2. a round re-corrects classes already corrected (no freezing until the 10th epoch)", "adele/core/schedule.py",
     "            if self.done[c]:\n                self.due[c] = False",
     "            if False:\n                self.due[c] = False"),
    ("3. the flat-start trim never cuts below min_points (flags curves the official never flags)", "adele/core/curves.py",
     "trimmed = flat_start_length(y, trim_flat)",
     "trimmed = min(flat_start_length(y, trim_flat), max(0, y.size - min_points))"),
    ("4. class constraint from the original labels instead of the current ones", "adele/engine/adele.py",
     "c.tau_bg, c.tau_fg, None, self.ignore_index, c.correct_ignore)",
     "c.tau_bg, c.tau_fg, np.isin(np.arange(self.num_classes), self.train.original[i]), self.ignore_index, c.correct_ignore)"),
    ("5. VOC rule without the shrink guard", "adele/core/correction.py",
     "if guard is not None and shrink_guard(labels[n], candidate, *guard):",
     "if False:"),
    ("5. VOC rule constrains background-only images", "adele/core/correction.py",
     "ok = writable  # background-only image: no class constraint",
     "ok = writable & present"),
    ("6. official noise: dilation paints over other classes", "adele/noise/morph.py",
     "lab[back & (lab == 0)] = c",
     "lab[back & writable] = c"),
    ("6. official noise: iterations drawn per class", "adele/noise/morph.py",
     "zoomed = ndimage.binary_dilation(zoomed, STRUCT8, iterations=n_iter)",
     "zoomed = ndimage.binary_dilation(zoomed, STRUCT8, iterations=int(rng.integers(iterations[0], iterations[1] + 1)))"),
    ("6. the painted variant as the default noise", "adele/noise/morph.py",
     'variant: str = "official",',
     'variant: str = "painted",'),
]


def run(index: int, name: str, rel: str, old: str, new: str) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # every tracked file as it is in the working tree (tests read README.md, configs/ links into adele/presets)
        files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split("\n")
        for rel_path in filter(None, files):
            src, dst = REPO / rel_path, tmp / rel_path
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_symlink():
                os.symlink(os.readlink(src), dst)
            elif src.is_file():
                shutil.copy2(src, dst)
        if rel is not None:  # None: the control, the copy as it is
            path = tmp / rel
            text = path.read_text()
            if text.count(old) != 1:
                raise SystemExit(f"mutation {index} ({name}): the original text occurs {text.count(old)} times in {rel}; update this script")
            path.write_text(text.replace(old, new))
        env = dict(os.environ, PYTHONPATH=str(tmp), ADELE_NO_PROGRESS="1")
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"], cwd=tmp, env=env,
                              capture_output=True, text=True)
        failed = re.findall(r"^FAILED (\S+)", proc.stdout, re.M)
        caught = proc.returncode != 0
        what = failed[0] if failed else (proc.stdout.strip().splitlines() or ["?"])[-1]
        verdict = ("suite red: " + what) if index == 0 and caught else ("suite green" if index == 0 else
                   ("CAUGHT by " + what) if caught else "SURVIVED (suite green)")
        print(f"{index}. {name}: {verdict} ({time.perf_counter() - t0:.0f} s)", flush=True)
        return caught


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", type=int, nargs="*", help="mutation numbers (1-based); --only 1 is the smoke run (the control and one mutation, ~5 minutes on 2 cores)")
    args = ap.parse_args()
    chosen = args.only or range(1, len(MUTATIONS) + 1)
    if run(0, "control: no mutation", None, "", ""):
        print("the unmutated copy fails the suite: fix that first, a mutation would be 'caught' by accident")
        return 1
    results = [run(i, *MUTATIONS[i - 1]) for i in chosen]
    print(f"{sum(results)} of {len(results)} mutations caught")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
