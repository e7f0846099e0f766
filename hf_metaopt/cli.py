"""``hf-metaopt`` command line: one subcommand a module in :mod:`hf_metaopt.commands`.

Each command module defines ``register(subparsers)``, which lists it in ``hf-metaopt --help``.
``analyze``, ``pretrain`` and ``sweep`` take dataclass flags and parse them themselves, with one
:class:`~hf_metaopt.arguments.MetaoptParser` each (``main(argv)``, ``--config`` for defaults);
``tasks`` and ``push`` are plain argparse subcommands (their parser sets ``func``).
"""

from __future__ import annotations

import argparse
import sys

from .commands import analyze, pretrain, push, sweep, tasks
from .commands.signals import Terminated, sigterm_cleans_up

# Subcommands, in the order `--help` lists them.
COMMANDS = {"analyze": analyze, "tasks": tasks, "push": push, "pretrain": pretrain, "sweep": sweep}
# The commands whose flags are dataclass fields, parsed by the command's own MetaoptParser.
DATACLASS_COMMANDS = {"analyze": analyze.main, "pretrain": pretrain.main, "sweep": sweep.main}


def make_parser() -> argparse.ArgumentParser:
    """``hf-metaopt``'s parser: the list of commands, and the flags of ``tasks`` and ``push``."""
    parser = argparse.ArgumentParser(
        prog="hf-metaopt",
        description="In-context learning vs finetuning analysis (Dai et al., 2023) for transformers models. "
                    "`hf-metaopt COMMAND --help` shows a command's flags.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        module.register(sub)
    return parser


def _error(command: str, err: BaseException) -> None:
    """Print ``err`` as one line (messages from other libraries can span several)."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__
    print(f"hf-metaopt {command}: error: {text}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run one ``hf-metaopt`` command and return its exit status.

    0: done. 1: the work ran but something after it failed (a push, writing the run folder:
    the message says where the results are). 2: bad input or a fault found in the model or
    the data, said in one line naming the fix; nothing was written. 130: interrupted (Ctrl-C),
    143: terminated (SIGTERM); nothing half-written is left (a sweep says how many finished runs it keeps).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DATACLASS_COMMANDS:
        command, rest = argv[0], argv[1:]

        def run() -> int:
            return DATACLASS_COMMANDS[command](rest)
    else:
        parser = make_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        command = args.command

        def run() -> int:
            return args.func(args)
    try:
        with sigterm_cleans_up():
            result = run()
    except (ValueError, TypeError, FileNotFoundError, FloatingPointError) as err:
        _error(command, err)
        return getattr(err, "exit_code", 2)
    except OSError as err:  # the system refused something the checks could not foresee (disk full, ...)
        _error(command, err)
        return getattr(err, "exit_code", 1)
    except KeyboardInterrupt as err:
        how = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted"
        # A command that keeps finished work (a sweep's run folders) says so in a note on the exception.
        kept = getattr(err, "__notes__", None)
        print(f"hf-metaopt {command}: {how}; {kept[-1] if kept else 'nothing was written.'}", file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
