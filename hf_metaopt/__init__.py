"""hf-metaopt: in-context learning as implicit finetuning, for any transformers causal LM.

``import hf_metaopt`` registers the MomentumGPT architecture (model type
``momentum_gpt``) in transformers' Auto classes and the ``icl-analysis`` pipeline.
"""

__version__ = "0.1.0"

from .analysis.report import ICLAnalysisReport
from .pipelines.icl_analysis import ICLAnalyzer
from .models.momentum_gpt import MomentumGPTConfig, MomentumGPTModel, MomentumGPTForCausalLM, MomentumGPTForSequenceClassification

__all__ = [
    "ICLAnalyzer",
    "ICLAnalysisReport",
    "MomentumGPTConfig",
    "MomentumGPTModel",
    "MomentumGPTForCausalLM",
    "MomentumGPTForSequenceClassification",
]
