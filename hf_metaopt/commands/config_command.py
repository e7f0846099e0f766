"""Subcommands whose flags are a dataclass parser with YAML defaults (``--config``): pretrain, sweep."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

__all__ = ["register_config_command"]


def register_config_command(subparsers, name: str, help: str, example: str, make_parser: Callable, main: Callable) -> None:
    """Add ``name`` with ``make_parser()``'s flags; ``main([], overrides=flags given)`` runs it.

    Only flags given on the command line reach ``main``, so that they, and not the parser's
    own defaults, override the ``--config`` YAML file; ``--help`` still shows each default.
    """
    template = make_parser()
    for action in template._actions:
        action.help = _with_default(action)
        action.default = argparse.SUPPRESS
    from .analyze import HelpFormatter

    parser = subparsers.add_parser(
        name, help=help, description=f"{help}. Example: {example}", parents=[template], add_help=False, conflict_handler="resolve",
        formatter_class=HelpFormatter,
    )

    def run(args: argparse.Namespace) -> int:
        main([], overrides={k: v for k, v in vars(args).items() if k not in ("command", "func")})
        return 0

    parser.set_defaults(func=run)


def _with_default(action: argparse.Action) -> str | None:
    """``action``'s help with its default appended (the flags' defaults are suppressed so the YAML can set them),
    unless the help names its default already or there is none to show."""
    text, default = action.help, action.default
    if text in (None, argparse.SUPPRESS) or default in (None, argparse.SUPPRESS) or re.search(r"\bdefault\b", text):
        return text
    if action.nargs == 0 and isinstance(default, bool) and action.option_strings[0].startswith("--no"):
        return text  # the --no-x twin of a switch: --x shows the default
    shown = " ".join("null" if v is None else str(v) for v in default) if isinstance(default, (list, tuple)) else getattr(default, "value", default)
    return f"{text} (default: {str(shown).replace('%', '%%')})"
