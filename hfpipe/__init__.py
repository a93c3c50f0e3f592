"""hfpipe: build GPT-style language models from scratch on the Hugging Face stack.

Importing hfpipe registers the GPT family with transformers' Auto classes.
"""

from .models.gpt import (
    GPT_PRESETS,
    GPTConfig,
    GPTForCausalLM,
    GPTForSequenceClassification,
    GPTModel,
    GPTPreTrainedModel,
)

__version__ = "0.1.0"

__all__ = [
    "GPT_PRESETS",
    "GPTConfig",
    "GPTForCausalLM",
    "GPTForSequenceClassification",
    "GPTModel",
    "GPTPreTrainedModel",
]
