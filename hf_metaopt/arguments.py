"""One parser for every command: dataclass arguments, ``--config file.yaml`` for defaults, flags override them.

:class:`MetaoptParser` serves ``hf-metaopt analyze``, ``pretrain`` and ``sweep`` and the recipes
(trl's ``TrlParser`` pattern: ``HfArgumentParser`` over dataclasses, a YAML file of
``field_name: value`` for defaults).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser

__all__ = ["ConfigError", "MetaoptParser", "check_yaml_values", "read_yaml_config"]

_BOOLEAN_WORDS = ("true", "false", "yes", "no", "y", "n", "1", "0")


def read_yaml_config(path: str | Path) -> Any:
    """The plain YAML values in ``path`` (``yaml.safe_load``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not valid YAML, or it uses a tag (``!!python/...``) that plain
            values never need; one line naming the file, the line and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config: no such YAML file '{path}'")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"--config: cannot read '{path}' ({' '.join(str(err).split())}); pass a UTF-8 YAML file.") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        if isinstance(err, yaml.constructor.ConstructorError):
            raise ValueError(f"--config: '{path}'{where} uses a YAML tag that is not a plain value ({' '.join(problem.split())}); "
                             "a config holds only plain names, numbers, lists and mappings.") from None
        raise ValueError(f"--config: '{path}' is not valid YAML{where}: {' '.join(problem.split())}; fix the file.") from None


def _kind(action: argparse.Action) -> str | None:
    """What a value of ``action`` must be: 'int', 'float', 'bool', 'str', or ``None`` (not checked here)."""
    kind = action.type
    if kind in (int, float, str):
        return kind.__name__
    if getattr(kind, "__name__", "") == "string_to_bool":
        return "bool"
    return None


_EXPECTED = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}
_PLURAL = {"int": "integers", "float": "numbers", "bool": "booleans", "str": "strings", None: "values"}


def _scalar_ok(kind: str | None, value: Any, *, in_list: bool) -> bool:
    if isinstance(value, (dict, list)):
        return kind in (None, "str")  # TrainingArguments reads some str fields as JSON (lr_scheduler_kwargs: {...})
    if kind == "int":
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return True
        return isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value) is not None
    if kind == "float":
        if isinstance(value, bool):
            return False
        if isinstance(value, (int, float)):
            return True
        try:
            float(value)
        except (TypeError, ValueError):
            return False
        return True
    if kind == "bool":
        return isinstance(value, bool) or str(value).strip().lower() in _BOOLEAN_WORDS
    if kind == "str" and not in_list:  # list items (e.g. balanced: [false, true]) are read by the dataclass
        return isinstance(value, (str, bool))  # resume_from_checkpoint: true
    return True


def check_yaml_values(parser: argparse.ArgumentParser, values: dict[str, Any], path: str | Path) -> None:
    """Check the YAML ``values`` as the flags would be: each key's type, list shape and choices.

    argparse checks a flag's type and choices only for values typed on the command line, never
    for defaults, so without this a YAML ``dtype: float64`` or ``seeds: 1`` would pass unchecked.

    Raises:
        ValueError: one line naming the file, the key, what it must be and what it holds.
    """
    for action in parser._actions:
        if action.dest not in values or action.dest == "help":
            continue
        name, value = action.dest, values[action.dest]
        where = f"--config '{path}': `{name}`"
        kind = _kind(action)
        if value is None:
            if action.default is None:
                continue
            raise ValueError(f"{where} is null; give it a value or leave the key out for its default.")
        many = action.nargs in ("+", "*")
        items = value if many else [value]
        if many and not isinstance(value, list):
            example = f"{name}: [{value!r}]" if not isinstance(value, (dict, list)) else f"{name}: [...]"
            raise ValueError(f"{where} must be a list of {_PLURAL[kind]} (e.g. {example}); got {value!r}.")
        if many and action.nargs == "+" and not value:
            raise ValueError(f"{where} is an empty list; give at least one value or leave the key out for its default.")
        for item in items:
            if item is None and many:
                continue
            if not _scalar_ok(kind, item, in_list=many):
                got = f"{item!r} ({type(item).__name__})"
                hint = f"; quote it to make it a string ({name}: '{item}')" if kind == "str" else ""
                what = f"a list of {_PLURAL[kind]}" if many else _EXPECTED[kind]
                raise ValueError(f"{where} must be {what}; got {got}{hint}.")
            if action.choices is not None and item not in action.choices and str(item) not in {str(c) for c in action.choices}:
                choices = ", ".join(str(c) for c in action.choices)
                raise ValueError(f"{where} is {item!r}, not one of its choices ({choices}).")


