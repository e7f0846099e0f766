"""MomentumGPT (GPT-2 with momentum attention), registered in transformers' Auto classes on import."""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
)

from .configuration_momentum_gpt import MomentumGPTConfig
from .modeling_momentum_gpt import (
    MomentumGPTForCausalLM,
    MomentumGPTForSequenceClassification,
    MomentumGPTModel,
    MomentumGPTPreTrainedModel,
    momentum_term,
)

AutoConfig.register(MomentumGPTConfig.model_type, MomentumGPTConfig)
AutoModel.register(MomentumGPTConfig, MomentumGPTModel)
AutoModelForCausalLM.register(MomentumGPTConfig, MomentumGPTForCausalLM)
AutoModelForSequenceClassification.register(MomentumGPTConfig, MomentumGPTForSequenceClassification)

# `save_pretrained` then writes `auto_map` and copies the two model files, so a Python without hf_metaopt
# loads the checkpoint with `trust_remote_code=True`.
MomentumGPTConfig.register_for_auto_class()
MomentumGPTModel.register_for_auto_class("AutoModel")
MomentumGPTForCausalLM.register_for_auto_class("AutoModelForCausalLM")
MomentumGPTForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")

__all__ = [
    "MomentumGPTConfig",
    "MomentumGPTPreTrainedModel",
    "MomentumGPTModel",
    "MomentumGPTForCausalLM",
    "MomentumGPTForSequenceClassification",
    "momentum_term",
]
