"""Pretrain (or continue pretraining) a GPT with transformers' Trainer.

    accelerate launch recipes/pretrain.py --config recipes/configs/quickstart.yaml
    accelerate launch --config_file accelerate_configs/multi_gpu.yaml recipes/pretrain.py \\
        --config recipes/configs/gpt2_124m_fineweb_edu.yaml

Settings: defaults < YAML (--config) < command-line flags; keys are the fields of ModelArguments,
DataArguments, TokenizerArguments and PretrainConfig (transformers' TrainingArguments + a few more).
Re-running with the same output_dir resumes from its last complete checkpoint.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from datasets import IterableDataset
from transformers import set_seed
from transformers.utils import logging as hf_logging

from hfpipe.data import DataArguments, build_lm_datasets
from hfpipe.data.stdlib_corpus import stdlib_corpus_path
from hfpipe.recipe_args import parse_recipe_args
from hfpipe.tokenization import TokenizerArguments, build_tokenizer, load_tokenizer, save_tokenizer
from hfpipe.training.args import ModelArguments, PretrainConfig, build_model
from hfpipe.training.callbacks import SampleTextCallback, generate_sample
from hfpipe.training.checkpoints import find_resume_checkpoint
from hfpipe.training.model_card import write_model_card
from hfpipe.training.plot import plot_losses
from hfpipe.training.throughput import flops_per_token, measure_matmul_peak
from hfpipe.training.trainer import PretrainTrainer, collate_blocks

logger = logging.getLogger("hfpipe.pretrain")


def get_tokenizer(
    tok_args: TokenizerArguments, model_args: ModelArguments, data_args: DataArguments, out: Path
):
    """The tokenizer named in the config, the checkpoint's own, or one trained on the corpus (kept in out/tokenizer)."""
    if tok_args.tokenizer_name_or_path:
        return load_tokenizer(tok_args.tokenizer_name_or_path)
    if model_args.model_name_or_path:
        return load_tokenizer(model_args.model_name_or_path)
    saved = out / "tokenizer"
    if (saved / "tokenizer.json").is_file():  # resuming, or another rank trained it first
        return load_tokenizer(saved)
    tokenizer, bytes_per_token = build_tokenizer(tok_args, data_args)
    if bytes_per_token:
        logger.info(
            "trained a %d-token tokenizer: %.2f bytes per token on held-out text",
            len(tokenizer),
            bytes_per_token,
        )
    save_tokenizer(tokenizer, saved)
    return tokenizer


def check_dataset_sizes(train_set, eval_set, train_args) -> None:
    """Fail early, naming the fix, when there is not one training batch or nothing to evaluate on."""
    global_batch = train_args.per_device_train_batch_size * train_args.world_size
    if len(train_set) < global_batch:
        raise ValueError(
            f"the training set has {len(train_set)} blocks, fewer than one batch ({global_batch}); "
            "add data, or lower block_size or per_device_train_batch_size"
        )
    eval_batch = train_args.per_device_eval_batch_size * train_args.world_size
    n_eval = 0 if eval_set is None else len(eval_set)
    if train_args.eval_strategy != "no" and (
        n_eval == 0 or (train_args.dataloader_drop_last and n_eval < eval_batch)
    ):
        raise ValueError(
            f"the validation set has {n_eval} blocks, too few to evaluate (batch {eval_batch}"
            f"{', dataloader_drop_last' if train_args.dataloader_drop_last else ''}); raise "
            "validation_split_percentage or add data, or set eval_strategy: 'no'"
        )


