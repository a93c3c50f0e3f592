"""int8 weight-only quantization with torchao, saved and reloaded through transformers' ``from_pretrained``.

Why torchao: transformers saves and reloads torchao-quantized models (``TorchAoConfig``, safetensors),
for hfpipe's own model too and with ``trust_remote_code``; optimum-quanto quantizes but transformers
refuses to save the result ("not serializable").

Every ``nn.Linear`` weight becomes an int8 tensor with one scale per output row
(``Int8WeightOnlyConfig``), and so do the embeddings (``IntxWeightOnlyConfig``, one scale per row):
in a small GPT the token embedding is a large share of the parameters. Biases and LayerNorms stay in
float. The output directory loads with ``AutoModelForCausalLM.from_pretrained(dir)`` (torchao
installed), on CPU and GPU.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, TorchAoConfig

from hfpipe.io import save_atomically
from hfpipe.loading import check_exists, is_adapter, load_model, load_tokenizer, read_config

logger = logging.getLogger(__name__)

COMPUTE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def _pattern(names: list[str]) -> str:
    """One regex for module names, block indices generalised (``blocks\\.\\d+\\.att\\.qkv``)."""
    generic = sorted({re.sub(r"(?<=\\\.)\d+(?=\\\.)|(?<=\\\.)\d+$", r"\\d+", re.escape(n)) for n in names})
    return "(" + "|".join(generic) + ")"


def int8_weight_only_config(config) -> TorchAoConfig:
    """The ``TorchAoConfig`` quantizing every Linear and Embedding weight of the model ``config`` describes.

    Raises ValueError for a model with no ``nn.Linear`` (e.g. transformers' GPT-2, whose ``Conv1D``
    layers torchao does not quantize: convert it to hfpipe first, as ``quantize_int8`` does).
    """
    from torchao.quantization import FqnToConfig, Int8WeightOnlyConfig, IntxWeightOnlyConfig, PerAxis

    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    linears = [n for n, m in skeleton.named_modules() if isinstance(m, nn.Linear)]
    embeddings = [n for n, m in skeleton.named_modules() if isinstance(m, nn.Embedding)]
    if not linears:
        raise ValueError(
            f"a {config.model_type!r} model has no nn.Linear layers for int8 weight-only quantization; "
            "hfpipe quantizes its own GPT (GPT-2 checkpoints are converted to it) and Linear-based causal LMs"
        )
    weights = {f"{n}.weight" for n in linears + embeddings}
    rules = {}
    for names, quant in (
        (linears, Int8WeightOnlyConfig()),
        (embeddings, IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0))),
    ):
        if names:
            pattern = _pattern(names) + r"\.weight"
            matched = {p for p, _ in skeleton.named_parameters() if re.fullmatch(pattern, p)}
            if not matched <= weights:  # an index-generalised name also covers another layer: list them all
                pattern = "(" + "|".join(re.escape(n) for n in names) + r")\.weight"
            rules["re:" + pattern] = quant
    return TorchAoConfig(FqnToConfig(rules), include_input_output_embeddings=True)


def _check_source(name_or_path: str) -> dict:
    check_exists(name_or_path)
    if is_adapter(name_or_path):
        return {}
    config = read_config(name_or_path)
    if config.get("quantization_config"):
        method = config["quantization_config"].get("quant_method", "?")
        raise ValueError(
            f"{name_or_path} is already quantized ({method}); quantize the unquantized model it came from"
        )
    return config


def quantize_int8(
    model_name_or_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    dtype: str = "float32",
    tokenizer_name_or_path: str | os.PathLike | None = None,
) -> Path:
    """Quantize a causal LM's weights to int8 and save it (with its tokenizer) to ``output_dir``.

    ``model_name_or_path``: an hfpipe model, a GPT-2 checkpoint (converted to hfpipe first), a peft
    adapter (merged first) or a Linear-based ``AutoModelForCausalLM``. ``dtype`` is the compute dtype of
    activations and of the weights left in float: ``float32`` or ``bfloat16``. Nothing is written
    unless the whole model quantizes and saves.
    """
    if dtype not in COMPUTE_DTYPES:
        raise ValueError(
            f"dtype {dtype!r} is not supported for int8 weight-only quantization; use one of {list(COMPUTE_DTYPES)}"
        )
    source = str(model_name_or_path)
    config = _check_source(source)
    tokenizer = load_tokenizer(tokenizer_name_or_path or source)
    with tempfile.TemporaryDirectory(prefix="hfpipe-quantize-") as staging:
        if is_adapter(source) or config.get("model_type") == "gpt2" or config.get("tie_word_embeddings"):
            # torchao quantizes nn.Linear: a GPT-2 (Conv1D) becomes hfpipe's GPT, an adapter is merged, and
            # a tied output head gets its own copy (transformers cannot tie quantized tensors).
            model = load_model(source, merge_adapter=True)
            if model.config.tie_word_embeddings:
                model.config.tie_word_embeddings = False
                model.lm_head.weight = nn.Parameter(model.get_input_embeddings().weight.detach().clone())
            model.save_pretrained(staging)
            source = staging
        quant_config = int8_weight_only_config(AutoConfig.from_pretrained(source))
        model = AutoModelForCausalLM.from_pretrained(
            source, quantization_config=quant_config, dtype=COMPUTE_DTYPES[dtype]
        )

        def save(tmp: Path) -> None:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)

        path = save_atomically(save, output_dir)
    logger.info("int8 weight-only model written to %s", path)
    return path


def compare_with_original(
    original_name_or_path: str | os.PathLike,
    quantized_dir: str | os.PathLike,
    heldout_text: str | None = None,
    max_eval_blocks: int = 16,
    max_new_tokens: int = 64,
) -> dict:
    """Size on disk, perplexity on ``heldout_text`` (if given) and greedy tokens/s of the original model and
    its int8 copy; returns ``{"original": {...}, "int8": {...}}``."""
    from ..evaluation.perplexity import block_perplexity
    from .compare import compare_speed, directory_size, text_blocks

    tokenizer = load_tokenizer(quantized_dir)
    models = {
        "original": load_model(original_name_or_path, merge_adapter=True),
        "int8": AutoModelForCausalLM.from_pretrained(quantized_dir),
    }
    context = models["int8"].config.max_position_embeddings
    rows = {
        "original": {"bytes": directory_size(original_name_or_path)},
        "int8": {"bytes": directory_size(quantized_dir)},
    }
    if heldout_text:
        blocks = text_blocks(tokenizer, heldout_text, min(context, 256), max_eval_blocks)
        for name, model in models.items():
            rows[name]["perplexity"] = block_perplexity(model, blocks)
    prompt = tokenizer("The", return_tensors="pt")["input_ids"][:, :8]
    if prompt.numel() == 0:
        prompt = torch.tensor([[tokenizer.eos_token_id or 0]])
    new = min(max_new_tokens, context - prompt.shape[-1])
    for name, tps in compare_speed(models, prompt, new).items():
        rows[name]["tokens_per_second"] = tps
    return rows


def format_comparison(rows: dict) -> str:
    """The original/int8 comparison as a Markdown table with int8/original ratios."""
    from .compare import format_table

    header = ["model", "size on disk (MB)", "perplexity", "generation tokens/s"]
    table = [
        [
            name,
            f"{r['bytes'] / 1e6:.2f}",
            f"{r['perplexity']:.3f}" if "perplexity" in r else "-",
            f"{r['tokens_per_second']:.1f}",
        ]
        for name, r in rows.items()
    ]
    o, q = rows["original"], rows["int8"]
    ppl = f"{100 * (q['perplexity'] / o['perplexity'] - 1):+.2f} %" if "perplexity" in o else "-"
    table.append(
        [
            "int8 / original",
            f"{q['bytes'] / o['bytes']:.3f}x",
            ppl,
            f"{q['tokens_per_second'] / o['tokens_per_second']:.2f}x",
        ]
    )
    return format_table(header, table)
