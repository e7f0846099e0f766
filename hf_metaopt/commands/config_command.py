"""Subcommands whose flags are a dataclass parser with YAML defaults (``--config``): pretrain, sweep."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["register_config_command"]


def register_config_command(subparsers, name: str, help: str, example: str, make_parser: Callable, main: Callable) -> None:
    """Add ``name`` with ``make_parser()``'s flags; ``main([], overrides=flags given)`` runs it.

    Only flags given on the command line reach ``main``, so that they, and not the parser's
    own defaults, override the ``--config`` YAML file.
    """
    template = make_parser()
    for action in template._actions:
        action.default = argparse.SUPPRESS
    parser = subparsers.add_parser(
        name, help=help, description=f"{help}. Example: {example}", parents=[template], add_help=False, conflict_handler="resolve",
    )

    def run(args: argparse.Namespace) -> int:
        main([], overrides={k: v for k, v in vars(args).items() if k not in ("command", "func")})
        return 0

    parser.set_defaults(func=run)
