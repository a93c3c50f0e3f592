"""Export to GGUF (llama.cpp's format) through GPT-2: hfpipe -> ``GPT2LMHeadModel`` -> ``model.gguf``.

llama.cpp has no hfpipe architecture, but hfpipe's GPT is GPT-2's (pre-LayerNorm blocks, learned
positions, fused QKV), so it is written as llama.cpp's ``gpt2`` the way its ``convert_hf_to_gguf.py``
writes a GPT-2: tensor names from ``gguf``'s GPT-2 name map, Conv1D weights transposed, the
byte-level BPE vocabulary with token types, merges, special ids and the chat template.

Refused, because llama.cpp would run a different model than hfpipe's:
- a character-level (WordLevel) or any non-byte-level-BPE tokenizer: llama.cpp's ``gpt2`` tokenizer
  needs BPE merges and GPT-2's pre-tokenizer;
- ``activation_function: gelu`` (exact erf GELU): llama.cpp's GPT-2 uses the tanh approximation;
- a tokenizer with more tokens than the model's vocabulary.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from pathlib import Path

import gguf
import numpy as np
import torch
from transformers import GPT2LMHeadModel

from hfpipe.convert import gpt_to_gpt2
from hfpipe.loading import check_exists, load_model, load_tokenizer, read_config
from hfpipe.models.gpt import GPTConfig

logger = logging.getLogger(__name__)

OUTTYPES = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16}
_CONV1D_WEIGHTS = (".c_attn.weight", ".c_proj.weight", ".c_fc.weight")  # GPT-2 stores them (in, out)


def _pre_tokenizers(spec: dict | None) -> list[dict]:
    if not spec:
        return []
    if spec.get("type") == "Sequence":
        return [p for sub in spec["pretokenizers"] for p in _pre_tokenizers(sub)]
    return [spec]


def check_tokenizer(tokenizer, vocab_size: int) -> None:
    """Raise ValueError unless ``tokenizer`` is a GPT-2-style byte-level BPE that fits ``vocab_size`` ids."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    kind = spec["model"]["type"]
    if kind != "BPE":
        raise ValueError(
            f"GGUF export needs a byte-level BPE tokenizer, this one is {kind}"
            + (" (character level)" if kind == "WordLevel" else "")
            + ": llama.cpp's GPT-2 tokenizer works from BPE merges, which it has none of. "
            "Train a BPE tokenizer (recipes/train_tokenizer.py without char_level) for models meant for llama.cpp"
        )
    pre = _pre_tokenizers(spec.get("pre_tokenizer"))
    if not any(p.get("type") == "ByteLevel" and p.get("use_regex", True) for p in pre) or len(pre) != 1:
        raise ValueError(
            f"GGUF export needs GPT-2's byte-level pre-tokenizer, this tokenizer has {[p.get('type') for p in pre]}; "
            "llama.cpp would split the text differently"
        )
    if pre[0].get("add_prefix_space"):
        raise ValueError(
            "GGUF export: a ByteLevel pre-tokenizer with add_prefix_space is not GPT-2's; llama.cpp would not add the space"
        )
    if len(tokenizer) > vocab_size:
        raise ValueError(
            f"the tokenizer has {len(tokenizer)} tokens but the model only {vocab_size} embeddings; "
            "resize the model's embeddings to len(tokenizer) before exporting"
        )


def gpt2_model(name_or_path: str) -> GPT2LMHeadModel:
    """The checkpoint as a float32 ``GPT2LMHeadModel`` (hfpipe converted); ValueError where GGUF would differ."""
    model_type = read_config(name_or_path).get("model_type")
    if model_type == "gpt2":
        return GPT2LMHeadModel.from_pretrained(name_or_path, dtype=torch.float32).eval()
    if model_type != GPTConfig.model_type:
        raise ValueError(
            f"{name_or_path} is a {model_type!r} model; GGUF export handles hfpipe GPT ({GPTConfig.model_type!r}) "
            "and GPT-2 checkpoints"
        )
    model = load_model(name_or_path, dtype=torch.float32)
    if model.config.activation_function == "gelu":
        raise ValueError(
            f"{name_or_path} uses activation_function 'gelu' (exact erf GELU); llama.cpp's GPT-2 computes the tanh "
            "approximation, so the GGUF model would not be this model. Only gelu_pytorch_tanh/gelu_new models export"
        )
    return gpt_to_gpt2(model)


