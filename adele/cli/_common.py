"""What every command module of the CLI shares: the help formatter, the one-line error parser, common options."""
from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Callable

from ..errors import ConfigError

DEVICES = ["auto", "cpu", "cuda"]


def fmt(text: str) -> str:
    return textwrap.dedent(text).strip("\n") + "\n"


class LazyText(str):
    """A help text or epilog written when the help is shown, not when the parser is built: for texts that name what only
    a heavy module knows (the model registry imports torch, the noise recipes scipy), so that `adele --version` and
    `adele --help` import neither. ``make()`` returns the text; the string itself is a non-empty stand-in."""

    def __new__(cls, make: Callable[[], str]):
        self = super().__new__(cls, "(written when shown)")
        self.make = make
        return self


class Formatter(argparse.RawDescriptionHelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str:
        return action.help.make() if isinstance(action.help, LazyText) else super()._get_help_string(action)

    def _format_text(self, text: str) -> str:
        return super()._format_text(text.make() if isinstance(text, LazyText) else text)


class Parser(argparse.ArgumentParser):
    """argparse with the CLI's error format: one line, exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def add_overwrite(p: argparse.ArgumentParser, what: str) -> None:
    """``--overwrite``: every writing command refuses an existing output without it."""
    p.add_argument("--overwrite", action="store_true", help=f"replace an existing {what} (only one this command created)")


def add_run_folder(p: argparse.ArgumentParser, help: str, many: bool = False) -> None:
    """The run folder, positional in every command that reads a run; ``--run`` is the old spelling (see :func:`run_folder`).
    ``many``: one or more run folders (a list; :func:`run_folders`)."""
    p.add_argument("run", nargs="*" if many else "?", metavar="RUN", default=None, help=help)
    p.add_argument("--run", dest="run_option", default=None, metavar="RUN", help="deprecated spelling of RUN (removed in the next release)")


def run_folder(args: argparse.Namespace) -> str:
    """The RUN argument; the deprecated ``--run RUN`` still works for a release, with a warning line."""
    if args.run_option is not None:
        if args.run is not None:
            raise ConfigError(f"give the run folder once: `adele {args.command} RUN ...` (--run is its old spelling)")
        print(f"warning: --run is deprecated and will be removed in the next release; write `adele {args.command} {args.run_option} ...`",
              file=sys.stderr)
        args.run = args.run_option
    if args.run is None or args.run == []:
        raise ConfigError(f"RUN: name the run folder (the --out of `adele train`): `adele {args.command} RUN ...`")
    return args.run


def run_folders(args: argparse.Namespace) -> list[str]:
    """The RUN arguments of a command that takes several (:func:`add_run_folder` with ``many``)."""
    if args.run_option is not None and args.run:
        raise ConfigError(f"give the run folder once: `adele {args.command} RUN [RUN ...] ...` (--run is the old spelling of one RUN)")
    if args.run:
        return list(args.run)
    args.run = None
    return [run_folder(args)]
