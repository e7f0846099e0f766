"""Which model a report names: its Hub id when it has one, never a local path.

A model loaded from a folder carries that folder in ``config._name_or_path``; a path in a report
title, a plot title, a card's ``model-index`` name or a link (``https://huggingface.co//home/...``)
is wrong and leaks the user's file system. :func:`model_identity` turns what is known into the two
entries ``report["config"]`` records: ``model`` (a display name) and ``model_id`` (the Hub id, or
``None`` for a local model: no link is made).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .model_sources import recorded_model_id

__all__ = ["LOCAL_SUFFIX", "display_name", "hub_model_id", "is_hub_id", "model_identity"]

LOCAL_SUFFIX = " (local)"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


def is_hub_id(name: Any) -> bool:
    """Whether ``name`` reads as a Hub repo id (``name`` or ``owner/name``) and is not a path on this machine."""
    if not isinstance(name, str) or not _HUB_ID.match(name) or ".." in name or len(name) > 96:
        return False
    return not os.path.exists(os.path.expanduser(name))


def model_identity(name_or_path: str | None, model_id: str | None = None) -> dict[str, str | None]:
    """``{"model": display name, "model_id": Hub id or None}`` for a model known by ``name_or_path``.

    ``model_id`` (the Hub id the user gives for a local copy) wins; else the Hub id a copy's folder
    records (:func:`~hf_metaopt.model_sources.recorded_model_id`); else ``name_or_path`` if it is a
    Hub id; else the folder's base name (marked local when shown) and no Hub id.

    Raises:
        ValueError: ``model_id`` is not a Hub id.
    """
    if model_id is not None:
        if not (isinstance(model_id, str) and _HUB_ID.match(model_id)):
            raise ValueError(f"`model_id` must be a Hub id such as 'google/gemma-3-270m'; got {model_id!r}.")
        return {"model": model_id, "model_id": model_id}
    if not name_or_path:
        return {"model": "model", "model_id": None}
    recorded = recorded_model_id(name_or_path)
    if recorded != name_or_path and is_hub_id(recorded):
        return {"model": recorded, "model_id": recorded}
    if is_hub_id(name_or_path):
        return {"model": name_or_path, "model_id": name_or_path}
    name = Path(os.path.abspath(os.path.expanduser(name_or_path))).name or "model"
    return {"model": name, "model_id": None}


def hub_model_id(config: dict) -> str | None:
    """The Hub id a report's config names: ``model_id`` (reports since 0.2), else a ``model`` that is a Hub id (0.1)."""
    if "model_id" in config:
        return config["model_id"]
    model = config.get("model")
    return model if is_hub_id(model) else None


def display_name(config: dict) -> str:
    """The model's name for titles: the Hub id, else the folder's base name marked ``(local)``; never a path."""
    model_id = hub_model_id(config)
    if model_id:
        return model_id
    model = config.get("model")
    return (Path(str(model)).name if model else "model") + LOCAL_SUFFIX
