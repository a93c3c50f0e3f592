"""Does packing keep attention per example with this model? Asked of the model itself, not assumed.

trl's padding-free packing concatenates examples into one row and marks where each starts with restarting
``position_ids`` (no attention mask). Flash-attention kernels cut attention there; on CPU, transformers'
sdpa/eager masks do so only for models that build their mask from those position ids (hfpipe's GPT and
most transformers models do). The probe runs two short random sequences packed and alone and compares logits.
"""

from __future__ import annotations

import torch
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling


@torch.no_grad()
def packed_logits_gap(
    model, lengths: tuple[int, ...] = (5, 3, 4), seed: int = 0, alone: bool = True
) -> float:
    """Largest |logit| difference between a padding-free packed batch and each example run alone
    (``alone=False``: only run the packed batch, and return 0)."""
    vocab = model.get_input_embeddings().num_embeddings
    gen = torch.Generator().manual_seed(seed)
    examples = [{"input_ids": torch.randint(0, vocab, (n,), generator=gen).tolist()} for n in lengths]
    batch = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(examples)
    inputs = {k: v.to(model.device) if torch.is_tensor(v) else v for k, v in batch.items() if k != "labels"}
    was_training = model.training
    model.eval()
    try:
        packed = model(**inputs, use_cache=False).logits[0].float()
        if not alone:
            return 0.0
        alone = [
            model(input_ids=torch.tensor([e["input_ids"]], device=model.device), use_cache=False)
            .logits[0]
            .float()
            for e in examples
        ]
    finally:
        model.train(was_training)
    return (packed - torch.cat(alone)).abs().max().item()


def check_packing(model, batch_size: int = 1, max_length: int = 8, tolerance: float = 1e-3) -> None:
    """Raise a ValueError saying why when packing cannot train ``model`` correctly.

    Checks that packed examples do not attend to each other, and that the model takes one padding-free
    row of ``batch_size * max_length`` tokens: trl concatenates a batch's packed rows into a single row.
    """
    attn = getattr(model.config, "_attn_implementation", None)
    if batch_size > 1:
        try:
            packed_logits_gap(model, lengths=(max_length,) * batch_size, alone=False)
        except ValueError as err:
            raise ValueError(
                f"packing: true is refused with per_device batch size {batch_size}: trl joins a batch's packed rows "
                f"into one row of up to {batch_size * max_length} tokens, which {type(model).__name__} does not "
                f"take ({err}); set per_device_train_batch_size: 1 and per_device_eval_batch_size: 1 (raise "
                "gradient_accumulation_steps instead), or packing: false"
            ) from None
    try:
        gap = packed_logits_gap(model)
    except Exception as err:  # a model whose forward does not take padding-free batches at all
        raise ValueError(
            f"packing: true is refused: {type(model).__name__} ({attn}) cannot run a padding-free packed batch "
            f"({type(err).__name__}: {err}); set packing: false"
        ) from None
    if gap > tolerance:
        raise ValueError(
            f"packing: true is refused: with {type(model).__name__} ({attn} attention) packed examples attend to "
            f"each other (logits differ from each example run alone by {gap:.3g}); set packing: false, or use "
            "attn_implementation: flash_attention_2 on a GPU"
        )
