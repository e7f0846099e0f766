"""Where hf-metaopt keeps what it makes once and reuses: converted models, staged pushes."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """``$HF_METAOPT_CACHE``, else ``$HF_HOME/hf_metaopt``."""
    if "HF_METAOPT_CACHE" in os.environ:
        return Path(os.environ["HF_METAOPT_CACHE"])
    from huggingface_hub.constants import HF_HOME

    return Path(HF_HOME) / "hf_metaopt"
