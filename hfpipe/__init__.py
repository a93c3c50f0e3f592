"""hfpipe: build GPT-style language models from scratch on the Hugging Face stack.

Importing hfpipe registers the GPT family with transformers' Auto classes.
"""

import logging as _logging

# Import-time warnings of optional libraries that tell an hfpipe user nothing: torchao's compiled kernels
# built for other torch versions, and torch's pytree deprecation notes that torchao triggers.
for _name in ("torchao", "torch.utils._pytree"):
    _logging.getLogger(_name).setLevel(_logging.ERROR)

from .models.gpt import (  # noqa: E402
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
