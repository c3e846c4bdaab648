"""The ``adele`` command. Thin: one module per command group parses its arguments and calls the package.

``train`` (train, plan, demo), ``data``, ``noise``, ``config``, ``runs`` (report, analyze, predict,
export-labels), ``evaluate``; each ``add_parsers`` registers its commands with ``_common.add_command`` (name, help,
description, examples and the ``cmd_*`` function it runs), then adds each command's own arguments.
Every user mistake surfaces as ``error: <one line>`` and exit code 2.
Building the parser imports no torch, matplotlib or scipy: each command imports what it runs inside its ``cmd_*``
function, so that ``--help``, ``--version``, ``config show`` and ``data check`` answer at once
(benchmarks/bench_cli_startup.py).
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Optional, Sequence

from .. import safety
from .._version import __version__
from ..errors import AdeleError, ConfigError
from . import config, data, evaluate, noise, runs, train
from ._common import Formatter, Parser
from .train import train_config_from_args  # noqa: F401 - public: used by tests and scripts

EPILOG_MAIN = """\
examples:
  adele demo                                   # noise -> baseline -> ADELE on the embedded brain data
  adele train --data colin27 --method adele --out runs/adele --set data.noise=final
  adele noise --data colin27 --out data/colin27-noisy --recipe final --seed 0
  adele data export colin27 data/colin27
  adele config show                            # every setting and its default
  adele report runs/base runs/adele --out reports/c27  # HTML page + figures
  adele predict runs/adele --input scans/ --out masks/

Run `adele COMMAND --help` for the options of each command.
"""


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="adele",
        description="Train segmentation networks on noisy annotations with ADELE (adaptive early-learning correction, CVPR 2022).",
        epilog=EPILOG_MAIN,
        formatter_class=Formatter,
    )
    p.add_argument("--version", action="version", version=f"adele {__version__}")
    p.add_argument("--debug", action="store_true", help="show the full traceback of unexpected errors (also accepted after the command)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    train.add_parsers(sub)
    data.add_parsers(sub)
    noise.add_parsers(sub)
    config.add_parsers(sub)
    runs.add_parsers(sub)
    evaluate.add_parsers(sub)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command. Exit codes: 0 done; 2 a problem with the inputs or settings (one ``error:`` line);
    1 an unexpected error (one line naming a log file with the traceback; ``--debug`` shows it); 130 interrupted."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or bool(os.environ.get("ADELE_DEBUG"))
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    warnings.formatwarning = _one_line_warning
    args.parser = parser
    try:
        return _dispatch(args)
    except AdeleError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        # a location the user chose cannot be read or written (permissions, full disk, read-only, too long a name, ...)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}; choose a location you can read and write", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted; {_after_interrupt(args)}", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns bugs into one line plus a log file
        if debug:
            raise
        log = safety.crash_log(exc, argv)
        where = f"the traceback is in {log}" if log else "rerun with --debug for the traceback"
        print(f"error: unexpected {type(exc).__name__}: {_one_line(exc)[:300]}; this is a bug in adele, please report it ({where})", file=sys.stderr)
        return 1
    finally:
        safety.release_all()


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {' '.join(str(message).split())}\n"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _after_interrupt(args: argparse.Namespace) -> str:
    if args.command == "demo":
        return f"the demo folder is incomplete; run again with --out {args.out} --overwrite"
    if args.command in ("analyze", "config"):
        return "nothing to resume"
    if args.command != "train":
        return "nothing was written (outputs appear only when a command completes)"
    from ..run import files  # deferred: the run folder's files import torch, which the commands that read no run never need

    if files.model_path(args.out).is_file() and files.read_metrics(args.out) is not None:
        return f"but the run had already completed: {args.out} holds model.pt and metrics.json, nothing to resume"
    if files.list_checkpoints(Path(args.out)):
        return f"resume with `adele train --out {args.out} --resume`"
    if files.has_config(args.out):
        return f"no checkpoint was saved yet; start again with `adele train ... --out {args.out} --overwrite`"
    return "nothing was written"


def _dispatch(args: argparse.Namespace) -> int:
    for name in ("out", "data", "run", "run_option", "input", "path", "config", "raw", "devkit", "pseudo"):
        value = getattr(args, name, None)
        if isinstance(value, str) and not value.strip():
            shown = {"path": "PATH", "raw": "RAW", "devkit": "DEVKIT", "run": "RUN", "run_option": "--run"}.get(name, "--" + name)
            raise ConfigError(f"{shown}: empty path; name a file or folder")
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
