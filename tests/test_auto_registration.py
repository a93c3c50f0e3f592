"""``import hfpipe`` registers the GPT with transformers' Auto classes, whatever transformers imported first."""

import subprocess
import sys

import pytest

FLOWS = {
    "hfpipe first": "import hfpipe\nfrom transformers import AutoModelForCausalLM, AutoModelForSequenceClassification",
    "Trainer in between": "import hfpipe\nfrom transformers import Trainer\n"
    "from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification",
    "transformers first": "from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification\n"
    "import hfpipe",
    "PreTrainedModel in between": "import hfpipe\nfrom transformers import PreTrainedModel\n"
    "from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification",
}
CHECK = """
import sys
lm = AutoModelForCausalLM.from_pretrained(sys.argv[1])
cls = AutoModelForSequenceClassification.from_pretrained(sys.argv[1], num_labels=2)
assert type(lm).__module__ == "hfpipe.models.gpt.modeling_gpt", type(lm).__module__
assert type(cls).__name__ == "GPTForSequenceClassification", type(cls).__name__
from transformers import pipeline
print(pipeline("text-generation", model=lm, tokenizer=sys.argv[1])("the", max_new_tokens=3)[0]["generated_text"])
"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from hfpipe import GPTConfig, GPTForCausalLM
    from hfpipe.tokenization import train_bpe_tokenizer

    tok = train_bpe_tokenizer(
        ["the quick brown fox jumps"] * 20, vocab_size=300, min_frequency=1, model_max_length=64
    )
    config = GPTConfig.from_preset("tiny", vocab_size=len(tok), eos_token_id=tok.eos_token_id,
                                   pad_token_id=tok.pad_token_id)  # fmt: skip
    path = tmp_path_factory.mktemp("registration") / "model"
    GPTForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.mark.parametrize("flow", FLOWS)
def test_auto_classes_load_hfpipe_models_without_remote_code(model_dir, flow):
    proc = subprocess.run([sys.executable, "-c", FLOWS[flow] + CHECK, str(model_dir)], capture_output=True,
                          text=True, timeout=300, env={"HF_HUB_OFFLINE": "1", "PATH": ""})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("the")
