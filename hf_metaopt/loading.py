"""Load the model a run analyses: a Hub id, a local folder, or a registered local copy (:mod:`hf_metaopt.model_sources`).

:class:`ModelArguments` is parsed by :class:`~hf_metaopt.arguments.MetaoptParser` (``hf-metaopt analyze``, the
recipes, the sweep). :func:`check_model_reference` runs before anything is loaded, so a
malformed id or a missing folder fails in a second, not after a download or a long run.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from huggingface_hub.errors import StrictDataclassError

from . import model_sources
from .model_id import is_hub_id, model_identity
from .tasks.files import one_line

__all__ = [
    "DEFAULT_MODEL", "DTYPES", "LoadedModel", "ModelArguments", "ModelLoadError", "check_model_reference", "load_config",
    "load_model", "load_tokenizer", "model_label",
]

# The default model, a Hub id; `import hf_metaopt.offline` (the command line does) registers its offline
# copy, used while the Hub cannot serve it (see hf_metaopt.offline).
DEFAULT_MODEL = "google/gemma-3-270m"
DTYPES = ("float32", "bfloat16", "float16", "auto")
# What from_pretrained reads weights from, in a model folder.
_WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "*.bin", "*.bin.index.json", "*.pt", "*.pth")


class ModelLoadError(ValueError):
    """The model or its tokenizer could not be loaded; the message is one line naming the cause and the fix."""


@dataclass(frozen=True)
class ModelArguments:
    """Which model to load and how."""

    model: str | None = field(
        default=None,
        metadata={"help": f"Hub id, local folder, or an offline model (gemma3, smollm2; default {DEFAULT_MODEL}, "
                 "whose offline copy gemma3 loads while the Hub cannot serve it)."},
    )
    model_id: str | None = field(
        default=None,
        metadata={"help": "the Hub id of a --model given as a local folder, for the report's titles, card and links "
                  "(default: the folder's name, marked local, and no link)."},
    )
    gguf_file: str | None = field(default=None, metadata={"help": "GGUF file name inside --model (dequantised on load)."})
    revision: str | None = field(default=None, metadata={"help": "Hub revision (branch, tag or commit) of --model."})
    device: str = field(default="auto", metadata={"help": "'auto' (CUDA if present, else CPU), 'cpu', 'cuda', 'cuda:1', ..."})
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = field(
        default="float32", metadata={"help": "weights dtype; the analysis runs in it, metrics in float64."}
    )
    attn_implementation: str | None = field(
        default=None,
        metadata={"help": "attention kernel passed to from_pretrained: eager, sdpa, flash_attention_2, ... "
                  "(default: transformers' choice; the analysis records through any of them)."},
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "allow a Hub model's own modelling code to run (from_pretrained's trust_remote_code)."}
    )
    device_map: str | None = field(
        default=None,
        metadata={"help": "accelerate's device_map for from_pretrained ('auto' spreads a large model over the GPUs and the CPU); "
                  "replaces --device."},
    )

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"`dtype` is {self.dtype!r}, not one of {list(DTYPES)}.")
        if self.model_id is not None:
            model_identity(None, self.model_id)  # a malformed id fails here, before anything loads

    @property
    def name(self) -> str:
        """The model asked for, :data:`DEFAULT_MODEL` when none was."""
        return self.model or DEFAULT_MODEL

    @property
    def torch_dtype(self) -> Any:
        """:attr:`dtype` as ``from_pretrained`` takes it: a ``torch.dtype``, or ``"auto"`` (the checkpoint's own)."""
        import torch

        return "auto" if self.dtype == "auto" else getattr(torch, self.dtype)

    def from_pretrained_kwargs(self, what: Literal["tokenizer", "config", "model"] = "model") -> dict[str, Any]:
        """The keyword arguments of ``Auto*.from_pretrained`` these arguments set (the weights take them all)."""
        kwargs: dict[str, Any] = {"revision": self.revision}
        if self.trust_remote_code:
            kwargs["trust_remote_code"] = True
        if what == "model":
            kwargs["dtype"] = self.torch_dtype
            if self.attn_implementation:
                kwargs["attn_implementation"] = self.attn_implementation
            if self.device_map:
                kwargs["device_map"] = self.device_map
        return kwargs


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
    copy = model_sources.local_copy(name)
    if copy is not None:
        if args.gguf_file:
            raise ValueError(f"--gguf-file is for a folder or Hub repo holding a GGUF file, not the offline model {copy.name!r}.")
        copy.check()
        return
    path = Path(name).expanduser()
    if path.exists() or _looks_like_path(name):
        if not path.is_dir():
            raise ValueError(
                f"--model {name}: {'not a folder' if path.exists() else 'no such folder'}. Pass a model folder, a Hub id such as 'google/gemma-3-270m', "
                f"or an offline model ({', '.join(model_sources.local_copy_names()) or 'none registered'})."
            )
        _check_model_folder(path, name, args.gguf_file)
        return
    if not is_hub_id(name):
        raise ValueError(
            f"--model {name!r} is neither a folder nor a valid Hub id ('owner/name': letters, digits, '-', '_', '.'); "
            f"or use an offline model ({', '.join(model_sources.local_copy_names()) or 'none registered'})."
        )


def _check_model_folder(path: Path, name: str, gguf_file: str | None) -> None:
    """A folder must hold the GGUF file asked for, or a readable ``config.json`` and weights."""
    if gguf_file:
        if not (path / gguf_file).is_file():
            raise ValueError(f"--model {name}: the folder holds no {gguf_file}; check --gguf-file.")
        return
    config = path / "config.json"
    if not config.is_file():
        raise ValueError(f"--model {name}: the folder holds no config.json; pass a folder saved with save_pretrained (or --gguf-file).")
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"--model {name}: its config.json is not readable JSON ({one_line(err)}); save the model again with save_pretrained.") from None
    if not any(next(path.glob(pattern), None) for pattern in _WEIGHT_PATTERNS):
        raise ValueError(
            f"--model {name}: the folder holds no weights (*.safetensors or *.bin); save the model with save_pretrained, "
            "not only its config."
        )


