"""What every command module of the CLI shares: the help formatter, the one-line error parser, :func:`add_command` (a
command with the CLI's help layout) and the options several commands take."""
from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Callable, Optional

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


def add_command(sub, name: str, help: str, description: Optional[str] = None, *, examples: str = "", notes: str = "",
                preface: str = "", func: Optional[Callable[[argparse.Namespace], int]] = None) -> argparse.ArgumentParser:
    """Add the command (or sub-command) ``name`` to ``sub`` (what ``add_subparsers`` returned) and return its parser.

    ``help`` is its line in the parent's ``--help``; ``description`` opens its own, as one line (a paragraph written over
    several lines is joined with single spaces; the terminal wraps it). The epilog is ``preface``, then
    ``examples`` (one command a line, shown under "examples:", or "example:" when there is one), then ``notes``: each
    dedented, a blank line between. A part given as a :class:`LazyText` makes the whole epilog lazy (written when shown).
    ``func``: the ``cmd_*`` function the command runs (``set_defaults(func=...)``)."""
    parts = (preface, examples, notes)
    lazy = any(isinstance(part, LazyText) for part in parts)
    epilog = LazyText(lambda: _epilog(*parts)) if lazy else (_epilog(*parts) or None)
    if description is not None:
        description = " ".join(description.split())
    p = sub.add_parser(name, help=help, formatter_class=Formatter, description=description, epilog=epilog)
    if func is not None:
        p.set_defaults(func=func)
    return p


def _epilog(preface: str, examples: str, notes: str) -> str:
    made = [part.make() if isinstance(part, LazyText) else part for part in (preface, examples, notes)]
    preface, examples, notes = (fmt(part) if part else "" for part in made)
    if examples:
        examples = ("example:" if examples.count("\n") == 1 else "examples:") + "\n" + textwrap.indent(examples, "  ")
    return "\n".join(part for part in (preface, examples, notes) if part)


def add_overwrite(p: argparse.ArgumentParser, what: str) -> None:
    """``--overwrite``: every writing command refuses an existing output without it."""
    p.add_argument("--overwrite", action="store_true", help=f"replace an existing {what} (only one this command created)")


def add_device(p: argparse.ArgumentParser, help: str = "device (default: auto)", default: Optional[str] = "auto") -> None:
    """``--device`` auto, cpu or cuda."""
    p.add_argument("--device", default=default, choices=DEVICES, help=help)


def add_overrides(p: argparse.ArgumentParser, help: str = "config overrides, as for `adele train`") -> None:
    """``--set KEY=VALUE ...``: config overrides (a list of strings, parsed by :func:`adele.config.load_config`)."""
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help=help)


def add_out_folder(p: argparse.ArgumentParser) -> None:
    """``OUT``: the new folder a preparing or exporting command writes (:func:`add_overwrite` replaces one)."""
    p.add_argument("out", help="output folder (must not exist or be empty)")


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
