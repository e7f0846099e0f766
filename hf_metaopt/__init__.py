"""hf-metaopt: in-context learning as implicit finetuning, for any transformers causal LM.

``import hf_metaopt`` registers the MomentumGPT architecture (model type
``momentum_gpt``) in transformers' Auto classes and the ``icl-analysis`` pipeline.
``import hf_metaopt.offline`` adds the offline models, tasks and corpus (the command line does).
"""

from ._version import __version__

# Importing these modules registers the model type and the pipeline task.
from .models.momentum_gpt import (
    MomentumGPTConfig,
    MomentumGPTForCausalLM,
    MomentumGPTForSequenceClassification,
    MomentumGPTModel,
)
from .analysis.report import ICLAnalysisReport
from .pipelines.icl_analysis import ICLAnalyzer

__all__ = [
    "ICLAnalyzer",
    "ICLAnalysisReport",
    "MomentumGPTConfig",
    "MomentumGPTModel",
    "MomentumGPTForCausalLM",
    "MomentumGPTForSequenceClassification",
]
