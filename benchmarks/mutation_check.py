"""Mutation check: each deliberate science bug must turn the tests red.

Copies the tracked files of the repository to a temporary folder, applies one mutation at a
time (a literal source edit that must match exactly once), runs the tests named for that
mutation there (its 5th field; ``--full``: the whole default suite) with ``-x`` and prints
which test failed first. Before the mutations, a control runs the same tests on the
unmutated copy (they must pass). Exit code 1 if any mutation survives (its tests stay green).

    python benchmarks/mutation_check.py            # all mutations, each against its own tests
    python benchmarks/mutation_check.py --only 2   # one of them
    python benchmarks/mutation_check.py --full     # each against the whole default suite (slow)
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

# the tests that must catch a mutation: pytest arguments (files or node ids), run with -x
SCIENCE = "tests/engine/test_adele_science.py"
E2E = "tests/engine/test_adele_e2e.py"

# (name, file, original text, mutated text, tests that catch it)
MUTATIONS = [
    ("background included in the mean Dice", "adele/metrics.py",
     "np.where(np.asarray(present)[..., 1:], np.asarray(scores, dtype=np.float64)[..., 1:], np.nan)",
     "np.where(np.asarray(present)[..., 0:], np.asarray(scores, dtype=np.float64)[..., 0:], np.nan)",
     ("tests/test_metrics.py", "tests/test_evaluate.py")),
    ("a class absent from label and prediction scored 0 instead of NaN", "adele/metrics.py",
     "dice = np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)",
     "dice = np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)",
     ("tests/test_metrics.py", "tests/noise/test_noise_report.py")),
    ("correction started from the clean labels", "adele/engine/method.py",
     "base = self.train.original if c.restart_from_original else self.train.labels",
     "base = self.train.clean if self.train.clean is not None else self.train.labels",
     (f"{SCIENCE}::test_clean_labels_never_influence_training", f"{E2E}::test_area_guard_stops_a_class_and_says_so")),
    ("a correction round every epoch regardless of correction.every", "adele/core/schedule.py",
     "reset = epoch % self.every == 0",
     "reset = True",
     ("tests/core/test_schedule.py",)),
    ("a class flagged in the onset epoch instead of one epoch after (official)", "adele/core/curves.py",
     "flagged = current_epoch - rule.flag_offset >= onset",
     "flagged = current_epoch >= onset",
     ("tests/core/test_curves.py",)),
    ("consistency averaged over the masked pixels instead of all pixels", "adele/core/consistency.py",
     'normalize: str = "all",\n) -> Tensor:',
     'normalize: str = "masked",\n) -> Tensor:',
     ("tests/core/test_consistency.py",)),
    ("IoU points every K steps placed in check units instead of epochs", "adele/core/curves.py",
     "t = np.linspace(0, T * float(dt), T)",
     "t = np.linspace(0, T, T)",
     ("tests/core/test_curves.py",)),
    ("flipped views not flipped back in multiscale_probs", "adele/probabilities.py",
     "v = v.flip(-1) if flip else v",
     "v = v",
     (f"{SCIENCE}::test_multiscale_probs_restores_mode_and_undoes_flips",)),
    # issue 24: the six official behaviours
    ("1. consistency/correction on calibrated logits instead of the official 3x scale", "adele/config/settings.py",
     "return con.temperature if con.temperature is not None else 1.0 / len(con.scales)",
     "return con.temperature if con.temperature is not None else 1.0",
     (f"{SCIENCE}::test_correction_pass_reads_the_official_logit_scale",)),
    ("1. the VOC loss divided by the number of scales", "adele/core/consistency.py",
     'return total if form == "voc" else total / n_scales',
     "return total / n_scales",
     ("tests/core/test_consistency.py",)),
    ("2. a round re-corrects classes already corrected (no freezing until the 10th epoch)", "adele/core/schedule.py",
     "            if self.done[c]:\n                self.due[c] = False",
     "            if False:\n                self.due[c] = False",
     ("tests/core/test_schedule.py",)),
    ("3. the flat-start trim never cuts below min_points (flags curves the official never flags)", "adele/core/curves.py",
     "trimmed = flat_start_length(y, trim_flat)",
     "trimmed = min(flat_start_length(y, trim_flat), max(0, y.size - min_points))",
     ("tests/core/test_curves.py",)),
    ("4. class constraint from the original labels instead of the current ones", "adele/engine/method.py",
     "c.tau_bg, c.tau_fg, None, self.ignore_index, c.correct_ignore,",
     "c.tau_bg, c.tau_fg, np.isin(np.arange(self.num_classes), self.train.original[i]), self.ignore_index, c.correct_ignore,",
     (f"{SCIENCE}::test_class_constraint_reads_the_current_labels",)),
    ("5. VOC rule without the shrink guard", "adele/core/correction.py",
     "if guard is not None and shrink_guard(labels[n], candidate, *guard):",
     "if False:",
     ("tests/core/test_correction.py",)),
    ("5. VOC rule constrains background-only images", "adele/core/correction.py",
     "ok = writable  # background-only image: no class constraint",
     "ok = writable & present",
     ("tests/core/test_correction.py",)),
    ("6. official noise: dilation paints over other classes", "adele/noise/morph.py",
     "lab[back & (lab == 0)] = c",
     "lab[back & writable] = c",
     ("tests/noise/test_morph.py",)),
    ("6. official noise: iterations drawn per class", "adele/noise/morph.py",
     "zoomed = ndimage.binary_dilation(zoomed, STRUCT8, iterations=n_iter)",
     "zoomed = ndimage.binary_dilation(zoomed, STRUCT8, iterations=int(rng.integers(iterations[0], iterations[1] + 1)))",
     ("tests/noise/test_morph.py",)),
    ("6. the painted variant as the default noise", "adele/noise/morph.py",
     'variant: str = "official",',
     'variant: str = "painted",',
     ("tests/noise/test_morph.py",)),
    # issue 38: the per-class bars and the area guard
    ("per-class bars from the confidences of the labelled pixels instead of the predicted ones", "adele/engine/method.py",
     "self.hist += confidence_histogram(pred, conf, C)",
     "self.hist += confidence_histogram(st.train.labels[i], conf, C)",
     (f"{SCIENCE}::test_per_class_bars_come_from_the_predictions",)),
    ("area guard measured against the round's starting labels instead of the noisy ones (engine)", "adele/engine/method.py",
     "area_guard(base, after, self.train.original, classes, c.guard_area)",
     "area_guard(base, after, base, classes, c.guard_area)",
     (f"{SCIENCE}::test_area_guard_measures_against_the_noisy_labels_not_the_rounds_start",)),
    ("area guard measured against the round's starting labels instead of the noisy ones (core)", "adele/core/correction.py",
     "ref_img, base_img = areas_per_image(reference, C), areas_per_image(base, C)",
     "ref_img, base_img = areas_per_image(base, C), areas_per_image(base, C)",
     ("tests/core/test_correction.py",)),
    ("area guard fires on a round that moves a class back toward its noisy area", "adele/core/correction.py",
     "if abs(after - 1.0) > max_change and abs(after - 1.0) > abs(before - 1.0):",
     "if abs(after - 1.0) > max_change:",
     ("tests/core/test_correction.py::test_area_guard_fires_only_when_the_round_moves_a_class_away",)),
    ("area guard does not re-check the other classes after a rollback", "adele/core/correction.py",
     "        fired.update(more)\n",
     "        fired.update(more)\n        classes = [c for c in classes if c in fired]\n",
     ("tests/core/test_correction.py::test_area_guard_rechecks_the_other_classes_after_a_rollback",)),
    ("area guard blind to erasure in one image", "adele/core/correction.py",
     "        if ids:\n            out[i] =",
     "        if False:\n            out[i] =",
     ("tests/core/test_correction.py::test_area_guard_catches_erasure_in_one_image_that_growth_in_another_hides",)),
    ("schedule once re-corrects every class flagged so far", "adele/core/schedule.py",
     "            self.flagged.update(new)\n            return new\n",
     "            self.flagged.update(new)\n            return sorted(self.flagged) if new else []\n",
     ("tests/core/test_schedule.py",)),
    ("correction.weights best_val reads the current weights", "adele/engine/trainer.py",
     "self.correction_model(), self.device, self.dist)\n",
     "self.eval_model, self.device, self.dist)\n",
     ("tests/engine/test_train_e2e.py::test_correction_with_the_best_noisy_val_weights",)),
    ("bars over the candidate changes rank every predicted pixel", "adele/engine/method.py",
     "                keep = (pred != lab) & (lab != ign)",
     "                keep = (pred != lab) | (lab != ign)",
     (f"{SCIENCE}::test_bars_over_the_candidate_changes_rank_only_the_pixels_whose_label_differs",)),
    ("bars over the candidate changes read by the labelled class instead of the predicted one", "adele/engine/method.py",
     "self.hist += confidence_histogram(pred[keep], conf[keep], C)",
     "self.hist += confidence_histogram(lab[keep], conf[keep], C)",
     (f"{SCIENCE}::test_bars_over_the_candidate_changes_rank_only_the_pixels_whose_label_differs",)),
]


def copy_tracked(dst: Path) -> None:
    """Every tracked file as it is in the working tree (tests read README.md, configs/ links into adele/presets)."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split("\n")
    for rel_path in filter(None, files):
        src, out = REPO / rel_path, dst / rel_path
        out.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), out)
        elif src.is_file():
            shutil.copy2(src, out)


