"""``hf-metaopt sweep``: a grid of analyses over models, tasks, seeds, learning rates, methods and controls.

A thin layer over :mod:`hf_metaopt.sweep`: the flags are the fields of its dataclasses and
``--config sweep.yaml`` sets their defaults. Under ``accelerate launch`` the jobs are split
between the processes.
"""

from __future__ import annotations

import argparse

HELP = "run a resumable grid of analyses (several processes under accelerate launch) and summarise it"


def register(subparsers) -> None:
    """Add ``sweep`` with the sweep's flags; YAML defaults via ``--config``."""
    from ..sweep import make_parser

    template = make_parser()
    for action in template._actions:
        # Only flags given on the command line reach the namespace, so that they, and
        # not the parser's own defaults, override the YAML file in run().
        action.default = argparse.SUPPRESS
    parser = subparsers.add_parser(
        "sweep", help=HELP,
        description=HELP + ". Example: hf-metaopt sweep --config recipes/configs/sweep_offline.yaml --seeds 1 2",
        parents=[template], add_help=False, conflict_handler="resolve",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..sweep import main

    given = {k: v for k, v in vars(args).items() if k not in ("command", "func")}
    main([], overrides=given)
    return 0
