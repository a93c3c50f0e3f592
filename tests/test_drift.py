"""Behaviours that a silent API change in transformers or trl would break, pinned in one place.

transformers 5.24 renamed the KV cache argument (``past_key_values`` -> ``cache``) and hfpipe's generation went
wrong with no error. Each test here fails loudly, naming the installed releases, when a future release changes
one of these behaviours: cached and uncached decoding agree, a left-padded batch decodes like each prompt
alone, the saved remote code runs without hfpipe, trl's collator keeps the labels hfpipe builds, and the
serving engine decodes what ``generate`` decodes. ``.ci/run`` runs them on the newest and the oldest releases.
"""

import copy
import logging
import queue
import sys
from pathlib import Path

import pytest
import torch
import transformers
import trl
from datasets import Dataset

from hfpipe import GPTConfig, GPTForCausalLM
from hfpipe.compat import cache_kwargs, output_cache
from hfpipe.models.gpt import GPT_ARCHITECTURES
from hfpipe.serving.engine import Engine, Request, SamplingParams
from hfpipe.tokenization import train_bpe_tokenizer

sys.path.insert(0, str(Path(__file__).parent))
from without_hfpipe import run_without_hfpipe  # noqa: E402

VERSIONS = f"transformers {transformers.__version__}, trl {trl.__version__}, torch {torch.__version__}"
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Return the number of items in the list, or zero when it is empty.",
    "I had always thought Jack Gisburn rather a cheap genius.",
    "First Citizen: Before we proceed any further, hear me speak.",
] * 10


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer(TEXTS, vocab_size=320, min_frequency=1, model_max_length=64)


