"""The server loads what hfpipe produces besides a plain model: a LoRA adapter, an int8-quantized directory."""

import importlib.util

import pytest
import torch
from openai import OpenAI
from transformers import AutoModelForCausalLM

from hfpipe.serving import ServeArguments, create_app, load_engine

from .conftest import Server


def served_greedy_text(path, prompt, max_tokens):
    """Start the server on ``path`` as recipes/serve.py does; one greedy completion through the openai client."""
    args = ServeArguments(model_name_or_path=str(path), served_model_name="m", max_batch_size=4)
    engine = load_engine(args)
    server = Server(create_app(args, engine))
    try:
        client = OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0, timeout=60)
        return client.completions.create(model="m", prompt=prompt, max_tokens=max_tokens, temperature=0)
    finally:
        server.stop()
        engine.shutdown()


def reference_text(model, tokenizer, prompt, max_tokens):
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=max_tokens, do_sample=False)
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


def test_lora_adapter_directory(model_dir, model, tokenizer, tmp_path):
    from peft import LoraConfig, get_peft_model

    base = AutoModelForCausalLM.from_pretrained(model_dir)
    lora = LoraConfig(r=4, target_modules=["qkv", "fc1"], init_lora_weights=False, task_type="CAUSAL_LM")
    adapted = get_peft_model(base, lora).eval()
    adapted.save_pretrained(tmp_path / "adapter")
    merged = adapted.merge_and_unload()
    expected = reference_text(merged, tokenizer, "The quick", 12)
    assert expected != reference_text(model, tokenizer, "The quick", 12), "the adapter changes nothing"
    assert served_greedy_text(tmp_path / "adapter", "The quick", 12).choices[0].text == expected


@pytest.mark.skipif(importlib.util.find_spec("torchao") is None, reason="needs torchao (hfpipe[quantize])")
def test_int8_quantized_directory(model_dir, tokenizer, tmp_path):
    quantize = pytest.importorskip("hfpipe.export.quantize")
    path = quantize.quantize_int8(model_dir, tmp_path / "int8")
    quantized = AutoModelForCausalLM.from_pretrained(path).eval()
    assert "quantization_config" in quantized.config.to_dict()
    expected = reference_text(quantized, tokenizer, "Jack Gisburn", 12)
    out = served_greedy_text(path, "Jack Gisburn", 12)
    assert out.choices[0].text == expected and out.usage.completion_tokens > 0
