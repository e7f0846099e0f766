"""Local stand-ins for Hub models, registered from above: the library loads them without knowing where they come from.

:mod:`hf_metaopt.loading` loads what ``--model`` names: a Hub id, a folder, or a name that a
:class:`LocalCopy` registered here answers to. The library registers none;
:mod:`hf_metaopt.offline` (imported by the command line, recipes, tests and benchmarks)
registers its converted GGUF models. A copy decides by itself which references it serves
(its short name always, the Hub id it copies only while the Hub cannot serve it).

A folder holding :data:`PROVENANCE_FILE` (``{"hub_id": ..., "source": ...}``) is a copy of that
Hub model: :func:`recorded_model_id` returns the Hub id, so reports name the model, not a path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["PROVENANCE_FILE", "LocalCopy", "register_local_copy", "local_copy", "local_copy_names", "recorded_model_id", "recorded_source"]

PROVENANCE_FILE = "hf_metaopt_source.json"


@runtime_checkable
class LocalCopy(Protocol):
    """A model on this machine that stands in for a Hub model."""

    name: str  # the short name it answers to (``"gemma3"``)
    hub_id: str  # the Hub model it copies, recorded as the report's model
    source: str  # one line: where the weights come from

    def serves(self, reference: str) -> bool:
        """Whether ``--model reference`` should load this copy now."""

    def check(self) -> None:
        """Raise (one line naming the fix) unless the copy can be loaded; cheap, nothing is converted."""

    def path(self) -> Path:
        """A folder ``from_pretrained`` loads (model + tokenizer)."""


_COPIES: dict[str, LocalCopy] = {}


def register_local_copy(copy: LocalCopy) -> LocalCopy:
    """Register ``copy`` under its name (registering the same name again replaces it)."""
    if not isinstance(copy, LocalCopy):
        raise TypeError(f"register_local_copy takes a LocalCopy (name, hub_id, source, serves, check, path), got {type(copy).__name__}.")
    _COPIES[copy.name] = copy
    return copy


def local_copy(reference: str) -> LocalCopy | None:
    """The registered copy that serves ``reference`` now, or ``None`` (load it from the Hub or the folder)."""
    return next((copy for copy in _COPIES.values() if copy.serves(reference)), None)


def local_copy_names() -> tuple[str, ...]:
    """The short names of the registered copies (empty unless :mod:`hf_metaopt.offline` is imported)."""
    return tuple(_COPIES)


def _provenance(name_or_path: str) -> dict:
    try:
        data = json.loads((Path(name_or_path).expanduser() / PROVENANCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def recorded_model_id(name_or_path: str) -> str:
    """The Hub id a local copy records in its :data:`PROVENANCE_FILE`; otherwise ``name_or_path`` itself."""
    hub_id = _provenance(name_or_path).get("hub_id")
    return hub_id if isinstance(hub_id, str) and hub_id else name_or_path


def recorded_source(name_or_path: str) -> str | None:
    """Where a local copy's weights come from (its :data:`PROVENANCE_FILE`), ``None`` for any other folder or id."""
    source = _provenance(name_or_path).get("source")
    return source if isinstance(source, str) else None
