"""GPTModel / GPTForCausalLM / GPTForSequenceClassification on tiny random weights (no Hub access)."""

import json
import math
import re

import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)
from transformers.modeling_outputs import BaseModelOutputWithPast
from transformers.utils import is_flash_attn_2_available

import hfpipe
from hfpipe import GPTConfig, GPTForCausalLM, GPTForSequenceClassification, GPTModel, GPTPreTrainedModel
from hfpipe.models.gpt import modeling_gpt
from hfpipe.models.gpt.configuration_gpt import describe_architecture


def test_classes_importable_from_hfpipe():
    for name in (
        "GPTConfig",
        "GPTModel",
        "GPTForCausalLM",
        "GPTForSequenceClassification",
        "GPTPreTrainedModel",
    ):
        assert name in hfpipe.__all__ and getattr(hfpipe, name) is not None
    assert issubclass(GPTForCausalLM, GPTPreTrainedModel)


def test_import_registers_auto_classes(tiny_config):
    assert isinstance(AutoConfig.for_model("hfpipe_gpt", emb_dim=32, n_heads=2), GPTConfig)
    assert type(AutoModel.from_config(tiny_config)) is GPTModel
    assert type(AutoModelForCausalLM.from_config(tiny_config)) is GPTForCausalLM
    assert type(AutoModelForSequenceClassification.from_config(tiny_config)) is GPTForSequenceClassification


def test_backbone_returns_base_model_output_with_past(tiny_config):
    model = GPTModel(tiny_config).eval()
    ids = torch.randint(0, tiny_config.vocab_size, (2, 7))
    out = model(ids, output_hidden_states=True)
    assert isinstance(out, BaseModelOutputWithPast)
    assert out.last_hidden_state.shape == (2, 7, tiny_config.emb_dim)
    assert out.past_key_values.get_seq_length() == 7
    assert len(out.hidden_states) == tiny_config.n_layers + 1
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
    as_tuple = model(ids, use_cache=False, return_dict=False)
    assert isinstance(as_tuple, tuple) and torch.allclose(as_tuple[0], out.last_hidden_state)


def test_causal_lm_logits_and_loss(tiny_model, tiny_config):
    ids = torch.randint(0, tiny_config.vocab_size, (2, 9))
    out = tiny_model(ids, labels=ids)
    assert out.logits.shape == (2, 9, tiny_config.vocab_size)
    expected = torch.nn.functional.cross_entropy(
        out.logits[:, :-1].reshape(-1, tiny_config.vocab_size), ids[:, 1:].flatten()
    )
    torch.testing.assert_close(out.loss, expected)
    assert abs(out.loss.item() - math.log(tiny_config.vocab_size)) < 0.5  # near-uniform at initialisation
    assert tiny_model(ids, logits_to_keep=1).logits.shape == (2, 1, tiny_config.vocab_size)


def test_inputs_embeds_equals_input_ids(tiny_model, tiny_config):
    ids = torch.randint(0, tiny_config.vocab_size, (1, 6))
    embeds = tiny_model.get_input_embeddings()(ids)
    torch.testing.assert_close(tiny_model(inputs_embeds=embeds).logits, tiny_model(ids).logits)
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        tiny_model(ids, inputs_embeds=embeds)


def test_sdpa_is_default_and_matches_eager(tiny_config):
    torch.manual_seed(0)
    model = GPTForCausalLM(tiny_config).eval()
    assert model.config._attn_implementation == "sdpa"
    ids = torch.randint(0, tiny_config.vocab_size, (2, 12))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # left padding exercises the padding mask too
    sdpa = model(ids, attention_mask=mask).logits
    eager_model = GPTForCausalLM._from_config(tiny_config, attn_implementation="eager").eval()
    eager_model.load_state_dict(model.state_dict())
    assert eager_model.config._attn_implementation == "eager"
    eager = eager_model(ids, attention_mask=mask).logits
    torch.testing.assert_close(sdpa[0, 4:], eager[0, 4:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sdpa[1], eager[1], atol=1e-5, rtol=1e-5)


def test_eager_attention_weights_are_causal(tiny_config):
    model = GPTModel._from_config(tiny_config, attn_implementation="eager").eval()
    out = model(torch.randint(0, tiny_config.vocab_size, (1, 5)), output_attentions=True)
    assert len(out.attentions) == tiny_config.n_layers
    weights = out.attentions[0]
    assert weights.shape == (1, tiny_config.n_heads, 5, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, tiny_config.n_heads, 5))
    assert torch.all(weights.triu(diagonal=1) == 0)


