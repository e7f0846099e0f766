"""Load the model a run analyses: a Hub id, a local folder, or one of the embedded offline models.

:class:`ModelArguments` is parsed by ``HfArgumentParser`` (``hf-metaopt analyze``, the
recipes, the sweep). :func:`check_model_reference` runs before anything is loaded, so a
malformed id or a missing folder fails in a second, not after a download or a long run.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import assets

__all__ = ["DEFAULT_MODEL", "DTYPES", "LoadedModel", "ModelArguments", "check_model_reference", "load_model", "model_label"]

# The embedded offline default (`hf-metaopt analyze` with no --model).
DEFAULT_MODEL = "gemma3"
DTYPES = ("float32", "bfloat16", "float16", "auto")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


@dataclass(frozen=True)
class ModelArguments:
    """Which model to load and how."""

    model: str | None = field(
        default=None,
        metadata={"help": f"Hub id, local folder, or an embedded offline model ({', '.join(assets.OFFLINE_MODELS)}; default {DEFAULT_MODEL})."},
    )
    gguf_file: str | None = field(default=None, metadata={"help": "GGUF file name inside --model (dequantised on load)."})
    revision: str | None = field(default=None, metadata={"help": "Hub revision (branch, tag or commit) of --model."})
    device: str = field(default="auto", metadata={"help": "'auto' (CUDA if present, else CPU), 'cpu', 'cuda', 'cuda:1', ..."})
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = field(
        default="float32", metadata={"help": "weights dtype; the analysis runs in it, metrics in float64."}
    )

    @property
    def name(self) -> str:
        """The model asked for, the offline default when none was."""
        return self.model or DEFAULT_MODEL


@dataclass
class LoadedModel:
    """A loaded causal LM, its tokenizer, and what the report records about where it came from."""

    model: Any
    tokenizer: Any
    provenance: dict[str, Any]


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or os.sep in name.strip("/").replace("/", "", 1) or Path(name).exists()


def check_model_reference(args: ModelArguments) -> None:
    """Raise ``ValueError`` (one line, naming the fix) unless ``args`` names a model that can be loaded.

    Offline names must have their packages installed; folders must exist and hold a
    ``config.json`` (or the ``--gguf-file``); anything else must be a well-formed Hub id.
    """
    name = args.name
    if name in assets.OFFLINE_MODELS:
        if args.gguf_file:
            raise ValueError(f"--gguf-file is for a folder or Hub repo holding a GGUF file, not the offline model {name!r}.")
        assets.offline_model(name).check()
        return
    path = Path(name).expanduser()
    if path.exists() or _looks_like_path(name):
        if not path.is_dir():
            raise ValueError(
                f"--model {name}: no such folder. Pass a model folder, a Hub id such as 'google/gemma-3-270m', "
                f"or an offline model ({', '.join(assets.OFFLINE_MODELS)})."
            )
        wanted = args.gguf_file or "config.json"
        if not (path / wanted).exists():
            raise ValueError(f"--model {name}: the folder holds no {wanted}; pass a folder saved with save_pretrained (or --gguf-file).")
        return
    if not _REPO_ID.match(name) or ".." in name or len(name) > 96:
        raise ValueError(
            f"--model {name!r} is neither a folder nor a valid Hub id ('owner/name': letters, digits, '-', '_', '.'); "
            f"or use an offline model ({', '.join(assets.OFFLINE_MODELS)})."
        )


def model_label(args: ModelArguments) -> str:
    """A short, path-safe name of the model for folder names."""
    name = args.name
    if name in assets.OFFLINE_MODELS:
        name = assets.offline_model(name).hub_id.split("/")[-1]
    elif Path(name).exists():
        name = Path(name.rstrip("/")).name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name.replace("/", "--"))


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def load_model(args: ModelArguments) -> LoadedModel:
    """Load the causal LM and tokenizer ``args`` name (see :func:`check_model_reference`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_model_reference(args)
    provenance: dict[str, Any] = {"model_revision": args.revision}
    if args.name in assets.OFFLINE_MODELS:
        offline = assets.offline_model(args.name)
        source, kwargs = str(offline.path()), {}
        provenance.update(model=offline.hub_id, model_source=offline.source)
    else:
        source, kwargs = args.name, {"revision": args.revision}
        if args.gguf_file:
            kwargs["gguf_file"] = args.gguf_file
            provenance["gguf_file"] = args.gguf_file
        provenance["model"] = args.name
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    dtype = "auto" if args.dtype == "auto" else getattr(torch, args.dtype)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs)
    return LoadedModel(model.to(_device(args.device)).eval(), tokenizer, provenance)
