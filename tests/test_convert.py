"""GPT-2 <-> hfpipe GPT conversion, parameter counts, loading and convert_checkpoint on tiny local models."""

import json
import logging
import re

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5Model

from hfpipe import GPTConfig, GPTForCausalLM, GPTForSequenceClassification
from hfpipe.convert import gpt2_to_gpt, gpt_config_to_gpt2, gpt_to_gpt2
from hfpipe.io import save_atomically
from hfpipe.loading import convert_checkpoint, load_model


def n_params(model) -> int:
    model.tie_weights()  # on the meta device transformers 5.0-5.2 leave it to from_pretrained
    return sum(p.numel() for p in model.parameters())  # parameters() yields a tied tensor once


def tiny_gpt2(tie: bool = True, activation: str = "gelu_new") -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=128, n_positions=32, n_embd=32, n_layer=2, n_head=4, tie_word_embeddings=tie,
        activation_function=activation, bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # random, non-trivial LayerNorm and bias values
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return model


@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("activation", ["gelu_new", "gelu"])
def test_gpt2_to_gpt_same_logits_and_parameters(tie, activation):
    gpt2 = tiny_gpt2(tie, activation)
    gpt = gpt2_to_gpt(gpt2)
    assert isinstance(gpt, GPTForCausalLM) and gpt.config.qkv_bias and gpt.config.tie_word_embeddings == tie
    assert (gpt.lm_head.weight is gpt.model.tok_emb.weight) == tie
    assert n_params(gpt) == n_params(gpt2)
    ids = torch.randint(0, 128, (2, 20))
    with torch.no_grad():
        torch.testing.assert_close(gpt(ids).logits, gpt2(ids).logits, atol=1e-4, rtol=1e-4)
    greedy = {"max_new_tokens": 8, "do_sample": False, "eos_token_id": None, "pad_token_id": 0}
    assert torch.equal(gpt.generate(ids, **greedy), gpt2.generate(ids, **greedy))


@pytest.mark.parametrize("qkv_bias", [True, False])
@pytest.mark.parametrize("tie", [True, False])
def test_gpt_to_gpt2_same_logits(qkv_bias, tie):
    torch.manual_seed(0)
    gpt = GPTForCausalLM(GPTConfig.from_preset("tiny", qkv_bias=qkv_bias, tie_word_embeddings=tie)).eval()
    gpt2 = gpt_to_gpt2(gpt)
    assert isinstance(gpt2, GPT2LMHeadModel)
    # GPT-2 always has a QKV bias (left at zero when ours has none)
    extra_bias = 0 if qkv_bias else 3 * gpt.config.emb_dim * gpt.config.n_layers
    assert n_params(gpt2) == n_params(gpt) + extra_bias
    ids = torch.randint(0, gpt.config.vocab_size, (2, 30))
    with torch.no_grad():
        torch.testing.assert_close(gpt2(ids).logits, gpt(ids).logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "architecture, overrides, named",
    [
        ("llama", {}, "position='rope', norm='rmsnorm', mlp='swiglu', bias=False, n_kv_heads=2"),
        ("nanochat", {}, "norm_weight=False, mlp='relu2', qk_norm=True"),
        ("book", {"n_kv_heads": 2}, "n_kv_heads=2, which GPT-2"),
        ("book", {"bias": False}, "bias=False, which GPT-2"),
    ],
)
def test_only_the_book_layout_converts_to_gpt2(architecture, overrides, named):
    model = GPTForCausalLM(GPTConfig.from_preset("tiny", architecture, **overrides))
    with pytest.raises(ValueError, match="GPT-2 has the book's layout; this model has .*" + re.escape(named)):
        gpt_to_gpt2(model)


def test_roundtrip_is_exact():
    gpt2 = tiny_gpt2(tie=False)
    back = gpt_to_gpt2(gpt2_to_gpt(gpt2))
    original = gpt2.state_dict()
    for name, tensor in back.state_dict().items():
        assert torch.equal(tensor, original[name]), name


def test_gpt2_small_preset_parameter_counts():
    with torch.device("meta"):
        untied = GPTForCausalLM(
            GPTConfig.from_preset("gpt2-small", qkv_bias=False, tie_word_embeddings=False)
        )
        tied = GPTForCausalLM(GPTConfig.from_preset("gpt2-small", qkv_bias=False, tie_word_embeddings=True))
    assert n_params(untied) == 163_009_536
    assert n_params(tied) == 124_412_160


@pytest.mark.parametrize("preset", ["gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl"])
def test_presets_match_gpt2_parameter_counts(preset):
    config = GPTConfig.from_preset(preset, qkv_bias=True, tie_word_embeddings=True)
    with torch.device("meta"):
        ours, theirs = GPTForCausalLM(config), GPT2LMHeadModel(gpt_config_to_gpt2(config))
    assert n_params(ours) == n_params(theirs)
    expected = {"gpt2-small": 124_439_808, "gpt2-medium": 354_823_168, "gpt2-large": 774_030_080}
    assert n_params(ours) == {**expected, "gpt2-xl": 1_557_611_200}[preset]


# --- load_model -----------------------------------------------------------------------------------------------


