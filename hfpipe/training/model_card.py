"""A short, honest model card (the Hub README) for a model any hfpipe training stage wrote."""

from __future__ import annotations

from pathlib import Path

STAGES = {
    "pretrain": "Pretrained",
    "classifier": "Fine-tuned as a sequence classifier",
    "sft": "Instruction-tuned (SFT)",
    "reward_model": "Trained as a reward model on preference pairs",
    "dpo": "Preference-tuned with DPO",
    "rl": "Tuned with online RL (GRPO) against its rewards",
    "distill": "Distilled from a larger teacher",
}
# The figures a reader looks for first, in this order, when the stage reported them.
CARD_METRICS = (
    "tokens_seen", "eval_loss", "eval_perplexity", "test_accuracy", "test_f1", "test_margin",
    "test_rewards/accuracies", "test_rewards/margins", "eos_share", "reward_last_10pct",
)  # fmt: skip

_HEADER = """---
library_name: transformers
tags: [hfpipe, gpt, {pipeline_tag}]
pipeline_tag: {pipeline_tag}
---

# {name}

{description}
{stage} with hfpipe{on_data}.

| | |
|---|---|
| optimizer steps | {steps:,} |
{rows}
"""

_GENERATE = """
## Use

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("{repo}", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("{repo}", trust_remote_code=True)
out = model.generate(**tokenizer("{prompt}", return_tensors="pt"), max_new_tokens=40)
print(tokenizer.decode(out[0]))
```
"""

_CLASSIFY = """
## Use

```python
from transformers import pipeline

scorer = pipeline("text-classification", model="{repo}", trust_remote_code=True)
print(scorer("{prompt}"))
```
"""

_REMOTE_CODE = """
`trust_remote_code=True` loads the model code saved beside the weights (`modeling_gpt.py`), so hfpipe need not
be installed; with hfpipe installed, `import hfpipe` registers the model and no flag is needed.
"""


def _describe(model) -> str:
    c = model.config
    n = sum(p.numel() for p in model.parameters())
    shape = [f"{getattr(c, k)} {label}" for k, label in (("num_hidden_layers", "layers"), ("hidden_size", "dims"),
             ("num_attention_heads", "heads"), ("max_position_embeddings", "context")) if hasattr(c, k)]  # fmt: skip
    gpt = getattr(c, "model_type", "") == "hfpipe_gpt"
    kind = "A GPT" if gpt else f"A {type(model).__name__}"
    text = f"{kind} ({n:,} parameters" + (f": {', '.join(shape)}" if shape else "") + ")"
    if gpt:
        from ..models.gpt.configuration_gpt import describe_architecture

        text += f"; architecture: {describe_architecture(c)}"
    return text + "."


def write_model_card(out: str | Path, model, *, stage: str, metrics: dict, steps: int, repo: str | None = None,
                     dataset: str | None = None, prompt: str = "Every effort moves you", sample: str | None = None) -> Path:  # fmt: skip
    """Write ``out/README.md``: what the model is, how it was trained, its headline figures and how to use it."""
    rows = "\n".join(
        f"| {key.replace('_', ' ')} | {metrics[key]:,.4g} |" for key in CARD_METRICS if key in metrics
    )
    classifier = type(model).__name__.endswith("ForSequenceClassification")
    text = _HEADER.format(
        name=Path(out).name,
        pipeline_tag="text-classification" if classifier else "text-generation",
        description=_describe(model),
        stage=STAGES.get(stage, stage),
        on_data=f" on `{dataset}`" if dataset else "",
        steps=steps,
        rows=rows,
    )
    repo = repo or str(Path(out).resolve())
    text += (_CLASSIFY if classifier else _GENERATE).format(repo=repo, prompt=prompt.replace('"', "'"))
    if getattr(model.config, "model_type", "") == "hfpipe_gpt":
        text += _REMOTE_CODE
    if sample is not None:
        text += f"\nSample continuation at the end of training:\n\n> {prompt}{sample.replace(chr(10), ' ')}\n"
    if (Path(out) / "loss.png").is_file():
        text += "\n![loss](loss.png)\n"
    path = Path(out) / "README.md"
    path.write_text(text)
    return path
