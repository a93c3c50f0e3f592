"""``hfpipe <command>``: every recipe as one command, with the recipe's own arguments and YAML.

    hfpipe pretrain --config quickstart                      # a packaged config (hfpipe configs), or a file
    hfpipe sft --config recipes/configs/sft_alpaca.yaml --model_name_or_path outputs/quickstart ...
    accelerate launch -m hfpipe pretrain --config ...        # several processes
    hfpipe <command> --help                                  # its settings

Each command is a module of this package with ``ARGUMENTS`` (its dataclasses) and ``main(args)``;
``recipes/<name>.py`` are thin wrappers over the same modules.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from pathlib import Path

# command -> (module in hfpipe.cli, what it does)
COMMANDS = {
    "train_tokenizer": ("train_tokenizer", "train a byte-level BPE or character-level tokenizer"),
    "prepare_data": ("prepare_data", "clean, deduplicate, tokenize and pack a corpus into token shards"),
    "pretrain": ("pretrain", "pretrain or continue pretraining a GPT with Trainer"),
    "finetune_classifier": ("finetune_classifier", "fine-tune a classifier (last blocks, full or LoRA)"),
    "sft": ("sft", "instruction fine-tuning with trl's SFTTrainer"),
    "inspect_sft_data": ("inspect_sft_data", "show what SFT trains on, token by token"),
    "reward_model": ("reward_model", "train a reward model on preference pairs"),
    "dpo": ("dpo", "preference tuning with DPO"),
    "rl": ("rl", "online RL (GRPO) against a reward model and rewards"),
    "distill": ("distill", "distill a teacher into a smaller student"),
    "evaluate": ("evaluate_model", "perplexity, bits per byte, lm-eval tasks, LLM judge; one table"),
    "chat": ("chat", "chat with a model in the terminal"),
    "serve": ("serve", "an OpenAI-compatible server"),
    "quantize": ("quantize", "int8 weight-only quantization with torchao"),
    "export_gguf": ("export_gguf", "export to GGUF for llama.cpp"),
    "export_native": ("export_native", "save a llama-layout GPT as transformers' Llama/Qwen3 (and back)"),
    "convert_gpt2": ("convert_gpt2", "convert GPT-2 checkpoints to hfpipe and back"),
    "refresh_code": ("refresh_code", "replace the model code saved beside a model with this hfpipe's"),
    "pipeline": ("pipeline", "run the stages of a pipeline config, from raw text to a served model"),
    "configs": ("configs", "list the configs hfpipe ships (any --config takes their names); print one"),
    "env": ("env", "print the versions, hardware and bf16 support for a bug report"),
}


HELP_FLAGS = ("-h", "--help", "--help-all")


def only_prints_help(argv: list[str]) -> bool:
    """True for a process started to print one hfpipe command's help: ``hfpipe <command> --help``,
    ``python -m hfpipe <command> --help`` or ``python recipes/<name>.py --help``."""
    entry = Path(argv[0]) if argv else Path()
    ours = (
        entry.name == "hfpipe"
        or entry == Path(__file__).parents[1] / "__main__.py"
        or (entry.parent.name == "recipes" and entry.stem in {module for module, _ in COMMANDS.values()})
    )
    return ours and any(flag in HELP_FLAGS for flag in argv[1:])


def skip_peft_when_only_printing_help(argv: list[str]) -> None:
    """Keep peft out of a help-only process: transformers imports it (and, through it, its model classes, ~half
    of the start-up time) with ``TrainingArguments`` only because it is installed; no setting needs it."""
    if only_prints_help(argv) and "peft" not in sys.modules:
        sys.modules["peft"] = None  # find_spec() then reports it missing, so transformers skips it


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items()]
    return (
        "usage: hfpipe <command> [--config file.yaml] [--key value ...]\n\ncommands:\n"
        + "\n".join(lines)
        + (
            "\n\n`hfpipe <command> --help` lists a command's settings; several processes: "
            "`accelerate launch -m hfpipe <command> ...`"
        )
    )


def main(argv: list[str] | None = None) -> None:
    """Run ``hfpipe <command> [args]``; a mistake ends in one ``error: ...`` line and exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return
    command, args = argv[0], argv[1:]
    if command not in COMMANDS:
        close = difflib.get_close_matches(command, COMMANDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        print(f"error: unknown command {command!r}{hint} (hfpipe --help lists them)", file=sys.stderr)
        sys.exit(2)
    from hfpipe.recipe_args import run_recipe

    module = importlib.import_module(f"hfpipe.cli.{COMMANDS[command][0]}")
    sys.argv = [f"hfpipe {command}", *args]  # the name --help shows
    run_recipe(lambda: module.main(args))


# before a command's module imports transformers' TrainingArguments
skip_peft_when_only_printing_help(sys.argv)
