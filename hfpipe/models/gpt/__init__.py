"""The GPT family: configuration and models.

The model classes are imported on first use (they pull in transformers' modeling stack and torch); using one
through this package registers them all with transformers' Auto classes (``hfpipe.auto_registration``).
"""

import importlib

from .configuration_gpt import GPT_ARCHITECTURES, GPT_PRESETS, GPTConfig

_MODELS = ("GPTForCausalLM", "GPTForSequenceClassification", "GPTModel", "GPTPreTrainedModel")


def __getattr__(name: str):
    if name in _MODELS:
        from ...auto_registration import register_models

        register_models()
        return getattr(importlib.import_module(".modeling_gpt", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["GPT_ARCHITECTURES", "GPT_PRESETS", "GPTConfig", *_MODELS]
