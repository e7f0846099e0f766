"""``hf-metaopt sweep``: a grid of analyses over models, tasks, seeds, learning rates, methods and controls.

A thin layer over :mod:`hf_metaopt.sweep`: the flags are the fields of its dataclasses and
``--config sweep.yaml`` sets their defaults. Under ``accelerate launch`` the jobs are split
between the processes.
"""

from __future__ import annotations

from .config_command import register_config_command

HELP = "run a resumable grid of analyses (several processes under accelerate launch) and summarise it"


def register(subparsers) -> None:
    """Add ``sweep`` with the sweep's flags; YAML defaults via ``--config``."""
    from ..sweep import main, make_parser

    example = "hf-metaopt sweep --config recipes/configs/sweep_offline.yaml --seeds 1 2"
    register_config_command(subparsers, "sweep", HELP, example, make_parser, main)
