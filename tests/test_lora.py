"""hfpipe.lora: config from recipe arguments, wrapping, save/reload with peft, merge, parameter report."""

import logging

import pytest
import torch
from peft import AutoPeftModelForCausalLM, AutoPeftModelForSequenceClassification, PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, TrainingArguments
from trl import ModelConfig as LoraArguments  # trl's ModelConfig carries the lora_* settings

import hfpipe  # noqa: F401  (registers the GPT family with the Auto classes)
from hfpipe import GPTConfig, GPTForCausalLM, GPTForSequenceClassification
from hfpipe.lora import (
    DEFAULT_TARGET_MODULES,
    apply_lora,
    build_lora_config,
    count_parameters,
    merge_lora,
)
from hfpipe.recipe_args import parse_recipe_args


def _perturb_lora(model, seed: int = 0):
    """LoRA B starts at zero (a no-op adapter); give it values so that reload/merge checks mean something."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("base")
    GPTForCausalLM(GPTConfig.from_preset("tiny")).save_pretrained(path)
    return path


@pytest.fixture
def ids():
    return torch.randint(0, 512, (2, 12), generator=torch.Generator().manual_seed(1))


def test_config_defaults_cover_attention_and_feed_forward():
    cfg = build_lora_config(LoraArguments(), "CAUSAL_LM")
    assert (
        set(cfg.target_modules) == {"qkv", "out_proj", "fc1", "gate_up", "fc2"} == set(DEFAULT_TARGET_MODULES)
    )
    assert (cfg.r, cfg.lora_alpha, cfg.task_type) == (16, 32, "CAUSAL_LM")  # trl's defaults
    cfg = build_lora_config(
        LoraArguments(lora_r=4, lora_alpha=8, lora_dropout=0.1, lora_target_modules=["qkv"]), "SEQ_CLS"
    )
    assert (cfg.r, cfg.lora_alpha, cfg.lora_dropout, set(cfg.target_modules)) == (4, 8, 0.1, {"qkv"})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lora_r": 0}, "lora_r"),
        ({"lora_dropout": 1.0}, "lora_dropout"),
    ],
)
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_lora_config(LoraArguments(**kwargs), "CAUSAL_LM")


def test_arguments_parse_from_yaml_and_cli(tmp_path):
    cfg = tmp_path / "lora.yaml"
    cfg.write_text("lora_r: 8\nlora_alpha: 32\nlora_target_modules: [qkv, fc2]\noutput_dir: x\n")
    lora, _ = parse_recipe_args(
        [LoraArguments, TrainingArguments], ["--config", str(cfg), "--lora_dropout", "0.2"]
    )
    assert (lora.lora_r, lora.lora_alpha, lora.lora_dropout, lora.lora_target_modules) == (
        8,
        32,
        0.2,
        ["qkv", "fc2"],
    )
    lora, _ = parse_recipe_args(
        [LoraArguments, TrainingArguments], ["--output_dir", "x", "--lora_target_modules", "fc1"]
    )
    assert lora.lora_target_modules in (["fc1"], "fc1")  # trl keeps a single module as a string


def test_apply_lora_freezes_base_and_reports_parameters(base_dir, caplog):
    model = GPTForCausalLM.from_pretrained(base_dir)
    total_before = count_parameters(model)[1]
    with caplog.at_level(logging.INFO, logger="hfpipe.lora"):
        peft_model = apply_lora(model, LoraArguments(lora_r=4), "CAUSAL_LM").eval()
    trainable, total = count_parameters(peft_model)
    names = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    adapted = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in names}
    assert adapted == {"qkv", "out_proj", "fc1", "fc2"}
    # r * (in + out) per adapted linear, 2 blocks, emb 64: qkv 64->192, out_proj 64->64, fc1 64->256, fc2 256->64
    assert trainable == 2 * 4 * ((64 + 192) + (64 + 64) + (64 + 256) + (256 + 64))
    assert total == total_before + trainable
    assert f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%:" in caplog.text
    assert peft_model.get_nb_trainable_parameters() == (trainable, total)


@pytest.mark.parametrize("architecture", ["llama", "nanochat"])
def test_default_targets_are_every_block_linear_in_each_architecture(architecture, ids):
    """swiglu's fused gate_up is adapted too; a name the model lacks (fc1 here) is dropped, not an error."""
    model = GPTForCausalLM(GPTConfig.from_preset("tiny", architecture))
    linears = {n for n, m in model.model.blocks.named_modules() if isinstance(m, torch.nn.Linear)}
    peft_model = apply_lora(model, LoraArguments(lora_r=4), "CAUSAL_LM").eval()
    adapted = {n.split("blocks.")[-1] for n, m in peft_model.named_modules() if hasattr(m, "lora_A")}
    assert adapted == linears and any(n.endswith("ff.gate_up") for n in linears) == (architecture == "llama")
    _perturb_lora(peft_model)
    with torch.no_grad():
        adapted_logits = peft_model(ids).logits
        torch.testing.assert_close(merge_lora(peft_model)(ids).logits, adapted_logits, atol=1e-4, rtol=1e-4)


