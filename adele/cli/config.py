"""``adele config``: the default or resolved configuration."""
from __future__ import annotations

import argparse

from ..config import load_config
from ._common import Formatter


def add_parsers(sub) -> None:
    c = sub.add_parser("config", help="show the default or resolved configuration", formatter_class=Formatter,
                       description="Print the configuration as YAML: every field, with defaults and overrides applied.",
                       epilog="examples:\n  adele config show\n  adele config show --config colin27 --set train.epochs=5\n")
    csub = c.add_subparsers(dest="config_command", metavar="ACTION")
    cs = csub.add_parser("show", help="print the resolved config")
    c.set_defaults(func=cmd_config)
    cs.add_argument("--config", default=None, help="YAML file or preset name (colin27, segthor, voc, ...)")
    cs.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides, as for `adele train`")


def cmd_config(args: argparse.Namespace) -> int:
    if args.config_command != "show":
        args.parser.parse_args(["config", "--help"])
        return 2
    cfg = load_config(args.config, list(args.set))
    print(cfg.to_yaml(), end="")
    return 0
