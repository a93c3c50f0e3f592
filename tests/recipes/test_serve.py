"""recipes/serve.py as a user runs it: a subprocess on a free port of 127.0.0.1, the real openai client."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from openai import OpenAI

from hfpipe import GPTConfig, GPTForCausalLM
from hfpipe.recipe_args import run_recipe
from hfpipe.tokenization import train_bpe_tokenizer

from ..conftest import import_script

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "serve.py"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    tokenizer = train_bpe_tokenizer(["The quick brown fox jumps over the lazy dog."] * 10, vocab_size=300,
                                    min_frequency=1)  # fmt: skip
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=len(tokenizer), context_length=64, emb_dim=32, n_heads=2, n_layers=2,
                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    path = tmp_path_factory.mktemp("serve") / "tiny"
    GPTForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_serves_until_interrupted(model_dir, tmp_path):
    config = tmp_path / "serve.yaml"
    config.write_text("max_tokens_cap: 32\nserved_model_name: tiny-gpt\n")
    process = subprocess.Popen(
        [sys.executable, str(RECIPE), "--config", str(config), "--model_name_or_path", str(model_dir), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV, cwd=REPO,
    )  # fmt: skip
    try:
        lines, deadline = [], time.monotonic() + 120
        while not (match := re.search(r"at (http://127\.0\.0\.1:\d+/v1)", "".join(lines))):
            assert time.monotonic() < deadline and process.poll() is None, "".join(lines)
            lines.append(process.stdout.readline())
        client = OpenAI(base_url=match.group(1), api_key="none", max_retries=0, timeout=60)
        assert client.models.list().data[0].id == "tiny-gpt"
        out = client.chat.completions.create(model="tiny-gpt", messages=[{"role": "user", "content": "Hi"}],
                                             max_tokens=5, temperature=0)  # fmt: skip
        assert out.usage.completion_tokens <= 5 and out.choices[0].finish_reason in ("stop", "length")
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode in (0, 130), rest
    assert "Traceback" not in "".join(lines) + rest


def _user_error(capsys, args) -> str:
    """Run the recipe in-process (a new interpreter costs seconds) through run_recipe; return its stderr."""
    main = import_script("recipes/serve.py", "serve_recipe").main
    with pytest.raises(SystemExit) as exit_info:
        run_recipe(lambda: main(args))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err[err.index("error: ") :]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model_name_or_path", "./no/such/model"], "does not exist"),
        (["--model_name_or_path", "{model}", "--max_batch_size", "0"], "max_batch_size must be at least 1"),
        (["--model_name_or_path", "{model}", "--port", "99999"], "port must be in"),
        (["--model_name_or_path", "{model}", "--dtype", "int3"], "dtype must be"),
    ],
)
def test_user_errors_are_one_line(model_dir, capsys, args, message):
    err = _user_error(capsys, [a.format(model=model_dir) for a in args])
    assert message in err.splitlines()[0]


def test_busy_port_is_a_user_error(model_dir, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        err = _user_error(
            capsys, ["--model_name_or_path", str(model_dir), "--port", str(busy.getsockname()[1])]
        )
    assert "choose another --port" in err
