"""Registering the GPT family with transformers' Auto classes, without making ``import hfpipe`` import torch.

transformers loads its Auto classes lazily, and hfpipe registers with them as lazily:

- the config (model type ``hfpipe_gpt``) right after ``transformers.models.auto.configuration_auto`` is
  imported, so ``AutoConfig`` knows it from its first use;
- the model classes when the first ``GPTConfig`` is built (``from_pretrained`` reads the config before it
  looks for the model class), or when one is first used through ``hfpipe``. Importing them in the middle of
  transformers' own imports could close an import cycle; building a config never happens there.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys

AUTO_CONFIG_MODULE = "transformers.models.auto.configuration_auto"
_registered = {"config": False, "models": False}


def register_models() -> None:
    """Register ``GPTModel``, ``GPTForCausalLM`` and ``GPTForSequenceClassification`` with the Auto classes, and
    for auto-class export (``auto_map`` + the code saved beside the weights)."""
    if _registered["models"]:
        return
    _registered["models"] = True
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

    from .models.gpt.configuration_gpt import GPTConfig
    from .models.gpt.modeling_gpt import GPTForCausalLM, GPTForSequenceClassification, GPTModel

    AutoConfig.register(GPTConfig.model_type, GPTConfig, exist_ok=True)
    AutoModel.register(GPTConfig, GPTModel, exist_ok=True)
    AutoModelForCausalLM.register(GPTConfig, GPTForCausalLM, exist_ok=True)
    AutoModelForSequenceClassification.register(GPTConfig, GPTForSequenceClassification, exist_ok=True)
    GPTConfig.register_for_auto_class()
    GPTModel.register_for_auto_class("AutoModel")
    GPTForCausalLM.register_for_auto_class("AutoModelForCausalLM")
    GPTForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")


def register_config() -> None:
    """Make ``AutoConfig`` build a ``GPTConfig`` for ``model_type: hfpipe_gpt``; the first one built registers the
    model classes."""
    if _registered["config"]:
        return
    _registered["config"] = True
    from transformers import AutoConfig

    from .models.gpt.configuration_gpt import GPTConfig

    AutoConfig.register(GPTConfig.model_type, GPTConfig, exist_ok=True)
    check = GPTConfig._check  # every GPTConfig runs it once built, whichever way transformers builds configs

    def _check(self):
        register_models()
        check(self)

    GPTConfig._check = _check


class _RunAfterImport(importlib.abc.MetaPathFinder):
    """Calls ``callback`` right after the module ``name`` has been imported (once)."""

    def __init__(self, name: str, callback):
        self.name, self.callback = name, callback

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_call(module):
            exec_module(module)
            self.callback()

        spec.loader.exec_module = exec_then_call
        return spec


def register_when_transformers_loads_auto_classes() -> None:
    """Register the config now if transformers' Auto classes are loaded, else right after they load."""
    if AUTO_CONFIG_MODULE in sys.modules:
        register_config()
    elif not any(isinstance(f, _RunAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _RunAfterImport(AUTO_CONFIG_MODULE, register_config))
