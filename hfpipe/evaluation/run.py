"""Evaluate one or many checkpoints in one run and write the comparison table (``recipes/evaluate_model.py``).

For each checkpoint (loaded once): perplexity and bits per byte on a text dataset, lm-eval tasks, and
the LLM judge on its ``test_responses.json``; a classifier checkpoint gets classification metrics on a
labelled split instead. Each checkpoint's metrics go to ``output_dir/<stage>/results.json``; the table
of all of them (plus any earlier ``results_files``) to ``output_dir/table.{md,json,png}``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from hfpipe.evaluation.results import make_results, read_results, write_results_table
from hfpipe.io import write_json_atomically

logger = logging.getLogger(__name__)

LOCAL_TEXT = Path(__file__).resolve().parent / "tasks" / "hfpipe_text.txt"


@dataclass
class EvaluationArguments:
    """What to evaluate and how. The text/labelled dataset is trl's ``ScriptArguments.dataset_name``."""

    model_name_or_path: list[str] = field(
        default_factory=list,
        metadata={"help": "Checkpoints to evaluate: hfpipe/GPT-2/any causal LM dirs or Hub ids."},
    )
    stage_names: list[str] = field(
        default_factory=list,
        metadata={"help": "Row labels for the checkpoints (default: their directory names)."},
    )
    results_files: list[str] = field(
        default_factory=list, metadata={"help": "Existing results.json files (or dirs) to add to the table."}
    )
    tokenizer_name_or_path: str | None = field(
        default=None, metadata={"help": "Tokenizer, if not the model's."}
    )
    output_dir: str = field(default="outputs/eval", metadata={"help": "Where results and the table go."})
    text_column: str = field(default="text", metadata={"help": "Column holding the text."})
    label_column: str = field(default="label", metadata={"help": "Column holding the label (classifiers)."})
    column_names: list[str] | None = field(
        default=None, metadata={"help": "Columns of a csv/tsv without header."}
    )
    sample_by: str = field(default="document", metadata={"help": ".txt files: document, paragraph or line."})
    max_eval_documents: int | None = field(
        default=None, metadata={"help": "Score only the first N documents."}
    )
    perplexity: bool = field(default=True, metadata={"help": "Compute perplexity and bits per byte."})
    max_length: int | None = field(
        default=None, metadata={"help": "Window length (default: the model's context)."}
    )
    stride: int | None = field(
        default=None,
        metadata={
            "help": "Tokens of context every token after the first window keeps (windows overlap by it); default: half the window, 0: disjoint."
        },
    )
    eval_batch_size: int = field(default=8, metadata={"help": "Windows/examples per forward pass."})
    lm_eval_tasks: list[str] = field(
        default_factory=list,
        metadata={"help": "lm-eval tasks: hfpipe_mc, hfpipe_bpb (local) or Hub task names."},
    )
    lm_eval_limit: int | None = field(default=None, metadata={"help": "Examples per lm-eval task (testing)."})
    num_fewshot: int | None = field(default=None, metadata={"help": "Few-shot examples for lm-eval tasks."})
    judge_responses: str | None = field(
        default=None,
        metadata={"help": "Answers to judge: a file, or a file name looked up in each checkpoint directory."},
    )
    judge_url: str | None = field(
        default=None, metadata={"help": "OpenAI-compatible endpoint, e.g. http://localhost:11434/v1."}
    )
    judge_model: str | None = field(
        default=None, metadata={"help": "The judge's model name at that endpoint."}
    )
    judge_api_key_env: str = field(
        default="OPENAI_API_KEY", metadata={"help": "Env var holding the API key."}
    )
    judge_max_retries: int = field(default=3, metadata={"help": "Retries of a failed judge call."})
    judge_timeout: float = field(default=120.0, metadata={"help": "Seconds before a judge call times out."})
    progress: bool = field(default=True, metadata={"help": "Show progress bars."})

    def __post_init__(self):
        if not self.model_name_or_path and not self.results_files:
            raise ValueError("nothing to evaluate: set model_name_or_path (one or more) or results_files")
        if self.stage_names and len(self.stage_names) != len(self.model_name_or_path):
            raise ValueError(
                f"stage_names has {len(self.stage_names)} names for {len(self.model_name_or_path)} checkpoints; "
                "give one per checkpoint or none"
            )
        if self.judge_responses and not (self.judge_url and self.judge_model):
            raise ValueError(
                "judge_responses needs judge_url and judge_model (an OpenAI-compatible endpoint)"
            )
        if self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be >= 1, got {self.eval_batch_size}")


def _stage_names(args: EvaluationArguments) -> list[str]:
    names = args.stage_names or [Path(p.rstrip("/")).name or p for p in args.model_name_or_path]
    seen: dict[str, int] = {}
    unique = []
    for name in names:  # two checkpoints called "final" must not share a directory
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return unique


