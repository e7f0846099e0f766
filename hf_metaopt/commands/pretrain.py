"""``hf-metaopt pretrain``: the momentum-attention pretraining experiment (recipes/momentum_pretrain.py)."""

from __future__ import annotations

from collections.abc import Sequence

from .formatting import HelpFormatter

__all__ = ["main", "make_parser", "register"]

HELP = "pretrain GPT vs MomentumGPT arms and compare perplexity and in-context accuracy"
EXAMPLE = "hf-metaopt pretrain --config recipes/configs/momentum_tiny.yaml --seeds 0 1 2"


def make_parser():
    """The experiment's parser (:func:`hf_metaopt.pretraining.make_parser`) as ``hf-metaopt pretrain``."""
    from ..pretraining import make_parser

    return make_parser(prog="hf-metaopt pretrain", description=f"{HELP}. Example: {EXAMPLE}", formatter_class=HelpFormatter)


def register(subparsers) -> None:
    """List ``pretrain`` in ``hf-metaopt --help``; :func:`main` parses its flags."""
    subparsers.add_parser("pretrain", help=HELP, add_help=False)


def main(argv: Sequence[str] | None = None) -> int:
    """``hf-metaopt pretrain ARGS``: YAML defaults via ``--config``, flags override them."""
    from ..pretraining import main

    main(argv, parser=make_parser())
    return 0
