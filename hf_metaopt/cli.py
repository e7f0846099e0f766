"""``hf-metaopt`` command line: one subcommand a module in :mod:`hf_metaopt.commands`.

Each command module defines ``register(subparsers)`` (adds its parser and sets
``func``) so the commands stay independent of each other.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand modules, in the order `--help` lists them.
COMMANDS = ("analyze", "tasks", "push", "pretrain", "sweep")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-metaopt",
        description="In-context learning vs finetuning analysis (Dai et al., 2023) for transformers models.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"hf_metaopt.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        # Bad input: one clear line, no traceback.
        print(f"hf-metaopt {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hf-metaopt {args.command}: interrupted; nothing was written.", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
