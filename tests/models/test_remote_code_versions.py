"""A saved GPT runs as remote code under the transformers releases pyproject allows (>=5.0,<6).

The API the model file uses moved inside transformers 5: output capture (``check_model_inputs`` in 5.0-5.1,
``capture_outputs`` from 5.2), ``create_causal_mask``'s arguments (``input_embeds`` before 5.2, a required
``cache_position`` until 5.8) and the KV cache's name (``past_key_values``, then ``cache`` from 5.24). Each
release is pip-installed into a temporary directory, never over the installed one, and must give the
installed release's logits, recorded states and generations, with and without the KV cache. The installed
(newest) release itself is checked in the default suite: tests/test_drift.py.
"""

import os
import subprocess
import sys

import pytest
import torch

from hfpipe import GPTConfig, GPTForCausalLM, GPTForSequenceClassification
from hfpipe.models.gpt import GPT_ARCHITECTURES

pytestmark = pytest.mark.slow

# One release per branch of the model file's compatibility code, and the last one before the cache rename.
# Each with the tokenizers and huggingface_hub it accepts (the installed ones may be too new for it).
RELEASES = {
    "5.0.0": ["tokenizers>=0.22,<0.23.1", "huggingface_hub>=1.3,<2"],
    "5.2.0": ["tokenizers>=0.22,<0.23.1", "huggingface_hub>=1.3,<2"],
    "5.23.0": ["tokenizers>=0.23.1,<0.24", "huggingface_hub>=1.31,<3"],
}

CHILD = r"""
import importlib.util, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable___hfpipe" not in getattr(f, "__module__", "")]
assert importlib.util.find_spec("hfpipe") is None, "hfpipe is still importable"
sys.modules["kernels"] = None  # the installed (newest) kernels breaks older transformers' import: hide it
import torch, transformers
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification
lm_dir, cls_dir, inputs, out_path = sys.argv[1:]
ids, mask = torch.load(inputs)
kwargs = {"trust_remote_code": True, "attn_implementation": "eager"}
lm = AutoModelForCausalLM.from_pretrained(lm_dir, **kwargs).eval()
cls = AutoModelForSequenceClassification.from_pretrained(cls_dir, **kwargs).eval()
with torch.no_grad():
    out = lm(ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
    cls_logits = cls(ids, attention_mask=mask).logits
generated = lm.generate(ids, attention_mask=mask, max_new_tokens=5, do_sample=False)
kw = {"max_new_tokens": 24, "do_sample": False, "eos_token_id": None}
cached, uncached = lm.generate(ids[1:], use_cache=True, **kw), lm.generate(ids[1:], use_cache=False, **kw)
torch.save({"cached": cached, "uncached": uncached,
    "version": transformers.__version__, "module": type(lm).__module__, "logits": out.logits,
    "hidden_states": out.hidden_states, "attentions": out.attentions, "generated": generated,
    "cls_logits": cls_logits,
}, out_path)
"""


@pytest.fixture(scope="module", params=sorted(GPT_ARCHITECTURES))
def saved(request, tmp_path_factory):
    """A causal LM and a classifier (of each architecture) saved with their code, left-padded inputs, and this
    release's outputs."""
    root = tmp_path_factory.mktemp("remote-code-versions")
    config = GPTConfig.from_preset("tiny", request.param, eos_token_id=1, bos_token_id=None, pad_token_id=0)
    torch.manual_seed(0)
    lm = GPTForCausalLM._from_config(config, attn_implementation="eager").eval()
    cls = GPTForSequenceClassification._from_config(config, attn_implementation="eager").eval()
    lm.save_pretrained(root / "lm")
    cls.save_pretrained(root / "cls")
    ids = torch.randint(2, config.vocab_size, (2, 8))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    torch.save((ids, mask), root / "inputs.pt")
    with torch.no_grad():
        out = lm(ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
        expected = {
            "logits": out.logits,
            "hidden_states": out.hidden_states,
            "attentions": out.attentions,
            "generated": lm.generate(ids, attention_mask=mask, max_new_tokens=5, do_sample=False),
            "cls_logits": cls(ids, attention_mask=mask).logits,
        }
    return root, expected


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``installed(release)``: a directory holding that transformers release, installed once per module."""
    sites = {}

    def install(release: str):
        if release not in sites:
            site = tmp_path_factory.mktemp(f"transformers-{release}")
            pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
            subprocess.run([*pip, f"transformers=={release}", *RELEASES[release]], check=True, timeout=600)
            sites[release] = site
        return sites[release]

    return install


@pytest.mark.parametrize("release", RELEASES)
def test_remote_code_under_old_release(saved, installed, tmp_path, release):
    root, expected = saved
    site = installed(release)
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    args = [str(root / "lm"), str(root / "cls"), str(root / "inputs.pt"), str(tmp_path / "out.pt")]
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = torch.load(tmp_path / "out.pt")
    assert got["version"] == release and got["module"].startswith("transformers_modules")
    for key in ("logits", "cls_logits"):
        torch.testing.assert_close(got[key], expected[key], msg=key)
    for key in ("hidden_states", "attentions"):
        assert len(got[key]) == len(expected[key]), key
        for layer, (a, b) in enumerate(zip(got[key], expected[key], strict=True)):
            torch.testing.assert_close(a, b, msg=f"{key}[{layer}]")
    assert torch.equal(got["generated"], expected["generated"])
    assert torch.equal(got["cached"], got["uncached"]), f"transformers {release}: cached decoding differs"
