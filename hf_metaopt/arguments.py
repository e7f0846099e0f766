"""Dataclass arguments with YAML defaults: ``--config file.yaml`` sets defaults, flags override them.

Shared by the recipes, ``hf-metaopt pretrain`` and ``hf-metaopt sweep`` (trl's pattern:
``HfArgumentParser`` over dataclasses, a YAML file of ``flag_name: value`` for defaults).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser

__all__ = ["apply_yaml_defaults", "parse_with_config"]


def apply_yaml_defaults(parser: argparse.ArgumentParser, path: str | Path) -> None:
    """Set the parser's defaults from a YAML mapping of ``flag_name: value``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config: no such YAML file '{path}'")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"--config: '{path}' must hold a mapping of argument names to values")
    known = {action.dest for action in parser._actions}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"--config: '{path}' sets unknown argument(s) {unknown}; see --help for the names")
    for action in parser._actions:
        if action.dest in values:
            action.required = False  # a YAML default satisfies a required flag (e.g. output_dir)
    parser.set_defaults(**values)


def parse_with_config(
    parser: HfArgumentParser,
    argv: list[str] | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    default_config: str | Path | None = None,
) -> tuple[Any, ...]:
    """Parse ``argv`` (default ``sys.argv[1:]``) into the parser's dataclasses.

    ``--config`` (default ``default_config``) names the YAML defaults; ``overrides``
    (values already parsed elsewhere, e.g. by the ``hf-metaopt`` subcommand) take
    precedence over the YAML file, as flags do.
    """
    overrides = dict(overrides or {})
    argv = list(sys.argv[1:] if argv is None and not overrides else argv or [])
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=overrides.pop("config", None) or default_config)
    known, rest = pre.parse_known_args(argv)
    if known.config:
        apply_yaml_defaults(parser, known.config)
        if any(action.dest == "config" for action in parser._actions):
            parser.set_defaults(config=str(known.config))  # recorded with the run's arguments
    if overrides:
        parser.set_defaults(**overrides)
    return parser.parse_args_into_dataclasses(args=rest)
