"""hfpipe: build GPT-style language models from scratch on the Hugging Face stack.

``import hfpipe`` is light (no torch): the GPT classes load on first use (``from hfpipe import GPTForCausalLM``),
and they are registered with transformers' Auto classes as soon as transformers loads its Auto classes, so
``AutoModelForCausalLM.from_pretrained(hfpipe_dir)`` needs no ``trust_remote_code`` once hfpipe is imported.
"""

import importlib
import logging as _logging

from .auto_registration import register_when_transformers_loads_auto_classes
from .compat import warn_if_below_floor

# Import-time warnings of optional libraries that tell an hfpipe user nothing: torchao's compiled kernels
# built for other torch versions, and torch's pytree deprecation notes that torchao triggers.
for _name in ("torchao", "torch.utils._pytree"):
    _logging.getLogger(_name).setLevel(_logging.ERROR)

__version__ = "0.2.0"

_MODEL_EXPORTS = ("GPT_PRESETS", "GPTConfig", "GPTForCausalLM", "GPTForSequenceClassification", "GPTModel",
                  "GPTPreTrainedModel")  # fmt: skip
__all__ = list(_MODEL_EXPORTS)


def __getattr__(name: str):
    """The GPT classes, imported on first use (they need torch)."""
    if name in _MODEL_EXPORTS:
        return getattr(importlib.import_module(".models.gpt", __name__), name)
    raise AttributeError(f"module 'hfpipe' has no attribute {name!r}")


warn_if_below_floor()
register_when_transformers_loads_auto_classes()
