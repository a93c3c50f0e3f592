"""The GPT family: configuration and models, registered with transformers' Auto classes."""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
)

from .configuration_gpt import GPT_PRESETS, GPTConfig
from .modeling_gpt import GPTForCausalLM, GPTForSequenceClassification, GPTModel, GPTPreTrainedModel


def register() -> None:
    """Register the GPT classes with the Auto classes, and for auto-class export (``auto_map`` + code)."""
    AutoConfig.register(GPTConfig.model_type, GPTConfig, exist_ok=True)
    AutoModel.register(GPTConfig, GPTModel, exist_ok=True)
    AutoModelForCausalLM.register(GPTConfig, GPTForCausalLM, exist_ok=True)
    AutoModelForSequenceClassification.register(GPTConfig, GPTForSequenceClassification, exist_ok=True)
    GPTConfig.register_for_auto_class()
    GPTModel.register_for_auto_class("AutoModel")
    GPTForCausalLM.register_for_auto_class("AutoModelForCausalLM")
    GPTForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")


register()

__all__ = [
    "GPT_PRESETS",
    "GPTConfig",
    "GPTForCausalLM",
    "GPTForSequenceClassification",
    "GPTModel",
    "GPTPreTrainedModel",
    "register",
]