def _manual_pass(model: GPTModel, ids: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Every block's input and output, and every layer's attention weights, from hooks of this test's own."""
    states, weights = [], []
    handles = [block.register_forward_hook(lambda m, a, out: states.append(out)) for block in model.blocks]
    handles += [
        blk.att.register_forward_hook(lambda m, a, out: weights.append(out[1])) for blk in model.blocks
    ]
    handles.append(model.blocks[0].register_forward_pre_hook(lambda m, a: states.append(a[0])))
    with torch.no_grad():
        model(ids)
    for handle in handles:
        handle.remove()
    return states, weights  # states: block 0's input (its pre-hook runs first), then each block's output


def test_recorded_outputs_are_the_blocks_own(tiny_config):
    """hidden_states = block 0's input, the blocks' outputs, the last one after final_norm; eager attentions."""
    torch.manual_seed(0)
    model = GPTForCausalLM._from_config(tiny_config, attn_implementation="eager").eval()
    ids = torch.randint(0, tiny_config.vocab_size, (2, 6))
    states, weights = _manual_pass(model.model, ids)
    with torch.no_grad():
        out = model(ids, output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == tiny_config.n_layers + 1 and len(out.attentions) == tiny_config.n_layers
    for got, expected in zip(out.hidden_states[:-1], states[:-1], strict=True):
        torch.testing.assert_close(got, expected, atol=0, rtol=0)
    torch.testing.assert_close(out.hidden_states[-1], model.model.final_norm(states[-1]), atol=0, rtol=0)
    for got, expected in zip(out.attentions, weights, strict=True):
        torch.testing.assert_close(got, expected, atol=0, rtol=0)
    plain = model(ids)
    assert plain.hidden_states is None and plain.attentions is None  # nothing recorded unless asked


@pytest.mark.parametrize("head", [GPTForCausalLM, GPTForSequenceClassification])
def test_heads_pass_on_recorded_outputs_and_tuples(tiny_config, head):
    torch.manual_seed(0)
    model = head._from_config(tiny_config, attn_implementation="eager").eval()
    ids = torch.randint(2, tiny_config.vocab_size, (2, 6))
    labels = torch.tensor([0, 1]) if head is GPTForSequenceClassification else ids
    with torch.no_grad():
        out = model(ids, labels=labels)
        recorded = model(ids, output_hidden_states=True, output_attentions=True)
        as_tuple = model(ids, labels=labels, output_hidden_states=True, use_cache=False, return_dict=False)
    assert out.hidden_states is None and out.attentions is None
    assert len(recorded.hidden_states) == tiny_config.n_layers + 1
    assert len(recorded.attentions) == tiny_config.n_layers
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 3  # (loss, logits, hidden_states): Nones dropped
    torch.testing.assert_close(as_tuple[0], out.loss)
    torch.testing.assert_close(as_tuple[1], out.logits)
    for got, expected in zip(as_tuple[2], recorded.hidden_states, strict=True):
        torch.testing.assert_close(got, expected)


def test_config_flags_are_the_defaults(tiny_config):
    tiny_config.output_hidden_states = True
    model = GPTModel(tiny_config).eval()
    ids = torch.randint(0, tiny_config.vocab_size, (1, 4))
    assert len(model(ids).hidden_states) == tiny_config.n_layers + 1
    assert model(ids, output_hidden_states=False).hidden_states is None


def enable_checkpointing(model) -> None:
    """transformers 5.23 renamed gradient_checkpointing_enable -> activation_checkpointing_enable."""
    (getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable)()


def is_checkpointing(model) -> bool:
    return getattr(model, "is_activation_checkpointing", None) or model.is_gradient_checkpointing


def test_recording_under_gradient_checkpointing(tiny_config):
    torch.manual_seed(0)
    model = GPTForCausalLM(tiny_config).train()
    enable_checkpointing(model)
    ids = torch.randint(0, tiny_config.vocab_size, (2, 8))
    out = model(ids, labels=ids, output_hidden_states=True)
    out.loss.backward()  # the recompute during backward must not record again
    assert len(out.hidden_states) == tiny_config.n_layers + 1
    assert model(ids, output_hidden_states=True).hidden_states[0].shape == (2, 8, tiny_config.emb_dim)


def test_kv_cache_incremental_forward_matches_full(tiny_model, tiny_config):
    ids = torch.randint(0, tiny_config.vocab_size, (2, 10))
    full = tiny_model(ids, use_cache=False).logits
    first = tiny_model(ids[:, :6], use_cache=True)
    cache = first.past_key_values
    logits = [first.logits]
    for t in range(6, 10):
        step = tiny_model(ids[:, t : t + 1], past_key_values=cache, use_cache=True)
        logits.append(step.logits)
    assert cache.get_seq_length() == 10
    torch.testing.assert_close(torch.cat(logits, dim=1), full, atol=1e-5, rtol=1e-5)


def test_forward_longer_than_context_raises(tiny_model):
    with pytest.raises(ValueError, match="longer than the model's context_length"):
        tiny_model(torch.zeros(1, 65, dtype=torch.long))
    cache = tiny_model(torch.zeros(1, 60, dtype=torch.long), use_cache=True).past_key_values
    with pytest.raises(ValueError, match="65 positions is longer"):
        tiny_model(torch.zeros(1, 5, dtype=torch.long), past_key_values=cache)
    # a padding-free packed row may be longer than the context: only each example's positions must fit
    packed = torch.arange(60).repeat(2)[None]
    out = tiny_model(torch.zeros(1, 120, dtype=torch.long), position_ids=packed, use_cache=False)
    assert out.logits.shape[1] == 120
    with pytest.raises(ValueError, match="65 positions is longer"):
        tiny_model(torch.zeros(1, 65, dtype=torch.long), position_ids=torch.arange(65)[None], use_cache=False)


def test_gradient_checkpointing_matches_and_recomputes(tiny_config):
    torch.manual_seed(0)
    ids = torch.randint(0, tiny_config.vocab_size, (2, 16))
    reference = GPTForCausalLM(tiny_config).train()
    checkpointed = GPTForCausalLM(tiny_config).train()
    checkpointed.load_state_dict(reference.state_dict())
    enable_checkpointing(checkpointed)
    assert is_checkpointing(checkpointed) and not is_checkpointing(reference)

    calls = []
    checkpointed.model.blocks[0].ff.register_forward_pre_hook(lambda *args: calls.append(1))
    results = []
    for model in (reference, checkpointed):
        out = model(ids, labels=ids, use_cache=True)
        assert out.past_key_values is None or model is reference
        out.loss.backward()
        results.append((out.loss.detach(), {n: p.grad for n, p in model.named_parameters()}))
    assert len(calls) == 2  # the block ran again during backward: activations were recomputed
    torch.testing.assert_close(results[0][0], results[1][0])
    for name, grad in results[0][1].items():
        torch.testing.assert_close(results[1][1][name], grad, atol=1e-6, rtol=1e-5, msg=name)


def test_no_split_modules(tiny_model):
    assert set(tiny_model._no_split_modules) == {"GPTBlock"}
    assert type(tiny_model.model.blocks[0]).__name__ == "GPTBlock"


def test_gpt2_initialisation():
    config = GPTConfig.from_preset("tiny", emb_dim=256, n_layers=8, n_heads=4)
    torch.manual_seed(0)
    model = GPTForCausalLM(config)
    scaled = 0.02 / math.sqrt(2 * config.n_layers)
    for block in model.model.blocks:
        for proj in (block.att.out_proj, block.ff.fc2):
            assert proj.weight.std().item() == pytest.approx(scaled, rel=0.03)
            assert proj.weight.mean().abs().item() < 1e-3 and torch.all(proj.bias == 0)
        for linear in (block.att.qkv, block.ff.fc1):
            assert linear.weight.std().item() == pytest.approx(0.02, rel=0.03)
        assert torch.all(block.norm1.weight == 1) and torch.all(block.norm1.bias == 0)
    for weight in (model.model.tok_emb.weight, model.model.pos_emb.weight, model.lm_head.weight):
        assert weight.std().item() == pytest.approx(0.02, rel=0.03)


def test_weights_untied_by_default(tiny_model):
    assert tiny_model.lm_head.weight.data_ptr() != tiny_model.model.tok_emb.weight.data_ptr()


def test_weight_tying_survives_save_and_load(tmp_path, tiny_config):
    tiny_config.tie_word_embeddings = False
    untied_count = sum(p.numel() for p in GPTForCausalLM(tiny_config).parameters())
    tiny_config.tie_word_embeddings = True
    model = GPTForCausalLM(tiny_config)
    assert model.lm_head.weight is model.model.tok_emb.weight
    assert (
        sum(p.numel() for p in model.parameters())
        == untied_count - tiny_config.vocab_size * tiny_config.emb_dim
    )

    model.save_pretrained(tmp_path)
    loaded = GPTForCausalLM.from_pretrained(tmp_path)
    assert loaded.lm_head.weight is loaded.model.tok_emb.weight
    torch.testing.assert_close(loaded.lm_head.weight, model.lm_head.weight)
    with torch.no_grad():
        loaded.model.tok_emb.weight[0, 0] += 1.0
    assert loaded.lm_head.weight[0, 0] == loaded.model.tok_emb.weight[0, 0]


def test_save_pretrained_writes_safetensors_auto_map_and_code(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "model.safetensors", "modeling_gpt.py", "configuration_gpt.py"} <= files
    assert not any(name.endswith(".bin") for name in files)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "hfpipe_gpt"
    assert config["auto_map"] == {
        "AutoConfig": "configuration_gpt.GPTConfig",
        "AutoModel": "modeling_gpt.GPTModel",
        "AutoModelForCausalLM": "modeling_gpt.GPTForCausalLM",
        "AutoModelForSequenceClassification": "modeling_gpt.GPTForSequenceClassification",
    }
    state = load_file(tmp_path / "model.safetensors")
    assert set(state) == set(tiny_model.state_dict())
    # the shipped code imports nothing but torch, transformers and itself
    for name in ("modeling_gpt.py", "configuration_gpt.py"):
        imports = re.findall(r"^(?:from|import) ([\w.]+)", (tmp_path / name).read_text(), flags=re.M)
        assert {module.split(".")[0] for module in imports} <= {
            "torch",
            "transformers",
            "math",
            "collections",
            "inspect",
            "",
        }


# Loading as remote code without hfpipe: tests/test_drift.py.


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_sequence_classification_pools_last_real_token(tiny_config, padding_side):
    tiny_config.num_labels = 3
    torch.manual_seed(0)
    model = GPTForSequenceClassification(tiny_config).eval()
    short, long = (
        torch.randint(2, tiny_config.vocab_size, (1, 4)),
        torch.randint(2, tiny_config.vocab_size, (1, 7)),
    )
    pad = torch.full((1, 3), tiny_config.pad_token_id)
    padded = torch.cat([pad, short], 1) if padding_side == "left" else torch.cat([short, pad], 1)
    mask = (padded != tiny_config.pad_token_id).long()
    batch = model(torch.cat([padded, long]), attention_mask=torch.cat([mask, torch.ones_like(long)]))
    assert batch.logits.shape == (2, 3)
    torch.testing.assert_close(batch.logits[0], model(short).logits[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch.logits[1], model(long).logits[0], atol=1e-5, rtol=1e-5)
    labels = torch.tensor([0, 2])
    loss = model(
        torch.cat([padded, long]), attention_mask=torch.cat([mask, torch.ones_like(long)]), labels=labels
    ).loss
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(batch.logits, labels))


# --- bad input ---------------------------------------------------------------------------------------------


def test_missing_weights_is_a_clear_error(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(OSError, match="no file named model.safetensors"):
        GPTForCausalLM.from_pretrained(tmp_path)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_weights_is_a_clear_error(tmp_path, tiny_model, damage):
    tiny_model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(b"not a safetensors file" * 8 if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(Exception, match="deserializing header"):
        GPTForCausalLM.from_pretrained(tmp_path)


def test_other_model_type_is_a_clear_error(tmp_path):
    bert = BertModel(
        BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)
    )
    bert.save_pretrained(tmp_path / "bert")
    with pytest.raises(ValueError, match="model_type 'bert', not 'hfpipe_gpt'"):
        GPTForCausalLM.from_pretrained(tmp_path / "bert")
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64)).save_pretrained(
        tmp_path / "gpt2"
    )
    with pytest.raises(ValueError, match="model_type 'gpt2'.*load_gpt"):
        GPTForCausalLM.from_pretrained(tmp_path / "gpt2")


# --- architectures (book, llama, nanochat; the shared tests above run for each through tiny_config) ---------


def _module_names_in_docstring() -> set[str]:
    return set(re.findall(r"^    ((?:model\.|lm_head|score)[\w.{}/]*)", modeling_gpt.__doc__, flags=re.M))


def test_every_parameter_name_is_documented(tiny_config):
    """modeling_gpt's docstring lists the parameter names the native exporter maps: it must stay true."""
    documented = _module_names_in_docstring()
    for head in (GPTForCausalLM, GPTForSequenceClassification):
        for name, _ in head(tiny_config).named_parameters():
            generic = re.sub(r"blocks\.\d+\.", "blocks.{i}.", name)
            module, _, kind = generic.rpartition(".")
            assert generic in documented or f"{module}.weight/.bias" in documented or module in documented, (
                f"{name} ({kind}) is not in modeling_gpt's docstring"
            )


def test_initialisation_per_architecture(tiny_config):
    config = GPTConfig.from_dict({**tiny_config.to_dict(), "emb_dim": 256, "n_layers": 8, "n_heads": 8})
    torch.manual_seed(0)
    model = GPTForCausalLM(config)
    scaled = 0.02 / math.sqrt(2 * config.n_layers)
    for block in model.model.blocks:
        for proj in (block.att.out_proj, block.ff.fc2):
            assert proj.weight.std().item() == pytest.approx(scaled, rel=0.03)
            assert (proj.bias is None) == (not config.bias)
        first = block.ff.gate_up if config.mlp == "swiglu" else block.ff.fc1
        for linear in (block.att.qkv, first):
            assert linear.weight.std().item() == pytest.approx(0.02, rel=0.03)
        norm_params = dict(block.norm1.named_parameters())
        assert set(norm_params) == {"weight", "bias"} if config.norm == "layernorm" and config.bias else True
        assert all(torch.all(p == (1 if n == "weight" else 0)) for n, p in norm_params.items())
        assert bool(norm_params) == config.norm_weight  # RMSNorm without weight has no parameter at all
        for qk in (block.att.q_norm, block.att.k_norm):
            assert [p.tolist() for p in qk.parameters()] == (
                [[1.0] * config.head_dim] if config.qk_norm else []
            )
    assert (model.model.pos_emb is None) == (config.position == "rope")


def test_rotary_embedding_is_rebuilt_on_load_with_its_scaling(tmp_path):
    """The rotary frequencies are buffers, not saved: a loaded model recomputes them, scaling included."""
    config = GPTConfig.from_preset(
        "tiny", "llama", rope_scaling_parameters={"rope_type": "linear", "factor": 2.0}
    )
    torch.manual_seed(0)
    model = GPTForCausalLM(config).eval()
    plain = GPTForCausalLM(GPTConfig.from_preset("tiny", "llama")).model.rotary_emb.inv_freq
    torch.testing.assert_close(model.model.rotary_emb.inv_freq, plain / 2)
    model.save_pretrained(tmp_path)
    assert not any("rotary" in k for k in load_file(tmp_path / "model.safetensors"))
    loaded = GPTForCausalLM.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(loaded.model.rotary_emb.inv_freq, plain / 2)
    ids = torch.randint(0, config.vocab_size, (2, 20))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, atol=0, rtol=0)


