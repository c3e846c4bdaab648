"""What several benchmark scripts share (so that no script imports another): the embedded data's hand-tuned recipe,
the consensus of noise realizations, and paired confidence intervals."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage, stats

#: the hand-tuned recipe of the tiled AAL set (``configs/colin27.yaml``), the benchmarks' recipe before the planner
PRESET = Path(__file__).resolve().parents[1] / "configs" / "colin27.yaml"


def consensus(votes: np.ndarray, sigma: float) -> np.ndarray:
    """``votes (C, N, H, W)`` counts -> ``(N, H, W) uint8`` argmax after an in-plane Gaussian of ``sigma`` px."""
    if sigma > 0:
        votes = ndimage.gaussian_filter(votes.astype(np.float32), sigma=(0, 0, sigma, sigma))
    return votes.argmax(0).astype(np.uint8)


def paired_ci(diffs, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of paired differences and its two-sided t-interval: (mean, low, high); NaN bounds for < 2 pairs."""
    d = np.asarray(diffs, dtype=float)
    m = float(d.mean())
    if d.size < 2:
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size))
    return m, m - half, m + half


def fmt_ci(m, lo, hi) -> str:
    """``+4.7 [+1.5, +7.9]`` (null or non-finite bounds: ``+4.7``); never a negative zero."""
    def pts(x):
        return f"{round(float(x), 1) + 0.0:+.1f}"
    ok = lo is not None and hi is not None and np.isfinite(lo) and np.isfinite(hi)
    return f"{pts(m)} [{pts(lo)}, {pts(hi)}]" if ok else pts(m)


#: where the result files live: one JSON file per benchmark configuration, read by benchmarks/render_docs.py
RESULTS_DIR = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
_REPO = Path(__file__).resolve().parents[1]


def _repo_relative(arg: str) -> str:
    """A command-line argument as it would be typed from the repository root: a path inside the repository relative to it,
    the home folder as ``~``, any other absolute path as ``PATH/<its last part>`` (no machine's own paths in the result
    files); ``--option=/abs/path`` likewise."""
    if arg.startswith("--") and "=" in arg:
        opt, value = arg.split("=", 1)
        return f"{opt}={_repo_relative(value)}"
    p = Path(arg)
    if p.is_absolute():
        try:
            return str(p.resolve().relative_to(_REPO))
        except ValueError:
            home = str(Path.home())
            if home != "/" and arg.startswith(home + "/"):
                return "~" + arg[len(home):]
            return f"PATH/{p.name}" if p.name else "PATH"
    return arg


def git_commit() -> dict:
    """``{"hash": HEAD or "unknown", "dirty": bool or None}``; dirty = tracked files differ from HEAD (untracked ones
    ignored, and so are the docs: Markdown pages and docs/, where result files are rewritten, change no figure)."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_REPO, capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs", ":!*.md"], cwd=_REPO,
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"hash": "unknown", "dirty": None}
    return {"hash": head, "dirty": bool(status.strip())}


def machine() -> dict:
    """What ran the benchmark: platform, Python, torch, CPU count and model, threads, the GPU when CUDA is up."""
    import os
    import platform

    info = {"platform": platform.platform(), "machine": platform.machine(), "python": platform.python_version(),
            "numpy": np.__version__, "cpu_count": os.cpu_count(), "cpu_model": "unknown",
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:  # the machine's memory (MemTotal), for figures measured against it
        info["memory_gb"] = round(int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal:")).split()[1]) / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["torch"] = None
    return info


def _plain(obj):
    """JSON-ready copy: numpy scalars and arrays to Python, NaN and infinities to None (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def write_result(name: str, settings: dict, results: dict, command: list[str] | None = None, out_dir: Path | None = None) -> Path:
    """Write ``docs/benchmarks/NAME.json``: {"benchmark", "command", "commit", "date", "machine", "settings", "results"}.

    ``command``: the argv that produced it (default ``sys.argv``, made repository-relative and prefixed with ``python``);
    ``settings``: what the run was asked for; ``results``: the figures, per seed / draw where there are several (NaN -> null).
    benchmarks/render_docs.py renders the docs' quoted numbers and tables from these files."""
    import datetime
    import json
    import sys

    if not name or "/" in name or name.endswith(".json"):
        raise ValueError(f"result name {name!r}: give a bare file stem, e.g. 'perf' (written to docs/benchmarks/perf.json)")
    argv = list(sys.argv if command is None else command)
    doc = {"benchmark": Path(argv[0]).stem if argv else name,
           "command": ["python"] + [_repo_relative(a) for a in argv],
           "commit": git_commit(),
           "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "machine": machine(), "settings": _plain(settings), "results": _plain(results)}
    out = Path(out_dir) if out_dir is not None else RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    print(f"result: {_repo_relative(str(path.resolve()))}", file=sys.stderr)
    return path


def add_result_options(ap, default: str) -> None:
    """``--result NAME`` and ``--result-dir DIR`` of a benchmark that writes a result file (``default``: how NAME is derived)."""
    ap.add_argument("--result", default=None, metavar="NAME",
                    help=f"write the figures to docs/benchmarks/NAME.json (default: {default}); configurations that must not "
                         "overwrite each other take their own NAME")
    ap.add_argument("--result-dir", type=Path, default=None, metavar="DIR",
                    help="write the result file to DIR instead of docs/benchmarks (with --smoke: only then is one written)")


def result_target(args, default_name: str, smoke: bool = False) -> tuple[str, Path | None] | None:
    """(name, folder) for :func:`write_result` from :func:`add_result_options`'s options; None for a smoke run without
    ``--result-dir`` (a smoke run never replaces a committed result)."""
    if smoke and args.result_dir is None:
        return None
    return args.result or default_name, args.result_dir
