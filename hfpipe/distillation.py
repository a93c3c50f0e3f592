"""Knowledge distillation of a larger causal LM (hfpipe or GPT-2) into a smaller hfpipe GPT.

    trainer, report = distill(script_args, model_args, arch_args, data_args, train_args)

The student learns the teacher's next-token distribution on packed text blocks (Hinton et al.):
``loss = alpha * T² * KL(teacher_T || student_T) + (1 - alpha) * LM loss``, T the temperature.

Why not trl's trainers: trl 1.16's ``DistillationTrainer`` is on-policy (the student generates completions
from a ``prompt`` column at every step) and ``GKDTrainer`` is experimental and chat-formatted; distilling
on plain text blocks on a CPU needs neither, so this is a small ``Trainer`` subclass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn import functional as F
from transformers import Trainer, TrainingArguments

from .data import build_lm_datasets
from .evaluation.perplexity import block_perplexity
from .export.compare import compare_speed, count_parameters, format_table
from .loading import load_model, load_tokenizer
from .pretraining import ArchitectureArguments, build_model, collate_blocks
from .training.run import finish_run, prepare_output_dir, train_and_evaluate

logger = logging.getLogger(__name__)


@dataclass
class DistillConfig(TrainingArguments):
    """``TrainingArguments`` plus the teacher and the distillation loss (names as in trl's ``DistillationConfig``)."""

    teacher_model_name_or_path: str | None = field(
        default=None, metadata={"help": "The larger model to learn from: an hfpipe or GPT-2 checkpoint."}
    )
    temperature: float = field(default=2.0, metadata={"help": "Softens both distributions in the KL term."})
    alpha: float = field(
        default=0.5, metadata={"help": "Weight of the KL term; 1 - alpha goes to the usual LM loss."}
    )
    logging_steps: float = field(default=10, metadata={"help": "Log every this many steps."})
    report_to: None | str | list[str] = field(default="none", metadata={"help": "Logging integrations."})

    def __post_init__(self):
        super().__post_init__()
        if not self.teacher_model_name_or_path:
            raise ValueError("teacher_model_name_or_path is not set: name the checkpoint to distill from")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")


def distillation_loss(student_logits, teacher_logits, labels, temperature: float, num_items=None):
    """T² · KL(teacher_T || student_T) over the next-token predictions that have a label, averaged per token
    (or divided by ``num_items``, Trainer's token count across gradient accumulation)."""
    vocab = min(
        student_logits.shape[-1], teacher_logits.shape[-1]
    )  # rows past the tokenizer are never targets
    student = F.log_softmax(student_logits[:, :-1, :vocab].float() / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits[:, :-1, :vocab].float() / temperature, dim=-1)
    mask = labels[:, 1:] != -100
    kl = F.kl_div(student, teacher, log_target=True, reduction="none").sum(-1)
    total = (kl * mask).sum() * temperature**2
    return total / (num_items if num_items is not None else mask.sum().clamp(min=1))


class DistillationTrainer(Trainer):
    """``Trainer`` whose training loss mixes the teacher's soft targets with the LM loss; evaluation
    reports the student's plain LM loss (so ``eval_perplexity`` is comparable with the teacher's)."""

    def __init__(self, *args, teacher_model, temperature: float = 2.0, alpha: float = 0.5, **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher = teacher_model.eval().requires_grad_(False).to(self.args.device)
        self.temperature, self.alpha = temperature, alpha
        self._parts = {"kd_loss": [], "lm_loss": []}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.model_accepts_loss_kwargs and num_items_in_batch is not None:
            inputs = {**inputs, "num_items_in_batch": num_items_in_batch}
        outputs = model(**inputs)
        if not model.training or self.alpha == 0:
            return (outputs.loss, outputs) if return_outputs else outputs.loss
        with torch.no_grad():
            teacher_logits = self.teacher(
                input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"), use_cache=False
            ).logits
        n = num_items_in_batch if self.model_accepts_loss_kwargs else None
        kd = distillation_loss(outputs.logits, teacher_logits, inputs["labels"], self.temperature, n)
        loss = self.alpha * kd + (1 - self.alpha) * outputs.loss
        self._parts["kd_loss"].append(kd.detach().item())
        self._parts["lm_loss"].append(outputs.loss.detach().item())
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict, *args, **kwargs) -> None:
        if "loss" in logs:
            for name, values in self._parts.items():
                if values:
                    logs[name] = round(sum(values) / len(values), 4)
                    values.clear()
        super().log(logs, *args, **kwargs)


def check_same_tokenizer(teacher_tokenizer, student_tokenizer, teacher_name: str, student_name: str) -> None:
    """Raise ValueError unless both tokenizers map every token to the same id."""
    teacher_vocab, student_vocab = teacher_tokenizer.get_vocab(), student_tokenizer.get_vocab()
    if teacher_vocab == student_vocab:
        return
    differ = sorted(set(teacher_vocab.items()) ^ set(student_vocab.items()), key=lambda kv: kv[1])[:3]
    raise ValueError(
        f"the teacher {teacher_name} and the student {student_name} have different tokenizers "
        f"({len(teacher_vocab)} vs {len(student_vocab)} tokens; e.g. {differ}): distillation matches "
        "next-token distributions id by id, so both need the teacher's tokenizer. Leave model_name_or_path "
        "unset to build a new student on the teacher's tokenizer"
    )


def _build_student(model_args, arch_args: ArchitectureArguments, teacher, tokenizer, teacher_name: str):
    if model_args.model_name_or_path:
        check_same_tokenizer(
            tokenizer,
            load_tokenizer(model_args.model_name_or_path),
            teacher_name,
            model_args.model_name_or_path,
        )
    elif arch_args.context_length is None:
        arch_args.context_length = teacher.config.max_position_embeddings
    student = build_model(model_args, arch_args, tokenizer)
    for name, model in (("teacher", teacher), ("student", student)):
        if model.config.vocab_size < len(tokenizer):
            raise ValueError(
                f"the {name} has {model.config.vocab_size} embeddings for a tokenizer of {len(tokenizer)} tokens"
            )
    return student


def compare_teacher_student(teacher, student, eval_blocks: torch.Tensor, max_new_tokens: int = 32) -> dict:
    """Perplexity on ``eval_blocks``, parameters and greedy generation tokens/s of both models."""
    prompt = eval_blocks[:1, :8]
    speed = compare_speed({"teacher": teacher, "student": student}, prompt, max_new_tokens, rounds=2)
    rows = {}
    for name, model in (("teacher", teacher), ("student", student)):
        rows[name] = {
            "parameters": count_parameters(model),
            "perplexity": block_perplexity(model, eval_blocks),
            "tokens_per_second": speed[name],
        }
    return rows


def format_report(rows: dict) -> str:
    """The teacher/student comparison as a Markdown table, with student/teacher ratios."""
    t, s = rows["teacher"], rows["student"]
    table = [
        [name, f"{r['parameters']:,}", f"{r['perplexity']:.2f}", f"{r['tokens_per_second']:.1f}"]
        for name, r in rows.items()
    ]
    table.append(
        [
            "student / teacher",
            f"{s['parameters'] / t['parameters']:.2f}x",
            f"{s['perplexity'] / t['perplexity']:.2f}x",
            f"{s['tokens_per_second'] / t['tokens_per_second']:.2f}x",
        ]
    )
    return format_table(["model", "parameters", "validation perplexity", "generation tokens/s"], table)


def distill(script_args, model_args, arch_args: ArchitectureArguments, data_args, train_args: DistillConfig):
    """Distill ``train_args.teacher_model_name_or_path`` into a new (or given) student; save it to ``output_dir``.

    Returns ``(trainer, rows)`` with ``rows`` from :func:`compare_teacher_student` on the validation blocks;
    the table is also written to ``output_dir/distillation.md``.
    """
    teacher_name = train_args.teacher_model_name_or_path
    tokenizer = load_tokenizer(teacher_name)
    teacher = load_model(teacher_name)
    student = _build_student(model_args, arch_args, teacher, tokenizer, teacher_name)
    max_context = min(student.config.max_position_embeddings, teacher.config.max_position_embeddings)
    with train_args.main_process_first(desc="dataset preparation"):
        blocks = build_lm_datasets(script_args, data_args, tokenizer, max_context=max_context)
    if "validation" not in blocks or len(blocks["validation"]) == 0:
        raise ValueError(
            "distillation needs validation blocks to compare the models; set validation_size > 0"
        )
    logger.info(
        "teacher %s: %s parameters; student: %s parameters; %d train / %d validation blocks",
        teacher_name, f"{count_parameters(teacher):,}", f"{count_parameters(student):,}",
        len(blocks["train"]), len(blocks["validation"]),
    )  # fmt: skip
    prepare_output_dir(train_args)
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        temperature=train_args.temperature,
        alpha=train_args.alpha,
        args=train_args,
        train_dataset=blocks["train"],
        eval_dataset=blocks["validation"],
        data_collator=collate_blocks,
        processing_class=tokenizer,
    )
    metrics = train_and_evaluate(trainer)
    eval_ids = torch.as_tensor(blocks["validation"]["input_ids"], dtype=torch.long)
    rows = compare_teacher_student(teacher, trainer.model.eval(), eval_ids)
    for name, row in rows.items():
        metrics.update({f"{name}_{k}": v for k, v in row.items()})
    finish_run(trainer, tokenizer, "distill", metrics, teacher=teacher_name,
               card={"dataset": script_args.dataset_name})  # fmt: skip
    if trainer.is_world_process_zero():
        (Path(train_args.output_dir) / "distillation.md").write_text(format_report(rows) + "\n")
    return trainer, rows
