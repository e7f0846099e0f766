"""``hf-metaopt pretrain``: the momentum-attention pretraining experiment (recipes/momentum_pretrain.py)."""

from __future__ import annotations

from .config_command import register_config_command

HELP = "pretrain GPT vs MomentumGPT arms and compare perplexity and in-context accuracy"


def register(subparsers) -> None:
    """Add ``pretrain`` with the recipe's flags (its ``make_parser()``); YAML defaults via ``--config``."""
    from ..pretraining import arguments, main

    example = "hf-metaopt pretrain --config recipes/configs/momentum_tiny.yaml --seeds 0 1 2"
    register_config_command(subparsers, "pretrain", HELP, example, arguments.make_parser, main)