def _as_native(model: GPTForCausalLM, native_class):
    """The same weights in transformers' own Llama or Qwen3 (a reference implementation of each switch)."""
    c = model.config
    kwargs = {"head_dim": c.head_dim} if native_class is Qwen3ForCausalLM else {}
    config_class = Qwen3Config if native_class is Qwen3ForCausalLM else LlamaConfig
    native = native_class(config_class(
        vocab_size=c.vocab_size, hidden_size=c.emb_dim, intermediate_size=c.intermediate_size,
        num_hidden_layers=c.n_layers, num_attention_heads=c.n_heads, num_key_value_heads=c.n_kv_heads,
        max_position_embeddings=c.context_length, rms_norm_eps=c.layer_norm_epsilon, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": c.rope_theta}, **kwargs,
    )).eval()  # fmt: skip
    src = model.state_dict()
    q, kv, width = c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim, c.intermediate_size
    state = {"model.embed_tokens.weight": src["model.tok_emb.weight"], "lm_head.weight": src["lm_head.weight"],
             "model.norm.weight": src["model.final_norm.weight"]}  # fmt: skip
    for i in range(c.n_layers):
        ours, theirs = f"model.blocks.{i}.", f"model.layers.{i}."
        for name, tensor in zip(
            ("q", "k", "v"), src[ours + "att.qkv.weight"].split([q, kv, kv]), strict=True
        ):
            state[f"{theirs}self_attn.{name}_proj.weight"] = tensor
        gate, up = src[ours + "ff.gate_up.weight"].split([width, width])
        state |= {
            theirs + "self_attn.o_proj.weight": src[ours + "att.out_proj.weight"],
            theirs + "mlp.gate_proj.weight": gate,
            theirs + "mlp.up_proj.weight": up,
            theirs + "mlp.down_proj.weight": src[ours + "ff.fc2.weight"],
            theirs + "input_layernorm.weight": src[ours + "norm1.weight"],
            theirs + "post_attention_layernorm.weight": src[ours + "norm2.weight"],
        }
        if c.qk_norm:
            state[theirs + "self_attn.q_norm.weight"] = src[ours + "att.q_norm.weight"]
            state[theirs + "self_attn.k_norm.weight"] = src[ours + "att.k_norm.weight"]
    native.load_state_dict(state, strict=True)
    return native


