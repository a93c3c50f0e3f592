"""int8 weight-only quantization (torchao) of an hfpipe, GPT-2 or other Linear-based causal LM.

    python recipes/quantize.py --model_name_or_path outputs/quickstart --output_dir outputs/quickstart-int8 \\
        --eval_file heldout.txt

The output loads with ``AutoModelForCausalLM.from_pretrained(dir)`` (torchao installed). The recipe prints
size on disk, perplexity on ``eval_file`` and greedy generation tokens/s against the unquantized model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hfpipe.evaluation.results import write_results
from hfpipe.evaluation.run import LOCAL_TEXT
from hfpipe.recipe_args import parse_recipe_args, setup_logging


@dataclass
class QuantizeArguments:
    model_name_or_path: str = field(
        metadata={"help": "Model to quantize (hfpipe, GPT-2, adapter, causal LM)."}
    )
    output_dir: str = field(metadata={"help": "Where the int8 model and its tokenizer are written."})
    dtype: str = field(default="float32", metadata={"help": "Compute dtype: float32 or bfloat16."})
    eval_file: str | None = field(
        default=None,
        metadata={"help": "Held-out text file for the perplexity check (default: hfpipe's local text)."},
    )
    max_eval_blocks: int = field(default=16, metadata={"help": "Blocks of held-out text to score."})
    max_new_tokens: int = field(default=64, metadata={"help": "Tokens generated for the speed check."})


ARGUMENTS = (QuantizeArguments,)


def main(args: list[str] | None = None):
    """Quantize, then compare with the original; returns (output path, comparison rows)."""
    setup_logging()
    (cfg,) = parse_recipe_args(ARGUMENTS, args)
    from hfpipe.export.quantize import compare_with_original, format_comparison, quantize_int8

    eval_file = Path(cfg.eval_file) if cfg.eval_file else LOCAL_TEXT
    if not eval_file.is_file():
        raise FileNotFoundError(f"eval_file {cfg.eval_file!r} does not exist; give a held-out text file")
    text = eval_file.read_text(encoding="utf-8")
    path = quantize_int8(cfg.model_name_or_path, cfg.output_dir, cfg.dtype)
    rows = compare_with_original(cfg.model_name_or_path, path, text, cfg.max_eval_blocks, cfg.max_new_tokens)
    metrics = {f"{name}_{key}": value for name, row in rows.items() for key, value in row.items()}
    write_results(path, str(path), metrics, stage="quantize", source=str(cfg.model_name_or_path))
    print(format_comparison(rows))
    print(f"\nint8 model written to {path}; load it with AutoModelForCausalLM.from_pretrained({str(path)!r})")
    return path, rows
