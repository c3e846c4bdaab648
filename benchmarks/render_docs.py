"""Render every quoted benchmark number and results table in the docs from the result files in docs/benchmarks/.

    python benchmarks/render_docs.py            # rewrite the marked regions in place
    python benchmarks/render_docs.py --check    # exit 1 listing every region whose text differs from its file

Markers (in README.md, the other top-level *.md files and docs/**/*.md)::

    <!-- render: value FILE.json PATH FORMAT -->TEXT<!-- /render -->
    <!-- render: table NAME [ARGS] -->
    ...
    <!-- /render -->

``value``: TEXT becomes the value at PATH in docs/benchmarks/FILE.json, formatted with the Python format
spec FORMAT (``+.1f``, ``.3f``, ``d``, ``s``...) or ``ci`` (a {mean, low, high} dict as ``+4.7 [+1.5, +7.9]``).
PATH is dotted: ``results.summary.0.adele_diff``; a number indexes a list, ``key=value`` picks the one list
element whose ``key`` is ``value`` (``results.summary."recipe=final:target_area=1000".adele``), a segment with
dots or spaces is quoted (``results.step."ADELE, default config".ratio_to_baseline``), and ``@mean``, ``@std``,
``@min``, ``@max``, ``@len`` reduce a list (``results.summary.0.adele.@mean``).

``table``: the whole region becomes the markdown table of the renderer NAME (:data:`TABLES`) given ARGS
(result file names for ``results``).

A result file written before the result format (a bare list of bench_adele summary rows) is read as
``{"results": {"summary": ROWS}}`` with its commit, machine and command unknown.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import RESULTS_DIR, fmt_ci, paired_ci  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!-- render: (?P<kind>\w+) (?P<args>.*?) ?-->(?P<text>.*?)<!-- /render -->", re.S)
OPEN = re.compile(r"<!-- render: ")


class RenderError(Exception):
    """A marker that cannot be rendered: unknown kind or renderer, missing result file, path or key."""


# --- result files and paths --------------------------------------------------------------------------------------------

def load_result(name: str, results_dir: Path = RESULTS_DIR) -> dict:
    """The parsed result file ``results_dir/name`` (a legacy bare list of summary rows wrapped as a result)."""
    path = Path(results_dir) / name
    if not path.is_file():
        raise RenderError(f"{name}: no such result file in docs/benchmarks; run the benchmark that writes it or fix the marker")
    try:
        doc = json.loads(path.read_text())
    except ValueError as exc:
        raise RenderError(f"{name}: not valid JSON ({exc}); regenerate it with its benchmark") from None
    if isinstance(doc, list):
        doc = {"benchmark": "bench_adele", "command": "unknown", "commit": {"hash": "unknown", "dirty": None}, "date": "unknown",
               "machine": "unknown", "settings": {}, "results": {"summary": doc}}
    return doc


def split_path(path: str) -> list[str]:
    """``a.b."c.d".0`` -> ``["a", "b", "c.d", "0"]`` (quotes keep dots and spaces in a segment)."""
    parts, cur, quote, quoted = [], "", None, False
    for ch in path:
        if quote:
            if ch == quote:
                quote = None
            else:
                cur += ch
        elif ch in "\"'":
            quote, quoted = ch, True
        elif ch == ".":
            parts.append(cur)
            cur, quoted = "", False
        else:
            cur += ch
    if quote:
        raise RenderError(f"path {path!r}: unclosed quote")
    parts.append(cur)
    if any(p == "" for p in parts):
        raise RenderError(f"path {path!r}: empty segment (two dots in a row, or a dot at an end)")
    return parts


REDUCE = {"@mean": lambda v: float(np.mean(v)), "@std": lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
          "@min": min, "@max": max, "@len": len}


def lookup(doc, path: str, name: str = "result"):
    """The value at dotted ``path`` in ``doc`` (see the module's docstring); a RenderError names the file and the segment."""
    value, seen = doc, []
    for seg in split_path(path):
        where = f"{name}: {'.'.join(seen) or '(top)'}"
        if seg in REDUCE and isinstance(value, list):
            try:
                value = REDUCE[seg]([v for v in value if v is not None])
            except (TypeError, ValueError) as exc:
                raise RenderError(f"{where}: cannot apply {seg} ({exc})") from None
        elif isinstance(value, dict):
            if seg not in value:
                keys = ", ".join(list(value)[:12]) + (", ..." if len(value) > 12 else "")
                raise RenderError(f"{where} has no key {seg!r} (its keys: {keys}); fix the marker's path")
            value = value[seg]
        elif isinstance(value, list):
            if re.fullmatch(r"-?\d+", seg):
                if not -len(value) <= int(seg) < len(value):
                    raise RenderError(f"{where}: index {seg} out of range (a list of {len(value)}); fix the marker's path")
                value = value[int(seg)]
            elif "=" in seg:
                key, want = seg.split("=", 1)
                hits = [v for v in value if isinstance(v, dict) and str(v.get(key)) == want]
                if len(hits) != 1:
                    raise RenderError(f"{where}: {len(hits)} elements with {key} = {want!r} (one needed); fix the marker's path")
                value = hits[0]
            else:
                raise RenderError(f"{where} is a list; index it with a number or key=value, not {seg!r}")
        else:
            raise RenderError(f"{where} is {value!r}, not a dict or list; the path goes past it at {seg!r}")
        seen.append(seg)
    return value


def format_value(value, spec: str) -> str:
    """``value`` with Python format ``spec``, or ``ci``: {mean, low, high} -> ``+4.7 [+1.5, +7.9]`` (null bounds: ``+4.7``)."""
    if spec == "ci":
        if not (isinstance(value, dict) and {"mean", "low", "high"} <= set(value)):
            raise RenderError(f"format 'ci' needs a {{mean, low, high}} dict, got {value!r}")
        return fmt_ci(value["mean"], value["low"], value["high"])
    if value is None:
        return "n/a"
    try:
        return format(value, spec)
    except (TypeError, ValueError) as exc:
        raise RenderError(f"cannot format {value!r} with {spec!r} ({exc})") from None


# --- tables ------------------------------------------------------------------------------------------------------------

#: the competitors of the ``results`` table, in column order: (header, keys in a summary row (first found wins), the
#: bench_adele variant that must have been trained for it, why it can be missing when that variant was trained)
COMPETITORS = (
    ("baseline, last epoch", ("baseline_noisy",), "baseline_noisy", ""),
    ("baseline, best val epoch (noisy val labels)", ("baseline_bestval_noisy",), "baseline_noisy",
     "its runs have no best-checkpoint test scores"),
    ("baseline, best val epoch (clean val labels)", ("baseline_bestval_clean", "baseline_bestval"), "baseline_noisy",
     "its runs have no best-checkpoint test scores"),
    ("ADELE, last epoch", ("adele",), "adele", ""),
    ("ADELE (default, model.pt), best val epoch (noisy val labels)", ("adele_bestval_noisy",), "adele",
     "its runs have no best-checkpoint test scores"),
    ("clean labels", ("baseline_clean",), "baseline_clean", ""),
)
#: paired differences shown in a column of their own: (header, minuend, subtrahend)
VERSUS = (("ADELE (model.pt) - early stopping (noisy val labels)", "adele_bestval_noisy", "baseline_bestval_noisy"),)


def _machine_line(doc: dict) -> str:
    m = doc.get("machine")
    if not isinstance(m, dict):
        return "machine unknown"
    cpu = f"{m.get('cpu_model', 'unknown CPU')}, {m.get('cpu_count', '?')} cores, {m.get('torch_threads', '?')} torch threads"
    return f"{cpu}" + (f", {m['gpu']}" if m.get("gpu") else "") + f", Python {m.get('python', '?')}, torch {m.get('torch', '?')}"


def _commit_line(doc: dict) -> str:
    c = doc.get("commit")
    if not isinstance(c, dict) or c.get("hash", "unknown") == "unknown":
        return "commit unknown"
    return f"commit {c['hash'][:10]}" + (" with uncommitted changes" if c.get("dirty") else "")


def table_results(args: list[str], load) -> str:
    """bench_adele's result files -> one row per (dataset, noise recipe, training recipe) and one column per competitor present
    (:data:`COMPETITORS`): test mean Dice (mean over seeds) and, paired by seed, the difference to the baseline's last epoch
    in Dice points with its 95% t-interval; a missing cell is "—" with the reason, from the file, in a note under the table;
    the footer names each file's machine, commit and seeds."""
    if not args:
        raise RenderError("table results: name at least one bench_adele result file")
    rows = []  # (file, doc, summary row)
    for name in args:
        doc = load(name)
        summary = doc.get("results", {}).get("summary")
        if not isinstance(summary, list):
            raise RenderError(f"{name}: no results.summary (not a bench_adele result file?)")
        rows += [(name, doc, r) for r in summary]

    def key_of(row: dict, keys) -> str | None:
        return next((k for k in keys if isinstance(row.get(k), list)), None)

    cols = [c for c in COMPETITORS if any(key_of(r, c[1]) for _, _, r in rows)]
    versus = [v for v in VERSUS if any(isinstance(r.get(v[1]), list) and isinstance(r.get(v[2]), list) for _, _, r in rows)]
    head = ["data", "noise", "training recipe", "labels vs clean"] + [c[0] for c in cols] + [v[0] for v in versus]
    out = ["| " + " | ".join(head) + " |", "|---|---|---|---:|" + "---:|" * (len(cols) + len(versus))]
    notes: dict[str, int] = {}
    for name, doc, r in rows:
        cells = [r.get("dataset", "?"), f"`{r.get('recipe', '?')}`", "planned" if r.get("config") == "plan" else str(r.get("config", "?")),
                 "n/a" if r.get("labels_dice_with_clean") is None else f"{r['labels_dice_with_clean']:.3f}"]
        base = r.get("baseline_noisy")
        for header, keys, variant, why in cols:
            k = key_of(r, keys)
            if k is None:
                ran = (doc.get("settings") or {}).get("variants")
                if ran is None:
                    reason = f"{header}: not in {name} for {r.get('dataset')} `{r.get('recipe')}` (the file does not list its variants)"
                elif variant not in ran:
                    reason = f"{header}: not run for {name} (its variants: {', '.join(ran)}; needs {variant})"
                else:
                    reason = f"{header}: missing from {name}" + (f" ({why})" if why else "")
                mark = notes.setdefault(reason, len(notes) + 1)
                cells.append(f"—<sup>{mark}</sup>")
                continue
            vals = np.array([np.nan if v is None else v for v in r[k]], dtype=float)
            cell = f"{np.nanmean(vals):.3f}"
            if k != "baseline_noisy" and base is not None and len(base) == len(vals) and len(vals) > 0:
                d = 100 * (vals - np.array([np.nan if v is None else v for v in base], dtype=float))
                if np.isfinite(d).all():
                    m, lo, hi = paired_ci(d)
                    cell += f" ({fmt_ci(m, lo, hi)})"
            cells.append(cell)
        for header, a, b in versus:
            if not (isinstance(r.get(a), list) and isinstance(r.get(b), list) and len(r[a]) == len(r[b])):
                cells.append("—")
                continue
            d = 100 * (np.array(r[a], dtype=float) - np.array(r[b], dtype=float))
            m, lo, hi = paired_ci(d)
            cells.append(f"{fmt_ci(m, lo, hi)}, ahead on {int((d > 0).sum())} of {d.size}")
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append("Test mean Dice, mean over seeds; in parentheses the difference to the baseline's last epoch, paired by seed, "
               "in Dice points with its 95% t-interval" + ("; the last column pairs ADELE's model.pt (its best epoch on the noisy "
               "validation labels) with the baseline's (early stopping on the same labels), seed by seed." if versus else "."))
    for reason, mark in notes.items():
        out.append(f"<sup>{mark}</sup> {reason}.")
    for name in dict.fromkeys(args):
        doc = next(d for n, d, _ in rows if n == name) if any(n == name for n, _, _ in rows) else load(name)
        seeds = sorted({s for n, _, r in rows if n == name for s in r.get("seeds", [])}) or "unknown"
        clean = sorted({s for n, _, r in rows if n == name for s in r.get("baseline_clean_seeds", [])})
        out.append(f"`{name}`: seeds {seeds}" + (f" (clean labels: seeds {clean}, their mean)" if clean else "")
                   + f"; {_machine_line(doc)}; {_commit_line(doc)}; date {doc.get('date', 'unknown')}.")
    return "\n".join(out)


#: table renderers by the NAME of ``<!-- render: table NAME ARGS -->``: fn(args, load) -> markdown
TABLES = {"results": table_results}


# --- documents ---------------------------------------------------------------------------------------------------------

def render_region(kind: str, args: str, load) -> str:
    """The text a marker's region should hold."""
    if kind == "value":
        parts = args.split()
        if len(parts) < 3:
            raise RenderError(f"value marker {args!r}: needs FILE.json PATH FORMAT")
        name, spec, path = parts[0], parts[-1], " ".join(parts[1:-1])
        return format_value(lookup(load(name), path, name), spec)
    if kind == "table":
        parts = args.split()
        if not parts or parts[0] not in TABLES:
            raise RenderError(f"table marker {args!r}: unknown renderer (known: {', '.join(TABLES)})")
        return "\n" + TABLES[parts[0]](parts[1:], load) + "\n"
    raise RenderError(f"marker kind {kind!r}: unknown (value or table)")


def render_text(text: str, load, where: str = "doc") -> tuple[str, list[str]]:
    """(text with every marked region rendered, one line per region whose old text differed). Markers right after a backtick
    (quoted in inline code) are left alone. A marker without its ``<!-- /render -->`` is an error."""
    diffs: list[str] = []
    out, pos = [], 0
    for o in OPEN.finditer(text):
        if o.start() < pos or (o.start() > 0 and text[o.start() - 1] == "`"):
            continue  # inside the region just rendered, or quoted in inline code
        line = text.count("\n", 0, o.start()) + 1
        m = MARKER.match(text, o.start())
        inner = m and next((i for i in OPEN.finditer(m["text"]) if not (i.start() > 0 and m["text"][i.start() - 1] == "`")), None)
        if m is None or inner is not None:
            raise RenderError(f"{where}:{line}: a render marker without its closing <!-- /render -->")
        try:
            new = render_region(m["kind"], m["args"].strip(), load)
        except RenderError as exc:
            raise RenderError(f"{where}:{line}: {exc}") from None
        if new != m["text"]:
            old = m["text"].strip().replace("\n", " ")
            diffs.append(f"{where}:{line}: {m['kind']} {m['args'].strip()}: the doc has {old[:80]!r}, the file gives "
                         f"{new.strip().replace(chr(10), ' ')[:80]!r}")
        out += [text[pos:m.start("text")], new]
        pos = m.end("text")
    out.append(text[pos:])
    return "".join(out), diffs


def doc_files(root: Path = REPO) -> list[Path]:
    """README.md and the other top-level *.md files, and docs/**/*.md."""
    return sorted(root.glob("*.md")) + sorted((root / "docs").rglob("*.md"))


def run(check: bool, root: Path = REPO, results_dir: Path | None = None, files: list[Path] | None = None) -> tuple[int, list[str]]:
    """Render (or with ``check`` only compare) every doc; (exit code, lines to print): 1 when ``check`` found a difference."""
    cache: dict[str, dict] = {}

    def load(name: str) -> dict:
        if name not in cache:
            cache[name] = load_result(name, results_dir or root / "docs" / "benchmarks")
        return cache[name]

    lines = []
    for path in files if files is not None else doc_files(root):
        text = path.read_text()
        rel = path.relative_to(root) if path.is_relative_to(root) else path
        new, diffs = render_text(text, load, str(rel))
        lines += diffs
        if not check and new != text:
            path.write_text(new)
            lines.append(f"rendered {rel} ({len(diffs)} region(s) changed)")
    return (1 if check and any(True for _ in lines) else 0), lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 listing every region whose text differs from its file")
    args = ap.parse_args(argv)
    try:
        code, lines = run(args.check)
    except RenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    if args.check and code == 0:
        print("every rendered region matches its result file")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
