"""``hf-metaopt sweep``: a grid of analyses over models, tasks, seeds, learning rates, methods and controls.

A thin layer over :mod:`hf_metaopt.sweep`: the flags are the fields of its dataclasses and
``--config sweep.yaml`` sets their defaults. Under ``accelerate launch`` (one machine or
several) the processes share the jobs.
"""

from __future__ import annotations

from collections.abc import Sequence

from .formatting import HelpFormatter

__all__ = ["main", "make_parser", "register"]

HELP = "run a resumable grid of analyses (several processes under accelerate launch) and summarise it"
EXAMPLE = "hf-metaopt sweep --config recipes/configs/sweep_offline.yaml --seeds 1 2"


def make_parser():
    """The sweep's parser (:func:`hf_metaopt.sweep.make_parser`) as ``hf-metaopt sweep``."""
    from ..sweep import make_parser

    return make_parser(prog="hf-metaopt sweep", description=f"{HELP}. Example: {EXAMPLE}", formatter_class=HelpFormatter)


def register(subparsers) -> None:
    """List ``sweep`` in ``hf-metaopt --help``; :func:`main` parses its flags."""
    subparsers.add_parser("sweep", help=HELP, add_help=False)


def main(argv: Sequence[str] | None = None) -> int:
    """``hf-metaopt sweep ARGS``: YAML defaults via ``--config``, flags override them; the process's heap hands
    large blocks back as soon as they are freed (:func:`~hf_metaopt.heap.return_large_blocks`)."""
    from ..heap import return_large_blocks
    from ..sweep import main

    return_large_blocks()
    main(argv, parser=make_parser())
    return 0
