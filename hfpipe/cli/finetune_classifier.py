"""Fine-tune a causal GPT checkpoint (hfpipe-pretrained or converted GPT-2) as a text classifier.

    python recipes/finetune_classifier.py --config recipes/configs/classifier_sms_spam.yaml \
        --model_name_or_path my-pretrained-gpt --dataset_name path/to/sms_spam_collection.tsv

Settings: trl's ScriptArguments (dataset_name...) and ModelConfig (model_name_or_path, use_peft, lora_*),
hfpipe's ClassifierDataArguments (text_column, column_names, the 70/10/20 split) and ClassifierArguments, TrainingArguments.
Writes to ``output_dir``: the classifier + tokenizer (``pipeline("text-classification", model=output_dir)``
and ``AutoModelForSequenceClassification`` load it; with LoRA it is the merged plain model), with LoRA also
``output_dir/adapter`` (the peft adapter with the ``score`` head), and ``results.json``.
"""

from __future__ import annotations

from pathlib import Path

from transformers import TrainingArguments, set_seed
from trl import ModelConfig, ScriptArguments

from hfpipe.classification import (
    ClassifierArguments,
    ClassifierDataArguments,
    finetune_classifier,
)
from hfpipe.evaluation.results import RESULTS_FILE
from hfpipe.recipe_args import parse_recipe_args, setup_logging

ARGUMENTS = (ScriptArguments, ModelConfig, ClassifierDataArguments, ClassifierArguments, TrainingArguments)


def _summary(result: dict) -> str:
    names = list(result["id2label"].values())
    lines = [
        f"strategy {result['strategy']}: {result['trainable_params']:,} of {result['total_params']:,} parameters "
        f"trained, {result['train_runtime']:.1f} s",
        f"{'split':<11}{'n':>6}{'accuracy':>10}{'precision':>11}{'recall':>8}{'f1':>8}",
    ]
    for split in ("validation", "test"):
        m = result.get(split)
        if m:
            lines.append(
                f"{split:<11}{m['n']:>6}{m['accuracy']:>10.4f}{m['precision']:>11.4f}{m['recall']:>8.4f}{m['f1']:>8.4f}"
            )
    width = max(len(n) for n in names) + 2
    lines.append("test confusion matrix (rows: true, columns: predicted)")
    lines.append(" " * width + "".join(f"{n:>{width}}" for n in names))
    for name, row in zip(names, result["test"]["confusion_matrix"]):
        lines.append(f"{name:>{width}}" + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


def main(args: list[str] | None = None) -> dict:
    """Run the recipe; returns the metrics dict also written to ``output_dir/results.json``."""
    script_args, model_args, data_args, cfg, training_args = parse_recipe_args(ARGUMENTS, args)
    setup_logging(training_args.should_log)
    set_seed(training_args.seed)
    result = finetune_classifier(script_args, model_args, data_args, cfg, training_args)
    if training_args.process_index == 0:
        out = Path(training_args.output_dir)
        print(_summary(result))
        where = f"classifier: {out}"
        if result["strategy"] == "lora":
            where += f" (merged LoRA); adapter: {out / 'adapter'}"
        print(f"{where}; metrics: {out / RESULTS_FILE}")
    return result