def main(args: list[str] | None = None) -> PretrainTrainer:
    """Run pretraining; the final model is in ``trainer.args.output_dir``. Returns the trainer."""
    model_args, data_args, tok_args, train_args = parse_recipe_args(
        [ModelArguments, DataArguments, TokenizerArguments, PretrainConfig], args
    )
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO, stream=sys.stdout
    )
    if not train_args.should_log:
        logging.getLogger().setLevel(logging.WARNING)
    hf_logging.set_verbosity_warning()
    set_seed(train_args.seed)
    out = Path(train_args.output_dir)
    with train_args.main_process_first(desc="tokenizer"):
        if data_args.dataset_name is None and data_args.packed_dataset_path is None:
            data_args.dataset_name = str(stdlib_corpus_path())
            logger.info("no dataset_name given: using the embedded corpus of standard-library docstrings")
        tokenizer = get_tokenizer(tok_args, model_args, data_args, out)
    model = build_model(model_args, tokenizer)
    tokenizer.model_max_length = model.config.context_length
    resume = find_resume_checkpoint(out, model.config, is_main_process=train_args.process_index == 0)

    with train_args.main_process_first(desc="dataset preparation"):
        lm_datasets = build_lm_datasets(data_args, tokenizer, max_context=model.config.context_length)
    train_set, eval_set = lm_datasets["train"], lm_datasets.get("validation")
    if isinstance(train_set, IterableDataset):  # streaming: sizes are unknown, Trainer needs max_steps
        if train_args.max_steps <= 0:
            raise ValueError("streaming datasets have no length: set max_steps")
        block_size = len(next(iter(train_set))["input_ids"])
    else:
        check_dataset_sizes(train_set, eval_set, train_args)
        block_size = len(train_set[0]["input_ids"])
    global_batch = train_args.per_device_train_batch_size * train_args.world_size
    tokens_per_step = global_batch * train_args.gradient_accumulation_steps * block_size
    peak = train_args.peak_tflops * 1e12 if train_args.peak_tflops else measure_matmul_peak()
    n_params = sum(p.numel() for p in model.parameters())
    count = lambda d: "streamed" if isinstance(d, IterableDataset) else f"{len(d or []):,}"  # noqa: E731
    logger.info(
        "model: %s parameters, %d layers x %d dims, context %d | %s train / %s validation blocks of %d tokens | "
        "%s tokens per optimizer step",
        f"{n_params:,}",
        model.config.n_layers,
        model.config.emb_dim,
        model.config.context_length,
        count(train_set),
        count(eval_set),
        block_size,
        f"{tokens_per_step:,}",
    )
    sampler = SampleTextCallback(tokenizer, train_args.sample_prompt, train_args.sample_max_new_tokens)
    trainer = PretrainTrainer(
        model=model,
        args=train_args,
        train_dataset=train_set,
        eval_dataset=eval_set if train_args.eval_strategy != "no" else None,
        processing_class=tokenizer,
        data_collator=collate_blocks,
        callbacks=[sampler],
        tokens_per_step=tokens_per_step,
        flops_per_token=flops_per_token(model.config, block_size),
        peak_flops=peak,
    )
    if resume is not None:
        logger.info("resuming from %s", resume)
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    metrics = dict(result.metrics)
    last_eval = next((h for h in reversed(trainer.state.log_history) if "eval_loss" in h), None)
    if last_eval is not None and last_eval["step"] == trainer.state.global_step:
        metrics.update({k: v for k, v in last_eval.items() if k.startswith("eval_")})  # no second evaluation
    elif eval_set is not None and train_args.eval_strategy != "no":
        metrics.update(trainer.evaluate())

    trainer.save_model(str(out))  # model + tokenizer + modeling code (auto_map)
    if trainer.is_world_process_zero():
        trainer.save_metrics("all", metrics)
        plot = plot_losses(trainer.state.log_history, tokens_per_step, out / "loss.png")
        sample = generate_sample(model, tokenizer, train_args.sample_prompt, train_args.sample_max_new_tokens)
        write_model_card(
            out,
            model,
            dataset=data_args.packed_dataset_path or data_args.dataset_name,
            tokens_seen=trainer.state.global_step * tokens_per_step,
            steps=trainer.state.global_step,
            metrics=metrics,
            prompt=train_args.sample_prompt,
            sample=sample,
            repo=train_args.hub_model_id,
        )
        print(f"\nmodel saved to {out.resolve()}")
        if plot:
            print(f"loss plot: {plot.resolve()}")
        if "eval_loss" in metrics:
            print(f"validation loss {metrics['eval_loss']:.3f} (perplexity {metrics['eval_perplexity']:.1f})")
        print(f"sample: {train_args.sample_prompt}{sample}")
        print(
            "load it with:\n"
            "    from transformers import AutoModelForCausalLM, AutoTokenizer\n"
            f"    model = AutoModelForCausalLM.from_pretrained({str(out.resolve())!r}, trust_remote_code=True)\n"
            f"    tokenizer = AutoTokenizer.from_pretrained({str(out.resolve())!r})"
        )
        (out / "pretrain_summary.json").write_text(
            json.dumps({"metrics": metrics, "sample": sample}, indent=2)
        )
    if train_args.push_to_hub:
        trainer.push_to_hub(commit_message="hfpipe pretraining: final model")
    return trainer


if __name__ == "__main__":
    main()
