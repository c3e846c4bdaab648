"""How long the commands that need no network take to answer, beside `import torch` measured in the same run.

    python benchmarks/bench_cli_startup.py                  # writes docs/benchmarks/cli_startup.json
    python benchmarks/bench_cli_startup.py --repeats 3 --out /tmp/startup.json

Each command runs as a user runs it, `python -m adele ...` in a fresh interpreter, with this checkout's package. The
commands and the references (an empty interpreter, `import torch`) are interleaved over ``--repeats`` rounds, because
this machine is shared and noisy; min and median are kept, of the wall clock and of the CPU time (user + system) of the
child process. `data check` reads the embedded colin27 set exported to a temporary folder (every split, every file).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adele.data import export_colin27  # noqa: E402

ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
OUT = ROOT / "docs" / "benchmarks" / "cli_startup.json"
HEAVY = ("torch", "matplotlib", "scipy")
#: what each heavy package a command imports is told by, in a fresh interpreter after the command ran
PROBE = ("import sys; from adele.cli import main\n"
         "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
         f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)")


def timed(args: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one run of ``python *args``; a failure stops the benchmark."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    res = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=ENV, cwd=ROOT)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise SystemExit(f"python {' '.join(args)} failed ({res.returncode}): {res.stderr.strip()[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def heavy_imports(argv: list[str]) -> list[str]:
    res = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=ENV, cwd=ROOT)
    return res.stderr.strip().splitlines()[-1].split() if res.stderr.strip() else []


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "adele"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+uncommitted changes under adele/" if dirty else "")


def summary(samples: list[tuple[float, float]]) -> dict:
    wall, cpu = [w for w, _ in samples], [c for _, c in samples]
    return {"wall_s": {"min": round(min(wall), 3), "median": round(statistics.median(wall), 3)},
            "cpu_s": {"min": round(min(cpu), 3), "median": round(statistics.median(cpu), 3)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7, help="rounds; each runs every command and reference once (default: 7)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"results file (default: {OUT.relative_to(ROOT)})")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="adele-startup-") as tmp:
        data = export_colin27(Path(tmp) / "colin27")
        commands = {"adele --help": ["--help"], "adele --version": ["--version"], "adele config show": ["config", "show"],
                    "adele data check colin27-export": ["data", "check", str(data)]}
        references = {"python -c pass": ["-c", "pass"], "python -c 'import torch'": ["-c", "import torch"]}
        runs = {**{k: ["-m", "adele", *v] for k, v in commands.items()}, **references}
        samples: dict[str, list] = {k: [] for k in runs}
        for _ in range(args.repeats):
            for name, argv in runs.items():
                samples[name].append(timed(argv))
        imported = {name: heavy_imports(argv) for name, argv in commands.items()}
    result = {
        "script": "benchmarks/bench_cli_startup.py",
        "commit": git_commit(),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_1min": round(os.getloadavg()[0], 2)},
        "repeats": args.repeats,
        "commands": {name: {**summary(samples[name]), "imports": imported[name]} for name in commands},
        "references": {name: summary(samples[name]) for name in references},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    m = result["machine"]
    print(f"{m['cpu_count']} CPUs, {m['platform']}, Python {m['python']}, load {m['load_average_1min']}; "
          f"{args.repeats} rounds; commit {result['commit'][:12]}")
    print(f"| {'command':<34} | wall min | wall median | CPU min | CPU median | imports of {', '.join(HEAVY)} |")
    print(f"|{'-' * 36}|---------:|------------:|--------:|-----------:|---|")
    for name, row in [*result["commands"].items(), *result["references"].items()]:
        w, c = row["wall_s"], row["cpu_s"]
        print(f"| {name:<34} | {w['min']:7.2f}s | {w['median']:10.2f}s | {c['min']:6.2f}s | {c['median']:9.2f}s | "
              f"{', '.join(row.get('imports', [])) or ('none' if 'imports' in row else '')} |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
