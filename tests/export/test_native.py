"""Native export: hfpipe's llama layout saved as transformers' own Llama/Qwen3 loads where hfpipe is not
installed, without trust_remote_code, with hfpipe's logits and greedy tokens; the import back is the same model;
a layout with no native class is refused in one line naming the switch."""

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hfpipe.export.native import export_native, gpt_config_from_native, import_native, native_type
from hfpipe.loading import load_model
from hfpipe.models.gpt import GPTConfig

from .conftest import tiny_causal_lm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from without_hfpipe import run_without_hfpipe  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PROMPT = "The quick brown fox"
N_TOKENS = 16
LLAMA = {"position": "rope", "norm": "rmsnorm", "mlp": "swiglu", "bias": False, "qkv_bias": False,
         "n_heads": 4, "n_kv_heads": 2}  # fmt: skip
VARIANTS = {  # name -> (overrides, the native class)
    "llama": (LLAMA, "LlamaForCausalLM"),
    "llama-tied-mqa-scaled-rope": (
        {
            **LLAMA,
            "n_kv_heads": 1,
            "tie_word_embeddings": True,
            "rope_theta": 500000.0,
            "rope_scaling_parameters": {"rope_type": "linear", "factor": 2.0},
        },
        "LlamaForCausalLM",
    ),  # fmt: skip
    "llama-biases-weightless-norms": (
        {**LLAMA, "bias": True, "qkv_bias": True, "norm_weight": False, "layer_norm_epsilon": 1e-6},
        "LlamaForCausalLM",
    ),
    "qwen3": ({**LLAMA, "qk_norm": True}, "Qwen3ForCausalLM"),
}

# In a Python that cannot import hfpipe: load each directory as a user would, print logits and greedy tokens.
CHILD = """
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
prompt, n, results = sys.argv[1], int(sys.argv[2]), {}
for path in sys.argv[3:]:
    model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=False, dtype=torch.float32).eval()
    ids = AutoTokenizer.from_pretrained(path)(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(ids).logits[0]
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                         eos_token_id=None)
    results[path] = {"class": type(model).__name__, "logits": logits.tolist(),
                     "greedy": out[0, ids.shape[1]:].tolist()}
print(json.dumps(results))
"""


def hfpipe_outputs(model, tokenizer):
    ids = torch.tensor([tokenizer(PROMPT)["input_ids"]])
    with torch.no_grad():
        logits = model(ids).logits[0]
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=N_TOKENS, do_sample=False,
                         eos_token_id=None, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    return logits, out[0, ids.shape[1] :].tolist()


@pytest.fixture(scope="module")
def exported(bpe_tokenizer, tmp_path_factory):
    """variant -> (the hfpipe model dir, its native export dir). Untrained 2-layer models, initialised wide
    enough (std 0.3) that their greedy tokens vary: with GPT-2's 0.02 some repeat one token from the start."""
    root = tmp_path_factory.mktemp("native")
    dirs = {}
    for name, (overrides, _) in VARIANTS.items():
        model = tiny_causal_lm(bpe_tokenizer, train_steps=0, initializer_range=0.3, **overrides)
        model.save_pretrained(root / name)
        bpe_tokenizer.save_pretrained(root / name)
        dirs[name] = (root / name, export_native(root / name, root / f"{name}-native"))
    return dirs


def test_export_loads_without_hfpipe_and_computes_hfpipes_logits_and_tokens(
    exported, bpe_tokenizer, tmp_path
):
    natives = [str(native) for _, native in exported.values()]
    proc = run_without_hfpipe(CHILD, PROMPT, N_TOKENS, *natives, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, (source, native) in exported.items():
        assert not list(native.glob("*.py")), f"{name}: the export ships code"
        assert "auto_map" not in json.loads((native / "config.json").read_text())
        got = results[str(native)]
        assert got["class"] == VARIANTS[name][1]
        logits, greedy = hfpipe_outputs(load_model(str(source), dtype=torch.float32), bpe_tokenizer)
        worst = (torch.tensor(got["logits"]) - logits).abs().max().item()
        assert worst <= 1e-5, f"{name}: logits differ by {worst}"
        assert len(set(greedy)) >= 8, f"{name}: degenerate greedy output, it proves little: {greedy}"
        assert got["greedy"] == greedy, f"{name}: greedy tokens differ"


@pytest.mark.parametrize("name", list(VARIANTS))
def test_import_back_is_the_same_model(name, exported, tmp_path):
    source, native = exported[name]
    back = import_native(native, tmp_path / "back")
    original, imported = (load_model(str(p), dtype=torch.float32) for p in (source, back))
    ids = torch.arange(40)[None] % original.config.vocab_size
    with torch.no_grad():
        assert (original(ids).logits - imported(ids).logits).abs().max().item() <= 1e-5
    for key in ("position", "norm", "mlp", "n_kv_heads", "qk_norm", "rope_theta", "rope_scaling_parameters",
                "tie_word_embeddings", "intermediate_size", "layer_norm_epsilon"):  # fmt: skip
        assert getattr(imported.config, key) == getattr(original.config, key), key
    assert (back / "tokenizer.json").is_file()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({}, "cannot export as Llama: position='learned' (Llama needs rotary positions, position='rope')"),
        ({**LLAMA, "mlp": "relu2"}, "cannot export as Llama: mlp='relu2' (Llama needs swiglu)"),
        ({**LLAMA, "mlp": "gelu"}, "cannot export as Llama: mlp='gelu' (Llama needs swiglu)"),
        ({**LLAMA, "norm": "layernorm"}, "cannot export as Llama: norm='layernorm' (Llama needs rmsnorm)"),
        (
            {**LLAMA, "qk_norm": True, "bias": True},
            "cannot export as Qwen3: bias=True (Qwen3's MLP has no bias",
        ),
        ({**LLAMA, "position": "learned", "qk_norm": True}, "cannot export as Qwen3: position='learned'"),
    ],
    ids=["book", "relu2", "gelu-rope", "layernorm", "qwen3-mlp-bias", "qwen3-learned"],
)
def test_a_layout_without_native_class_names_the_switch(overrides, message):
    with pytest.raises(ValueError) as err:
        native_type(GPTConfig(**{"emb_dim": 32, "n_heads": 4, **overrides}))
    assert str(err.value).startswith(message)