@pytest.mark.parametrize("native_class", [LlamaForCausalLM, Qwen3ForCausalLM])
def test_llama_layout_computes_what_transformers_llama_and_qwen3_compute(native_class):
    """RoPE, RMSNorm, SwiGLU, grouped-query attention (and QK-norm as Qwen3's) checked against transformers."""
    qk_norm = native_class is Qwen3ForCausalLM
    config = GPTConfig.from_preset("tiny", "llama", n_layers=3, rope_theta=500.0, qk_norm=qk_norm)
    torch.manual_seed(0)
    model = GPTForCausalLM(config).eval()
    with torch.no_grad():  # non-trivial norm weights, so that a misplaced norm shows
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    native = _as_native(model, native_class)
    ids = torch.randint(0, config.vocab_size, (2, 30))
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, native(ids).logits, atol=1e-5, rtol=1e-5)
    greedy = {"max_new_tokens": 20, "do_sample": False, "eos_token_id": None, "pad_token_id": None}
    assert torch.equal(model.generate(ids[:, :5], **greedy), native.generate(ids[:, :5], **greedy))


def test_old_checkpoint_without_switch_keys_loads_as_book(tmp_path):
    """A directory saved before the switches existed: its config.json has none of their keys."""
    config = GPTConfig.from_preset("tiny")
    torch.manual_seed(0)
    model = GPTForCausalLM(config).eval()
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    new_keys = {"position", "rope_theta", "rope_scaling_parameters", "norm", "norm_weight", "mlp",
                "intermediate_size", "n_kv_heads", "qk_norm", "bias"}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps({k: v for k, v in saved.items() if k not in new_keys}))
    loaded = GPTForCausalLM.from_pretrained(tmp_path).eval()
    assert describe_architecture(loaded.config) == "book (learned, layernorm, gelu)"
    ids = torch.randint(0, config.vocab_size, (2, 10))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, atol=0, rtol=0)


@pytest.mark.skipif(
    not is_flash_attn_2_available(), reason="flash-attn needs a CUDA GPU and the flash_attn package"
)
def test_flash_attention_matches_sdpa(tiny_config):
    torch.manual_seed(0)
    model = GPTForCausalLM(tiny_config).to("cuda", torch.bfloat16).eval()
    flash = GPTForCausalLM._from_config(tiny_config, attn_implementation="flash_attention_2")
    flash = flash.to("cuda", torch.bfloat16).eval()
    flash.load_state_dict(model.state_dict())
    ids = torch.randint(0, tiny_config.vocab_size, (2, 24), device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(flash(ids).logits, model(ids).logits, atol=2e-2, rtol=2e-2)
