"""``hf-metaopt pretrain``: the momentum-attention pretraining experiment (recipes/momentum_pretrain.py)."""

from __future__ import annotations

import argparse

from ..pretraining import arguments

HELP = "pretrain GPT vs MomentumGPT arms and compare perplexity and in-context accuracy"


def register(subparsers) -> None:
    """Add ``pretrain`` with the recipe's flags (its ``make_parser()``); YAML defaults via ``--config``."""
    template = arguments.make_parser()
    for action in template._actions:
        # Only flags given on the command line reach the namespace, so that they, and
        # not the parser's own defaults, override the YAML file in run().
        action.default = argparse.SUPPRESS
    parser = subparsers.add_parser(
        "pretrain", help=HELP,
        description=HELP + ". Example: hf-metaopt pretrain --config recipes/configs/momentum_tiny.yaml --seeds 0 1 2",
        parents=[template], add_help=False, conflict_handler="resolve",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..pretraining import main

    given = {k: v for k, v in vars(args).items() if k not in ("command", "func")}
    main([], overrides=given)
    return 0
