"""``adele config``: the default or resolved configuration."""
from __future__ import annotations

import argparse

from ..config import load_config
from ._common import add_command, add_overrides


def add_parsers(sub) -> None:
    c = add_command(sub, "config", help="show the default or resolved configuration", func=cmd_config,
                    description="Print the configuration as YAML: every field, with defaults and overrides applied.",
                    examples="""
                        adele config show
                        adele config show --config colin27 --set train.epochs=5
                        """)
    csub = c.add_subparsers(dest="config_command", metavar="ACTION")
    cs = add_command(csub, "show", help="print the resolved config")
    cs.add_argument("--config", default=None, help="YAML file or preset name (colin27, segthor, voc, ...)")
    add_overrides(cs)


def cmd_config(args: argparse.Namespace) -> int:
    if args.config_command != "show":
        args.parser.parse_args(["config", "--help"])
        return 2
    cfg = load_config(args.config, list(args.set))
    print(cfg.to_yaml(), end="")
    return 0
