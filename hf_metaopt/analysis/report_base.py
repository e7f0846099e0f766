"""ReportPart: a dataclass that is also a read-only ``Mapping``, the building block of the report.

In the spirit of transformers' ``ModelOutput``: the declared fields are the keys, read by key
(``part["mean"]``) or by attribute (``part.mean``), and ``in``, ``get``, ``keys``, ``items``,
``len``, iteration and ``dict(part)`` behave as for a dict. Unlike ``ModelOutput``, a key is
present exactly when it was given, whatever its value: ``rec2ftp`` given as ``None`` (FT fixes no
query) is a key holding ``None``, while a key never given (``topk_recall`` in a report of version
0.1) is absent and its attribute reads ``None``. Keys a part does not declare (written by an
older or newer version, or added by a caller, like ``sweep``) are kept as given, readable by
key, so a report survives loading and saving unchanged. Keys keep the order they were given in.

A field annotated with a ``ReportPart`` subclass (or ``dict[str, <subclass>]``, or
``list[<subclass>]``) turns the mapping it is given into that part, so nested parts are typed at
every level.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

__all__ = ["ReportPart", "report_part"]

# Every part: fields typed and listed by dataclasses; the constructor, equality and repr are ReportPart's.
report_part = dataclasses.dataclass(init=False, repr=False, eq=False)


def _part_type(annotation: Any) -> tuple[str, type] | None:
    """``("part", cls)`` for ``cls`` or ``cls | None``, ``("dict", cls)`` for ``dict[str, cls]``, ``("list", cls)`` for
    ``list[cls]``; else ``None``."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is None and isinstance(annotation, type) and issubclass(annotation, ReportPart):
        return "part", annotation
    if typing.get_origin(annotation) in (dict, Mapping) and len(args) == 2 and _part_type(args[1]):
        return "dict", args[1]
    if typing.get_origin(annotation) is list and len(args) == 1 and _part_type(args[0]) == ("part", args[0]):
        return "list", args[0]
    if len(args) == 1 and typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return _part_type(args[0])
    return None


@functools.cache
def _declared(cls: type) -> dict[str, tuple[str, type] | None]:
    """The declared keys of ``cls``, each with how its value is typed (see :func:`_part_type`)."""
    hints = typing.get_type_hints(cls)
    return {f.name: _part_type(hints[f.name]) for f in dataclasses.fields(cls)}


def _plain(value: Any) -> Any:
    """``value`` as plain JSON types: parts and mappings as dicts, tuples and lists as new lists."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class ReportPart(Mapping[str, Any]):
    """A typed, read-only mapping: ``Part({"mean": 0.2})`` or ``Part(mean=0.2)``; see the module docstring."""

    required: ClassVar[tuple[str, ...]] = ()

    def __init__(self, data: Mapping[str, Any] | None = None, /, **values: Any):
        name = type(self).__name__
        if data is not None:
            if not isinstance(data, Mapping):
                raise TypeError(f"{name} takes a mapping of its keys (or keyword arguments); got {type(data).__name__}.")
            values = {**data, **values}
        missing = [k for k in self.required if k not in values]
        if missing:
            raise ValueError(f"{name} data lacks the keys {missing}; it needs all of {list(self.required)} "
                             "(see the schema in hf_metaopt/analysis/report.py).")
        declared = _declared(type(self))
        for key in declared:
            object.__setattr__(self, key, None)
        extra = {}
        for key, value in values.items():
            if key in declared:
                object.__setattr__(self, key, _typed(name, key, value, declared[key]))
            else:
                extra[key] = value
        object.__setattr__(self, "_keys", dict.fromkeys(values))
        object.__setattr__(self, "_extra", extra)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        """The part holding ``data``'s keys (nested mappings become nested parts)."""
        return cls(data)

    def to_dict(self) -> dict[str, Any]:
        """A deep copy as plain dicts and lists, keys in order (unknown keys included)."""
        return {key: _plain(self[key]) for key in self._keys}

    # -- Mapping
    def __getitem__(self, key: str) -> Any:
        if key not in self._keys:
            raise KeyError(key)
        return self._extra[key] if key in self._extra else getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    # -- a result is a record: changed by building a new one, never in place
    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only; build a new one: {type(self).__name__}({{**part, {key!r}: ...}}).")

    def __delattr__(self, key: str) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only.")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={self[k]!r}' for k in self._keys)})"


def _typed(owner: str, key: str, value: Any, kind: tuple[str, type] | None) -> Any:
    if kind is None or value is None:
        return value
    how, cls = kind
    if how == "part":
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            return cls(value)
        raise TypeError(f"{owner} key {key!r} must be a mapping ({cls.__name__}); got {type(value).__name__}.")
    if how == "list":
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, Mapping) for v in value):
            raise TypeError(f"{owner} key {key!r} must be a list of mappings ({cls.__name__}); got {value!r:.80}.")
        return [v if isinstance(v, cls) else cls(v) for v in value]
    if not isinstance(value, Mapping) or not all(isinstance(v, Mapping) for v in value.values()):
        raise TypeError(f"{owner} key {key!r} must map names to mappings ({cls.__name__}); got {value!r:.80}.")
    return {k: v if isinstance(v, cls) else cls(v) for k, v in value.items()}