def test_nanochat_preset_is_refused():
    with pytest.raises(ValueError, match=r"cannot export as Qwen3: mlp='relu2' \(Qwen3 needs swiglu\)"):
        native_type(GPTConfig.from_preset("tiny", architecture="nanochat"))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"hidden_act": "gelu"}, "cannot import LlamaConfig: hidden_act='gelu'"),
        ({"head_dim": 16}, "cannot import LlamaConfig: head_dim 16 x 4 heads != hidden_size 32"),
    ],
)
def test_an_import_hfpipe_cannot_compute_is_refused(overrides, message):
    from transformers import LlamaConfig

    config = LlamaConfig(hidden_size=32, num_attention_heads=4, intermediate_size=64, **overrides)
    with pytest.raises(ValueError, match=message):
        gpt_config_from_native(config)


def test_recipe_exports_and_imports_checking_logits(exported, tmp_path, capsys):
    from hfpipe.cli.export_native import main

    source, _ = exported["qwen3"]
    native = main(["--model_name_or_path", str(source), "--output_dir", str(tmp_path / "q")])
    assert "native model written to" in capsys.readouterr().out
    assert json.loads((native / "config.json").read_text())["architectures"] == ["Qwen3ForCausalLM"]
    main(
        ["--model_name_or_path", str(native), "--output_dir", str(tmp_path / "b"), "--direction", "to_hfpipe"]
    )
    assert "hfpipe model written to" in capsys.readouterr().out


def test_cli_refusal_is_one_line(bpe_tokenizer, tmp_path):
    tiny_causal_lm(bpe_tokenizer, train_steps=0, **{**LLAMA, "mlp": "relu2"}).save_pretrained(tmp_path / "m")
    proc = subprocess.run([sys.executable, "-m", "hfpipe", "export_native", "--model_name_or_path",
                           str(tmp_path / "m"), "--output_dir", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("error: cannot export as Llama: mlp='relu2' (Llama needs swiglu)\n")
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def test_readme_commands_run_as_written(bpe_tokenizer, tmp_path, monkeypatch):
    from hfpipe.cli import main

    readme = (REPO / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("hfpipe export_native ")]
    assert len(commands) == 2
    monkeypatch.chdir(tmp_path)
    model_dir = tmp_path / "outputs" / "quickstart-llama"
    tiny_causal_lm(bpe_tokenizer, train_steps=0, **LLAMA).save_pretrained(model_dir)
    bpe_tokenizer.save_pretrained(model_dir)
    for command in commands:
        main(shlex.split(command)[1:])
    assert (
        json.loads((tmp_path / "outputs" / "back" / "config.json").read_text())["model_type"] == "hfpipe_gpt"
    )


def test_a_lora_adapter_exports_merged(exported, tmp_path):
    from peft import LoraConfig, get_peft_model

    source, _ = exported["llama"]
    torch.manual_seed(0)
    lora = LoraConfig(target_modules=["qkv", "out_proj", "gate_up", "fc2"], r=4, init_lora_weights=False)
    get_peft_model(load_model(str(source)), lora).save_pretrained(tmp_path / "adapter")
    native = load_model(str(export_native(tmp_path / "adapter", tmp_path / "native")), dtype=torch.float32)
    merged = load_model(str(tmp_path / "adapter"), merge_adapter=True, dtype=torch.float32)
    base = load_model(str(source), dtype=torch.float32)
    ids = torch.arange(20)[None]
    with torch.no_grad():
        assert (native(ids).logits - merged(ids).logits).abs().max().item() <= 1e-5
        assert (base(ids).logits - merged(ids).logits).abs().max().item() > 1e-3  # the adapter counts


def test_output_dir_must_not_be_the_source(exported):
    source, native = exported["llama"]
    with pytest.raises(ValueError, match="is the model being converted"):
        export_native(source, source)
    with pytest.raises(ValueError, match="is the model being converted"):
        import_native(native, native)
    assert (source / "model.safetensors").is_file()


def test_import_reads_a_llama_saved_with_rope_theta_and_rope_scaling(exported, tmp_path):
    """Llama checkpoints saved before transformers 5 name RoPE `rope_theta` + `rope_scaling`, not
    `rope_parameters`: transformers reads them into rope_parameters, and the import takes them from there."""
    import shutil

    _, native = exported["llama"]
    old = shutil.copytree(native, tmp_path / "old")
    config = json.loads((old / "config.json").read_text())
    config.pop("rope_parameters")
    config.update(rope_theta=250000.0, rope_scaling={"rope_type": "linear", "factor": 4.0})
    (old / "config.json").write_text(json.dumps(config))
    back = load_model(str(import_native(old, tmp_path / "back")))
    assert back.config.rope_theta == 250000.0
    assert back.config.rope_scaling_parameters == {"rope_type": "linear", "factor": 4.0}