def test_load_gpt_from_gpt2_and_hfpipe_dirs(tmp_path):
    gpt2 = tiny_gpt2()
    gpt2.save_pretrained(tmp_path / "gpt2")
    ids = torch.randint(0, 128, (1, 12))
    with torch.no_grad():
        expected = gpt2(ids).logits
        from_gpt2 = load_model(str(tmp_path / "gpt2"))
        assert isinstance(from_gpt2, GPTForCausalLM)
        torch.testing.assert_close(from_gpt2(ids).logits, expected, atol=1e-4, rtol=1e-4)
        from_gpt2.save_pretrained(tmp_path / "ours")
        torch.testing.assert_close(
            load_model(str(tmp_path / "ours"))(ids).logits, expected, atol=1e-4, rtol=1e-4
        )


@pytest.mark.parametrize("source", ["gpt2", "ours"])
def test_load_gpt_classification_keeps_backbone(tmp_path, source):
    gpt2 = tiny_gpt2()
    if source == "gpt2":
        gpt2.save_pretrained(tmp_path)
    else:
        gpt2_to_gpt(gpt2).save_pretrained(tmp_path)
    classifier = load_model(str(tmp_path), task="sequence-classification", num_labels=2)
    assert isinstance(classifier, GPTForSequenceClassification) and classifier.config.num_labels == 2
    torch.testing.assert_close(classifier.model.tok_emb.weight, gpt2.transformer.wte.weight)
    torch.testing.assert_close(
        classifier.model.blocks[1].att.qkv.weight, gpt2.transformer.h[1].attn.c_attn.weight.t()
    )


def test_load_gpt_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="task must be"):
        load_model(str(tmp_path), task="translation")
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        load_model(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON.*corrupt"):
        load_model(str(tmp_path))
    t5 = T5Model(T5Config(vocab_size=64, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2))
    t5.save_pretrained(tmp_path / "t5")
    with pytest.raises(ValueError, match="is a 't5' model, which has no causal-lm class"):
        load_model(str(tmp_path / "t5"))


@pytest.mark.parametrize("kind", ["ours", "gpt2"])
def test_load_gpt_missing_or_corrupt_weights(tmp_path, kind):
    model = tiny_gpt2() if kind == "gpt2" else GPTForCausalLM(GPTConfig.from_preset("tiny"))
    model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_model(str(tmp_path))
    weights.unlink()
    with pytest.raises(OSError, match="no file named model.safetensors"):
        load_model(str(tmp_path))


def test_config_of_one_model_with_weights_of_another_is_refused(tmp_path):
    """A config.json that says gpt2 over weights that are not GPT-2's must not load as a random model."""
    GPTForCausalLM(GPTConfig.from_preset("tiny")).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "gpt2", "n_embd": config["emb_dim"], "n_layer": 2, "n_head": 2})
    )
    with pytest.raises(ValueError, match="does not fit GPT2LMHeadModel"):
        load_model(str(tmp_path))


def test_a_mistyped_local_path_fails_at_once_naming_it(tmp_path, monkeypatch):
    import time

    from hfpipe.loading import load_tokenizer

    (tmp_path / "out" / "tokenizer").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # even online: no Hub round trip
    start = time.perf_counter()
    with pytest.raises(
        FileNotFoundError, match="'out/tokenizr' does not exist; did you mean 'out/tokenizer'"
    ):
        load_tokenizer("out/tokenizr")
    with pytest.raises(FileNotFoundError, match="'./nowhere/model' does not exist"):
        load_model("./nowhere/model")
    assert time.perf_counter() - start < 2


# --- convert_checkpoint / save_atomically ---------------------------------------------------------------


def test_convert_checkpoint_both_directions_without_tokenizer(tmp_path, caplog):
    gpt2 = tiny_gpt2()
    gpt2.save_pretrained(tmp_path / "gpt2")
    with caplog.at_level(logging.WARNING, logger="hfpipe.convert"):
        out = convert_checkpoint(str(tmp_path / "gpt2"), str(tmp_path / "ours"))
    assert "no tokenizer found" in caplog.text
    assert json.loads((out / "config.json").read_text())["model_type"] == "hfpipe_gpt"
    back = convert_checkpoint(str(out), str(tmp_path / "back"), direction="to_gpt2")
    ids = torch.randint(0, 128, (1, 10))
    with torch.no_grad():
        torch.testing.assert_close(GPT2LMHeadModel.from_pretrained(back)(ids).logits, gpt2(ids).logits)
    with pytest.raises(ValueError, match="not a GPT-2 checkpoint"):
        convert_checkpoint(str(out), str(tmp_path / "x"))
    with pytest.raises(ValueError, match="not an hfpipe GPT checkpoint"):
        convert_checkpoint(str(tmp_path / "gpt2"), str(tmp_path / "x"), direction="to_gpt2")
    with pytest.raises(ValueError, match="direction must be"):
        convert_checkpoint(str(tmp_path / "gpt2"), str(tmp_path / "x"), direction="sideways")
    assert not (tmp_path / "x").exists()


def test_save_atomically_replaces_or_leaves_nothing(tmp_path):
    target = tmp_path / "out"

    def write(content):
        def save(tmp):
            (tmp / "file.txt").write_text(content)
            if content == "boom":
                raise RuntimeError("disk full")

        return save

    save_atomically(write("one"), target)
    save_atomically(write("two"), target)
    assert (target / "file.txt").read_text() == "two"
    with pytest.raises(RuntimeError, match="disk full"):
        save_atomically(write("boom"), target)
    assert (target / "file.txt").read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary directories left behind