def model_label(args: ModelArguments) -> str:
    """A short, path-safe name of the model for folder names."""
    name = args.name
    copy = model_sources.local_copy(name)
    if copy is not None:
        name = copy.hub_id.split("/")[-1]
    elif Path(name).exists():
        # abspath folds "." and ".." (".", "dir/sub/..") into the folder's own name, without following links.
        name = Path(os.path.abspath(name)).name
    label = re.sub(r"[^A-Za-z0-9._-]+", "_", name.replace("/", "--"))
    return label if label.strip(".") else "model"  # never "", "." or "..": it is a folder name


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _source(args: ModelArguments) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(what from_pretrained loads, its keyword arguments, the report's provenance)``."""
    provenance: dict[str, Any] = {"model_revision": args.revision}
    copy = model_sources.local_copy(args.name)
    if copy is not None:
        provenance.update(model=copy.hub_id, model_id=copy.hub_id, model_source=copy.source)
        return str(copy.path()), {}, provenance
    kwargs: dict[str, Any] = {}
    if args.gguf_file:
        kwargs["gguf_file"] = args.gguf_file
        provenance["gguf_file"] = args.gguf_file
    provenance.update(model_identity(args.name, args.model_id))  # a copy's folder records the Hub id it copies
    source = model_sources.recorded_source(args.name)
    if source:
        provenance["model_source"] = source
    return args.name, kwargs, provenance


@contextmanager
def _loading(what: str, args: ModelArguments) -> Iterator[None]:
    """Turn a loading failure (missing files, offline, gated repo, unknown architecture) into one line."""
    try:
        yield
    except StrictDataclassError as err:  # a config field out of range: whatever was loading, the config is at fault
        raise ModelLoadError(
            f"--model {args.name}: its config.json holds an invalid value ({one_line(err)}); "
            "fix that field in config.json (or save the model again with a valid config)."
        ) from err
    except Exception as err:  # transformers and huggingface_hub fail in many types, often over several lines
        hint = "" if Path(args.name).expanduser().is_dir() else " Check the id and your connection (or HF_TOKEN for a gated repo)."
        raise ModelLoadError(f"could not load the {what} of --model {args.name}: {one_line(err)}{hint}") from err


def load_tokenizer(args: ModelArguments) -> Any:
    """The tokenizer of the model ``args`` name, loaded without the weights (see :func:`check_model_reference`)."""
    from transformers import AutoTokenizer

    check_model_reference(args)
    source, kwargs, _ = _source(args)
    with _loading("tokenizer", args):
        return AutoTokenizer.from_pretrained(source, **kwargs, **args.from_pretrained_kwargs("tokenizer"))


def load_config(args: ModelArguments) -> Any:
    """The ``PretrainedConfig`` of the model ``args`` name, without the weights (its context length, ...)."""
    from transformers import AutoConfig

    check_model_reference(args)
    source, kwargs, _ = _source(args)
    with _loading("config", args):
        return AutoConfig.from_pretrained(source, **kwargs, **args.from_pretrained_kwargs("config"))


def load_model(args: ModelArguments, tokenizer: Any = None) -> LoadedModel:
    """Load the causal LM and tokenizer ``args`` name (see :func:`check_model_reference`).

    ``tokenizer``: one already loaded with :func:`load_tokenizer` (default: load it here).

    Raises:
        ModelLoadError: the files could not be loaded; one line naming the cause.
    """
    from transformers import AutoModelForCausalLM

    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(args)
    source, kwargs, provenance = _source(args)
    with _loading("weights", args):
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs, **args.from_pretrained_kwargs("model"))
        if not args.device_map:  # with a device_map, accelerate has placed the weights
            model = model.to(_device(args.device))
    return LoadedModel(model.eval(), tokenizer, provenance)