def _flag_type(parse):
    """``parse`` as an argparse type whose ``ValueError`` message reaches the user (argparse would print only the function's name)."""

    def flag_type(text: str):
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    flag_type.__name__ = getattr(parse, "__name__", "value")
    return flag_type


class ConfigError(ValueError):
    """A ``--config`` YAML file that cannot serve as defaults; the message is one line naming the file and the key."""


class MetaoptParser(HfArgumentParser):
    """The parser of every ``hf-metaopt`` command and recipe: dataclass fields are flags, ``--config`` their defaults.

    trl's ``TrlParser`` pattern over ``HfArgumentParser``: a YAML mapping of ``field_name: value``
    becomes the parser's defaults (:meth:`~argparse.ArgumentParser.set_defaults`), checked as the
    flags would be (:func:`check_yaml_values`), and flags on the command line override it. Each value
    is parsed once, by argparse, then handed to its dataclass, which validates it.

    A dataclass may declare its own ``config`` field (recorded with the run's arguments); otherwise
    the parser adds ``--config``. A field whose values take more than one form (``batch_size``:
    ``auto`` or a number) names the function that reads a flag's text in its metadata, as
    ``"parse"``; ``HfArgumentParser`` would read it with the union's first type.
    """

    def __init__(self, dataclass_types, *, default_config: str | Path | None = None, **kwargs):
        super().__init__(dataclass_types, **kwargs)
        self.default_config = default_config
        if not any(action.dest == "config" for action in self._actions):
            self.add_argument("--config", default=None, metavar="FILE.yaml", help="YAML file of defaults (flags override it).")

    def add_argument(self, *args, **kwargs):
        """``argparse``'s, with a field's ``metadata["parse"]`` (see the class docstring) as the flag's type."""
        parse = kwargs.pop("parse", None)
        if parse is not None:
            kwargs["type"] = _flag_type(parse)
        return super().add_argument(*args, **kwargs)

    def config_path(self, args: Sequence[str]) -> str | None:
        """The ``--config`` file named in ``args`` (``--config x`` or ``--config=x``), else :attr:`default_config`."""
        pre = argparse.ArgumentParser(add_help=False)
        pre.add_argument("--config", default=None)
        given = pre.parse_known_args(list(args))[0].config
        return given or (str(self.default_config) if self.default_config else None)

    def read_config(self, path: str | Path) -> dict[str, Any]:
        """The YAML defaults in ``path``, checked: a mapping of known argument names to well-typed values.

        Raises:
            FileNotFoundError: no such file.
            ConfigError: not a mapping, an unknown key, or a value the flag would refuse (one line).
        """
        try:
            values = read_yaml_config(path)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        values = {} if values is None else values
        if not isinstance(values, dict):
            raise ConfigError(f"--config: '{path}' must hold a mapping of argument names to values")
        known = {action.dest for action in self._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"--config: '{path}' sets unknown argument(s) {unknown}; see --help for the names")
        try:
            check_yaml_values(self, values, path)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        return values

    def parse_args_and_config(self, args: Sequence[str] | None = None) -> tuple[Any, ...]:
        """Parse ``args`` (default ``sys.argv[1:]``) into one instance per dataclass, in order.

        The ``--config`` file's values become the defaults; flags override them. A value a
        dataclass refuses raises its ``ValueError`` / ``TypeError`` (one line naming the field).
        """
        args = list(sys.argv[1:] if args is None else args)
        path = self.config_path(args)
        if path:
            self.set_defaults(**self.read_config(path), config=str(path))
        *outputs, remaining = self.parse_args_into_dataclasses(args=args, return_remaining_strings=True)
        if remaining:
            self.error(f"unrecognized arguments: {' '.join(remaining)}")  # argparse's own message and exit status 2
        return tuple(outputs[: len(self.dataclass_types)])

