"""Save an hfpipe GPT with Llama's layout as transformers' own Llama (or Qwen3, with QK-norm), and back.

    hfpipe export_native --model_name_or_path outputs/llama-tiny --output_dir outputs/llama-tiny-native
    hfpipe export_native --model_name_or_path outputs/llama-tiny-native --output_dir back --direction to_hfpipe

The exported directory loads without hfpipe and without trust_remote_code. Before reporting success the
recipe runs both models on a few tokens and checks that their logits agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hfpipe.recipe_args import parse_recipe_args, setup_logging

DIRECTIONS = ("to_native", "to_hfpipe")


@dataclass
class ExportNativeArguments:
    model_name_or_path: str = field(
        metadata={"help": "to_native: an hfpipe checkpoint (llama layout); to_hfpipe: a Llama or Qwen3 one."}
    )
    output_dir: str = field(metadata={"help": "Where to write the converted model and its tokenizer."})
    direction: str = field(default="to_native", metadata={"help": "to_native or to_hfpipe."})

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {self.direction!r}")


ARGUMENTS = (ExportNativeArguments,)


def main(args: list[str] | None = None):
    """Convert, then compare the logits of the source and the written model; returns the output directory."""
    setup_logging()
    (cfg,) = parse_recipe_args(ARGUMENTS, args)
    from hfpipe.export.native import export_native, import_native, max_logit_difference

    convert = export_native if cfg.direction == "to_native" else import_native
    path = convert(cfg.model_name_or_path, cfg.output_dir)
    worst = max_logit_difference(cfg.model_name_or_path, path)
    print(f"{cfg.direction.replace('to_', '')} model written to {path}; its logits equal the source's "
          f"(largest difference {worst:.1e})")  # fmt: skip
    return path