def gguf_tensors(model: GPT2LMHeadModel) -> dict[str, np.ndarray]:
    """GGUF name -> float32 array, as llama.cpp's converter lays out GPT-2 (Linear layout, (out, in))."""
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GPT2, model.config.n_layer)
    state = model.state_dict()
    if "lm_head.weight" not in state or model.config.tie_word_embeddings:
        state["lm_head.weight"] = model.transformer.wte.weight  # written out: llama.cpp then needs no tying
    tensors = {}
    for name, tensor in state.items():
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            continue  # causal-mask buffers, not weights
        new_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            raise ValueError(f"GGUF export: no GGUF name for GPT-2 tensor {name!r}")
        data = tensor.detach().float()
        tensors[new_name] = (data.t() if name.endswith(_CONV1D_WEIGHTS) else data).contiguous().numpy()
    return tensors


def _token_list(tokenizer, vocab_size: int) -> tuple[list[str], list[int]]:
    """Tokens by id and their types (NORMAL, CONTROL for specials, UNUSED padding rows), as llama.cpp reads them."""
    vocab = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in vocab:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(vocab[i])
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(vocab[i])
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def _write(path: Path, model: GPT2LMHeadModel, tokenizer, tensors: dict, outtype: str, name: str) -> None:
    config = model.config
    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.GPT2])
    writer.add_name(name)
    writer.add_block_count(config.n_layer)
    writer.add_context_length(config.n_positions)
    writer.add_embedding_length(config.n_embd)
    writer.add_feed_forward_length(config.n_inner or 4 * config.n_embd)
    writer.add_head_count(config.n_head)
    writer.add_layer_norm_eps(config.layer_norm_epsilon)
    writer.add_file_type(OUTTYPES[outtype])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    tokens, types = _token_list(tokenizer, config.vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    with tempfile.TemporaryDirectory(prefix="hfpipe-gguf-tok-") as tok_dir:
        tokenizer.save_pretrained(tok_dir)  # gguf's SpecialVocab reads merges, special ids, chat template
        special = gguf.SpecialVocab(tok_dir, load_merges=True, n_vocab=config.vocab_size)
    for kind in ("bos", "eos"):  # hfpipe's tokenizers add no special tokens around a text
        special.add_special_token.setdefault(kind, False)
    if isinstance(special.chat_template, str):
        # {% generation %} marks assistant tokens for transformers' training masks; other Jinja engines
        # (llama.cpp's) do not know the tag, and the text renders the same without it.
        special.chat_template = re.sub(r"{%-?\s*(end)?generation\s*-?%}", "", special.chat_template)
    special.add_to_gguf(writer, quiet=True)

    for tensor_name, data in tensors.items():
        if outtype == "f16" and data.ndim > 1:  # llama.cpp keeps 1-D tensors (norms, biases) in f32
            data = data.astype(np.float16)
        writer.add_tensor(tensor_name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file(progress=True)
    writer.close()


def export_gguf(
    model_name_or_path: str | os.PathLike,
    output_file: str | os.PathLike,
    outtype: str = "f32",
    tokenizer_name_or_path: str | os.PathLike | None = None,
) -> Path:
    """Write an hfpipe (or GPT-2) checkpoint and its tokenizer as one GGUF file for llama.cpp.

    ``outtype``: ``f32`` (exact) or ``f16`` (2-D weights in half precision). Returns the file's path;
    a failed export leaves no file behind.
    """
    if outtype not in OUTTYPES:
        raise ValueError(f"outtype {outtype!r} is not supported; use one of {list(OUTTYPES)}")
    source = str(model_name_or_path)
    check_exists(source)
    out = Path(output_file)
    if out.is_dir():
        raise ValueError(f"output_file {str(out)!r} is a directory; give a file name such as model.gguf")
    tokenizer = load_tokenizer(tokenizer_name_or_path or source)
    model = gpt2_model(source)
    check_tokenizer(tokenizer, model.config.vocab_size)
    tensors = gguf_tensors(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.tmp-", dir=out.parent)
    os.close(fd)
    try:
        _write(Path(tmp), model, tokenizer, tensors, outtype, Path(source).name or source)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    logger.info("GGUF (%s, %d tensors) written to %s", outtype, len(tensors), out)
    return out


def compare_gguf(path: str | os.PathLike, expected: dict[str, np.ndarray]) -> float:
    """Read ``path`` back with ``GGUFReader`` and compare every tensor with ``expected`` (from ``gguf_tensors``).

    Returns the largest absolute difference; raises ValueError on a missing, extra or mis-shaped tensor.
    """
    reader = gguf.GGUFReader(path)
    found = {t.name: t for t in reader.tensors}
    if set(found) != set(expected):
        raise ValueError(
            f"{path}: tensors differ from the checkpoint (missing {sorted(set(expected) - set(found))}, "
            f"extra {sorted(set(found) - set(expected))})"
        )
    worst = 0.0
    for name, want in expected.items():
        got = np.asarray(found[name].data)
        if got.shape != want.shape:
            raise ValueError(f"{path}: tensor {name} has shape {got.shape}, the checkpoint {want.shape}")
        worst = max(worst, float(np.abs(got.astype(np.float32) - want).max()))
    return worst