def run(index: int, name: str, rel: str | None, old: str, new: str, tests: tuple[str, ...]) -> bool:
    """Apply mutation ``index`` (rel None: the control, the copy as it is) and run ``tests`` (empty: the default
    suite) with -x; True when they fail."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        copy_tracked(tmp)
        if rel is not None:
            path = tmp / rel
            text = path.read_text()
            if text.count(old) != 1:
                raise SystemExit(f"mutation {index} ({name}): the original text occurs {text.count(old)} times in {rel}; update this script")
            path.write_text(text.replace(old, new))
        env = dict(os.environ, PYTHONPATH=str(tmp), ADELE_NO_PROGRESS="1")
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests], cwd=tmp, env=env,
                              capture_output=True, text=True)
        failed = re.findall(r"^FAILED (\S+)", proc.stdout, re.M)
        caught = proc.returncode != 0
        what = failed[0] if failed else (proc.stdout.strip().splitlines() or ["?"])[-1]
        verdict = ("tests red: " + what) if index == 0 and caught else ("tests green" if index == 0 else
                   ("CAUGHT by " + what) if caught else "SURVIVED (tests green)")
        print(f"{index}. {name}: {verdict} ({time.perf_counter() - t0:.0f} s)", flush=True)
        return caught


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", type=int, nargs="*", help="mutation numbers (1-based)")
    ap.add_argument("--full", action="store_true", help="run the whole default suite for each mutation (and the "
                    "control) instead of the tests named for it (about 5 minutes a mutation on 2 cores)")
    args = ap.parse_args()
    chosen = args.only or range(1, len(MUTATIONS) + 1)
    bad = [i for i in chosen if not 1 <= i <= len(MUTATIONS)]
    if bad:
        ap.error(f"--only: no mutation {bad} (there are {len(MUTATIONS)}, numbered from 1)")
    tests = {i: () if args.full else MUTATIONS[i - 1][4] for i in chosen}
    control = () if args.full else tuple(dict.fromkeys(t for i in chosen for t in tests[i]))
    if run(0, "control: no mutation", None, "", "", control):
        print("the unmutated copy fails the tests: fix that first, a mutation would be 'caught' by accident")
        return 1
    results = [run(i, *MUTATIONS[i - 1][:4], tests[i]) for i in chosen]
    print(f"{sum(results)} of {len(results)} mutations caught")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