def load_eval_texts(script_args, args: EvaluationArguments):
    """The texts to score: ``dataset_name`` through hfpipe's data sources, or hfpipe's local text."""
    from hfpipe.data.sources import load_text_dataset

    source = script_args.dataset_name if script_args is not None else None
    if not source:
        logger.info("no dataset_name: scoring hfpipe's local text (%s)", LOCAL_TEXT.name)
        source, sample_by = str(LOCAL_TEXT), "paragraph"
    else:
        sample_by = args.sample_by
    ds = load_text_dataset(source, args.text_column, script_args.dataset_streaming if script_args else False,
                           script_args.dataset_test_split if script_args else "test",
                           script_args.dataset_config if script_args else None, args.column_names, sample_by)  # fmt: skip
    if args.max_eval_documents:
        ds = ds.take(args.max_eval_documents)
    texts = (row["text"] for row in ds)
    return list(texts) if not script_args or not script_args.dataset_streaming else texts


def perplexity_text(script_args) -> str:
    """The text perplexity is computed on, in words, for tables and the report card."""
    if script_args is not None and script_args.dataset_name:
        return str(script_args.dataset_name)
    return f"hfpipe's local text ({LOCAL_TEXT.name}: short paragraphs of everyday and technical English)"


def _responses_path(args: EvaluationArguments, checkpoint: str) -> Path | None:
    path = Path(args.judge_responses)
    if path.is_file():
        return path
    inside = Path(checkpoint) / args.judge_responses
    if inside.is_file():
        return inside
    if len(args.model_name_or_path) == 1:
        raise FileNotFoundError(
            f"judge_responses {args.judge_responses!r}: no such file (nor in {checkpoint})"
        )
    logger.info("%s has no %s: not judged", checkpoint, args.judge_responses)
    return None


def evaluate_checkpoint(checkpoint: str, stage: str, args: EvaluationArguments, script_args=None) -> dict:
    """Evaluate one checkpoint; returns its results record (also written to ``output_dir/<stage>/results.json``)."""
    from hfpipe.evaluation.classifier import evaluate_classifier, is_classifier
    from hfpipe.loading import load_model_and_tokenizer

    out = Path(args.output_dir) / stage
    classifier = Path(checkpoint).exists() and is_classifier(checkpoint)
    task = "sequence-classification" if classifier else "causal-lm"
    model, tokenizer = load_model_and_tokenizer(checkpoint, task, args.tokenizer_name_or_path)
    metrics: dict[str, float] = {}
    if classifier:
        if not script_args or not script_args.dataset_name:
            raise ValueError(
                f"{checkpoint} is a classifier: set dataset_name to a labelled split to evaluate it"
            )
        metrics |= evaluate_classifier(model, tokenizer, script_args.dataset_name, args.text_column, args.label_column,
                                       args.column_names, script_args.dataset_test_split, args.eval_batch_size,
                                       args.progress)  # fmt: skip
    else:
        if args.perplexity:
            from hfpipe.evaluation.perplexity import evaluate_perplexity

            texts = load_eval_texts(script_args, args)
            result = evaluate_perplexity(model, tokenizer, texts, args.max_length, args.stride, args.eval_batch_size,
                                         progress=args.progress)  # fmt: skip
            metrics |= result.metrics()
        if args.lm_eval_tasks:
            from hfpipe.evaluation.harness import run_lm_eval

            metrics |= run_lm_eval(model, tokenizer, args.lm_eval_tasks, args.eval_batch_size, args.lm_eval_limit,
                                   args.num_fewshot, args.max_length)  # fmt: skip
    if args.judge_responses and (responses := _responses_path(args, checkpoint)):
        from hfpipe.evaluation.judge import judge_responses, load_responses

        summary = judge_responses(load_responses(responses), args.judge_url, args.judge_model,
                                  out / "judge_scores.json", os.environ.get(args.judge_api_key_env),
                                  args.judge_max_retries, args.judge_timeout, progress=args.progress)  # fmt: skip
        metrics |= summary.metrics()
    extra = {"perplexity_text": perplexity_text(script_args)} if args.perplexity and not classifier else {}
    record = make_results(checkpoint, metrics, stage, **extra)
    write_json_atomically(record, out / "results.json")
    logger.info("%s: %s", stage, ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return record


def evaluate_checkpoints(args: EvaluationArguments, script_args=None) -> dict[str, Path]:
    """Evaluate every checkpoint, add ``results_files``, write the table; returns the table's paths."""
    rows = [read_results(p) for p in args.results_files]
    for checkpoint, stage in zip(args.model_name_or_path, _stage_names(args)):
        logger.info("evaluating %s (%s)", checkpoint, stage)
        rows.append(evaluate_checkpoint(checkpoint, stage, args, script_args))
    return write_results_table(rows, args.output_dir)
