"""A short, honest model card (the Hub README) for a model trained by an hfpipe recipe."""

from __future__ import annotations

from pathlib import Path

_TEMPLATE = """---
library_name: transformers
tags: [hfpipe, gpt, text-generation]
pipeline_tag: text-generation
---

# {name}

A GPT ({n_params:,} parameters: {n_layers} layers, {emb_dim} dims, {n_heads} heads, context {context_length}).
{stage} with hfpipe on `{dataset}`.

| | |
|---|---|
| tokens seen | {tokens_seen:,} |
| optimizer steps | {steps:,} |
| validation loss | {eval_loss} |
| validation perplexity | {eval_perplexity} |

## Use

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("{repo}", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("{repo}")
out = model.generate(**tokenizer("{prompt}", return_tensors="pt"), max_new_tokens=40)
print(tokenizer.decode(out[0]))
```

`trust_remote_code=True` loads the model code saved beside the weights (`modeling_gpt.py`), so hfpipe need
not be installed. Sample continuation at the end of training:

> {prompt}{sample}

![loss](loss.png)
"""


def write_model_card(
    out: str | Path,
    model,
    *,
    dataset: str,
    tokens_seen: int,
    steps: int,
    metrics: dict,
    prompt: str,
    sample: str,
    repo: str | None = None,
    stage: str = "pretrained from scratch",
) -> Path:
    """Write ``README.md`` (the Hub model card) describing the model, its data and its results."""
    c = model.config
    fmt = lambda key: f"{metrics[key]:.3f}" if key in metrics else "n/a"  # noqa: E731
    text = _TEMPLATE.format(
        name=Path(out).name,
        stage=stage[:1].upper() + stage[1:],
        n_params=sum(p.numel() for p in model.parameters()),
        n_layers=c.n_layers,
        emb_dim=c.emb_dim,
        n_heads=c.n_heads,
        context_length=c.context_length,
        dataset=dataset,
        tokens_seen=tokens_seen,
        steps=steps,
        eval_loss=fmt("eval_loss"),
        eval_perplexity=fmt("eval_perplexity"),
        repo=repo or str(Path(out).resolve()),
        prompt=prompt,
        sample=sample.replace("\n", " "),
    )
    path = Path(out) / "README.md"
    path.write_text(text)
    return path