@pytest.fixture(scope="module", params=sorted(GPT_ARCHITECTURES))
def config(request, tokenizer):
    """A small GPT in each architecture (book, llama with 2 of 4 kv heads, nanochat with 1)."""
    return GPTConfig.from_preset(
        "tiny", request.param, vocab_size=len(tokenizer), context_length=64, emb_dim=32, n_heads=4, n_layers=2,
        drop_rate=0.0, initializer_range=0.1,  # peaked logits: no near-ties between batched and single decoding
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip


@pytest.fixture(scope="module")
def model(config):
    torch.manual_seed(0)
    return GPTForCausalLM(config).eval()


def greedy(model, ids, n, **kwargs):
    return model.generate(ids, max_new_tokens=n, do_sample=False, eos_token_id=None, **kwargs)


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_cached_equals_uncached_generation(config, attn_implementation):
    torch.manual_seed(0)
    model = GPTForCausalLM._from_config(config, attn_implementation=attn_implementation).eval()
    prompt = torch.randint(3, config.vocab_size, (2, 7))
    cached, uncached = greedy(model, prompt, 40, use_cache=True), greedy(model, prompt, 40, use_cache=False)
    assert len(set(cached[0, 7:].tolist())) > 1, "degenerate output: the check would prove nothing"
    differ = (cached != uncached).any(0).nonzero()
    assert not len(differ), (
        f"{VERSIONS}: generate() with the KV cache differs from without it from token "
        f"{int(differ[0]) - 7} on; the model no longer receives the cache under the name this release uses"
    )


def test_forward_takes_and_returns_the_cache_under_this_releases_name(model, config):
    ids = torch.randint(3, config.vocab_size, (1, 9))
    with torch.no_grad():
        full = model(ids).logits
        first = model(ids[:, :5], use_cache=True)
        cache = output_cache(first)
        assert cache is not None and cache.get_seq_length() == 5, f"{VERSIONS}: no cache in the output"
        rest = model(ids[:, 5:], use_cache=True, **cache_kwargs(cache)).logits
    torch.testing.assert_close(
        torch.cat([first.logits, rest], 1), full, msg=lambda m: f"{VERSIONS}: cached forward differs: {m}"
    )


def test_generation_logs_no_deprecation(model, config, caplog):
    caplog.set_level(logging.WARNING, logger="transformers")
    greedy(model, torch.randint(3, config.vocab_size, (1, 5)), 8)
    deprecated = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert not deprecated, f"{VERSIONS}: generate() on an hfpipe model logs {deprecated}"


def test_left_padded_batch_equals_unbatched(model, tokenizer):
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.padding_side = "left"
    prompts = ["The quick brown fox", "I had always thought Jack Gisburn rather a cheap", "Speak"]
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    assert (batch["attention_mask"] == 0).any()
    kwargs = {"pad_token_id": tokenizer.pad_token_id}
    batched = greedy(model, batch["input_ids"], 12, attention_mask=batch["attention_mask"], **kwargs)
    width = batch["input_ids"].shape[1]
    for i, prompt in enumerate(prompts):
        single = greedy(model, tokenizer(prompt, return_tensors="pt")["input_ids"], 12, **kwargs)
        assert torch.equal(batched[i, width:], single[0, -12:]), (
            f"{VERSIONS}: prompt {prompt!r} decodes differently left-padded in a batch than alone"
        )


REMOTE_CODE_CHILD = r"""
import torch, transformers
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
assert "hfpipe" not in sys.modules and type(model).__module__.startswith("transformers_modules")
ids = torch.load(sys.argv[2])
with torch.no_grad():
    logits = model(ids).logits
kw = {"max_new_tokens": 30, "do_sample": False, "eos_token_id": None}
torch.save({"logits": logits, "cached": model.generate(ids, use_cache=True, **kw),
            "uncached": model.generate(ids, use_cache=False, **kw)}, sys.argv[3])
"""


def remote_code_outputs(model_dir: Path, ids: torch.Tensor, tmp_path: Path) -> dict:
    """Load ``model_dir`` with ``trust_remote_code=True`` in a Python that cannot import hfpipe; its outputs."""
    torch.save(ids, tmp_path / "ids.pt")
    proc = run_without_hfpipe(
        REMOTE_CODE_CHILD, model_dir, tmp_path / "ids.pt", tmp_path / "out.pt", cwd=tmp_path
    )
    assert proc.returncode == 0, f"{VERSIONS}: loading as remote code failed:\n{proc.stderr[-3000:]}"
    return torch.load(tmp_path / "out.pt")


def test_remote_code_without_hfpipe(model, config, tmp_path):
    model.save_pretrained(tmp_path / "model")
    ids = torch.randint(3, config.vocab_size, (2, 8))
    out = remote_code_outputs(tmp_path / "model", ids, tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(out["logits"], model(ids).logits)  # other thread count: rounding only
    assert torch.equal(out["cached"], out["uncached"]), (
        f"{VERSIONS}: the saved model code decodes differently with and without the KV cache"
    )
    assert torch.equal(out["cached"], greedy(model, ids, 30)), f"{VERSIONS}: remote code decodes otherwise"


def test_trl_collator_keeps_hfpipe_labels(model, tokenizer, tmp_path):
    from hfpipe.sft.data import tokenize_record

    tokenizer = copy.deepcopy(tokenizer)
    records = [
        {"prompt": "Who is Jack?", "completion": " A painter."},
        {"prompt": "Speak", "completion": " Yes"},
    ]
    rows = [tokenize_record(r, tokenizer) for r in records]
    assert all(-100 in r["labels"] for r in rows), (
        "the prompt tokens must be masked for the check to mean anything"
    )
    args = trl.SFTConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, bf16=False,
                         dataset_kwargs={"skip_prepare_dataset": True}, per_device_train_batch_size=2)  # fmt: skip
    trainer = trl.SFTTrainer(model=copy.deepcopy(model), args=args, train_dataset=Dataset.from_list(rows),
                             processing_class=tokenizer)  # fmt: skip
    batch = next(iter(trainer.get_train_dataloader()))
    width = max(len(r["input_ids"]) for r in rows)
    for row in rows:
        expected = row["labels"] + [-100] * (width - len(row["labels"]))
        matches = [i for i, got in enumerate(batch["labels"].tolist()) if got == expected]
        assert matches, (
            f"{VERSIONS}: trl's SFT collator no longer keeps the labels hfpipe passes "
            f"(expected {expected}, got {batch['labels'].tolist()})"
        )


def test_serving_engine_equals_generate(model, tokenizer):
    engine = Engine(model, tokenizer, max_batch_size=4)
    try:
        prompts = ["The quick brown", "Return the number of items in", "Speak"]
        events = {i: queue.Queue() for i in range(len(prompts))}
        for i, prompt in enumerate(prompts):  # submitted together: decoded as one batch over one cache
            ids = tokenizer(prompt).input_ids
            emit = lambda kind, index, *rest, q=events[i]: q.put((kind, rest))  # noqa: E731
            engine.submit(Request([ids], SamplingParams(max_tokens=16, temperature=0), emit))
        for i, prompt in enumerate(prompts):
            text = ""
            while (event := events[i].get(timeout=60))[0] == "text":
                text += event[1][0]
            assert event[0] == "finish", event
            ids = tokenizer(prompt, return_tensors="pt").input_ids
            out = model.generate(ids, max_new_tokens=16, do_sample=False, pad_token_id=tokenizer.pad_token_id)
            expected = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
            assert text == expected, (
                f"{VERSIONS}: the serving engine decodes {text!r}, generate() {expected!r}"
            )
    finally:
        engine.shutdown()


def test_directory_saved_by_an_older_hfpipe(model, config, tmp_path, caplog):
    """Its saved code is stale (here: a forward that only knows ``past_key_values``, as before 0.2); hfpipe loads
    it with its own classes, says so, and ``refresh_code`` replaces the saved copy."""
    from hfpipe.loading import MODEL_CODE_FILES, load_model, refresh_code, stale_code_files

    model.save_pretrained(tmp_path)
    code = tmp_path / "modeling_gpt.py"
    old = code.read_text().replace("cache = resolve_cache(cache, past_key_values)", "cache = past_key_values")
    assert old != code.read_text()
    code.write_text(old)
    caplog.set_level(logging.WARNING, logger="hfpipe.loading")
    loaded = load_model(tmp_path).eval()
    assert any("refresh_code" in r.getMessage() for r in caplog.records)
    prompt = torch.randint(3, config.vocab_size, (1, 6))
    assert torch.equal(
        greedy(loaded, prompt, 24, use_cache=True), greedy(loaded, prompt, 24, use_cache=False)
    )
    assert refresh_code(tmp_path) == ["modeling_gpt.py"] and stale_code_files(tmp_path) == []
    assert all((tmp_path / name).is_file() for name in MODEL_CODE_FILES)
