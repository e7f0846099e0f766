"""Model architectures shipped by hf-metaopt (each registers itself in transformers' Auto classes)."""

from .momentum_gpt import (
    MomentumGPTConfig,
    MomentumGPTForCausalLM,
    MomentumGPTForSequenceClassification,
    MomentumGPTModel,
)

__all__ = [
    "MomentumGPTConfig",
    "MomentumGPTModel",
    "MomentumGPTForCausalLM",
    "MomentumGPTForSequenceClassification",
]