def test_unknown_target_module_is_an_error(base_dir):
    with pytest.raises(ValueError, match="c_attn"):
        apply_lora(
            GPTForCausalLM.from_pretrained(base_dir),
            LoraArguments(lora_target_modules=["c_attn"]),
            "CAUSAL_LM",
        )


def test_training_step_updates_only_the_adapter(base_dir, ids):
    peft_model = apply_lora(GPTForCausalLM.from_pretrained(base_dir), LoraArguments(lora_r=4), "CAUSAL_LM")
    before = {n: p.detach().clone() for n, p in peft_model.named_parameters()}
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    peft_model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    changed = {n for n, p in peft_model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n for n in changed)  # the base weights stay frozen
    assert any("lora_B" in n for n in changed)


def test_causal_adapter_save_reload_and_merge(base_dir, ids, tmp_path):
    peft_model = apply_lora(GPTForCausalLM.from_pretrained(base_dir), LoraArguments(), "CAUSAL_LM").eval()
    _perturb_lora(peft_model)
    expected = peft_model(input_ids=ids).logits
    plain = GPTForCausalLM.from_pretrained(base_dir).eval()(input_ids=ids).logits
    assert not torch.allclose(expected, plain, atol=1e-3)  # the adapter does change the model

    peft_model.save_pretrained(tmp_path / "adapter")
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {
        p.name for p in (tmp_path / "adapter").iterdir()
    }
    reloaded = PeftModel.from_pretrained(
        GPTForCausalLM.from_pretrained(base_dir), tmp_path / "adapter"
    ).eval()
    torch.testing.assert_close(reloaded(input_ids=ids).logits, expected)
    auto = AutoPeftModelForCausalLM.from_pretrained(tmp_path / "adapter").eval()
    assert isinstance(auto.get_base_model(), GPTForCausalLM)
    torch.testing.assert_close(auto(input_ids=ids).logits, expected)

    merged = merge_lora(peft_model)
    assert type(merged) is GPTForCausalLM
    assert not any("lora" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(merged(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-5)
    merged.save_pretrained(tmp_path / "merged")
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    torch.testing.assert_close(exported(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-5)

    # hfpipe's one loader: an adapter directory gives base + adapter, or the merged model
    from hfpipe.loading import load_model

    kept = load_model(tmp_path / "adapter").eval()
    assert isinstance(kept, PeftModel)
    torch.testing.assert_close(kept(input_ids=ids).logits, expected)
    folded = load_model(tmp_path / "adapter", merge_adapter=True).eval()
    assert type(folded) is GPTForCausalLM
    torch.testing.assert_close(folded(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-5)


def test_seq_cls_head_trains_and_is_saved_with_the_adapter(base_dir, ids, tmp_path):
    model = GPTForSequenceClassification.from_pretrained(base_dir, num_labels=3)
    peft_model = apply_lora(model, LoraArguments(lora_r=4), "SEQ_CLS").eval()
    head = [n for n, p in peft_model.named_parameters() if p.requires_grad and "lora_" not in n]
    assert head and all(".score." in n for n in head)
    _perturb_lora(peft_model)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if n in head:
                p.normal_(std=1.0)  # as if trained: differs from the fresh head a reload would make
    expected = peft_model(input_ids=ids).logits

    peft_model.save_pretrained(tmp_path / "adapter")
    saved = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert {k for k in saved if "lora_" not in k} == {
        "base_model.model.score.weight",
        "base_model.model.score.bias",
    }
    auto = AutoPeftModelForSequenceClassification.from_pretrained(tmp_path / "adapter", num_labels=3).eval()
    torch.testing.assert_close(auto(input_ids=ids).logits, expected)

    merged = merge_lora(peft_model)
    assert type(merged) is GPTForSequenceClassification
    torch.testing.assert_close(merged(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-5)
    merged.save_pretrained(tmp_path / "merged")
    exported = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
    torch.testing.assert_close(exported(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-5)
