"""Export an hfpipe (or GPT-2) model to one GGUF file for llama.cpp, through GPT-2's layout.

    python recipes/export_gguf.py --model_name_or_path outputs/quickstart --output_file outputs/quickstart.gguf

Every tensor is read back from the file and compared with the checkpoint before the recipe reports success.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hfpipe.recipe_args import parse_recipe_args, setup_logging


@dataclass
class ExportArguments:
    model_name_or_path: str = field(metadata={"help": "hfpipe or GPT-2 checkpoint directory."})
    output_file: str = field(metadata={"help": "The .gguf file to write."})
    outtype: str = field(default="f32", metadata={"help": "f32 (exact) or f16."})


ARGUMENTS = (ExportArguments,)


def main(args: list[str] | None = None):
    """Export, then verify every tensor; returns the file's path."""
    setup_logging()
    (cfg,) = parse_recipe_args(ARGUMENTS, args)
    from hfpipe.export.gguf import compare_gguf, export_gguf, gguf_tensors, gpt2_model

    path = export_gguf(cfg.model_name_or_path, cfg.output_file, cfg.outtype)
    worst = compare_gguf(path, gguf_tensors(gpt2_model(cfg.model_name_or_path)))
    print(f"GGUF written to {path} ({path.stat().st_size / 1e6:.2f} MB); every tensor matches the checkpoint "
          f"(largest difference {worst:.2e}{', f16 rounding' if cfg.outtype == 'f16' else ''})")  # fmt: skip
    return path
