"""What a user types is what we test: every Python snippet of the README runs as written, and every recipe
command in it uses only settings its recipe knows."""

import importlib
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from hfpipe import GPTConfig, GPTForCausalLM, GPTForSequenceClassification
from hfpipe.recipe_args import parse_recipe_args
from hfpipe.tokenization import train_bpe_tokenizer

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
SNIPPETS = re.findall(r"```python\n(.*?)```", README, re.S)
COMMANDS = [
    " ".join(line.strip().rstrip("\\") for line in block.strip().splitlines())
    for block in re.findall(r"```bash\n(.*?)```", README, re.S)
    for block in re.split(r"\n(?=\S)", block)  # continuation lines start with spaces
]
sys.path.insert(0, str(REPO / "tests"))
from without_hfpipe import HIDE_HFPIPE  # noqa: E402


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """outputs/quickstart (a causal GPT) and outputs/spam (a ham/spam classifier), as the recipes write them."""
    root = tmp_path_factory.mktemp("readme")
    texts = [
        "Return the number of items.",
        "You won a free prize! Reply now to claim",
        "See you at lunch",
    ] * 20
    tokenizer = train_bpe_tokenizer(texts, vocab_size=300, model_max_length=64)
    torch.manual_seed(0)
    kw = dict(vocab_size=len(tokenizer), context_length=64, emb_dim=32, n_heads=2, n_layers=2,
              eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    GPTForCausalLM(GPTConfig(**kw)).save_pretrained(root / "outputs" / "quickstart")
    labels = {"id2label": {0: "ham", 1: "spam"}, "label2id": {"ham": 0, "spam": 1}}
    GPTForSequenceClassification(GPTConfig(**kw, **labels)).save_pretrained(root / "outputs" / "spam")
    for name in ("quickstart", "spam"):
        tokenizer.save_pretrained(root / "outputs" / name)
    return root


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)  # fmt: skip


def test_the_readme_has_the_snippets_and_commands_we_test():
    assert len(SNIPPETS) >= 3 and any("pipeline(" in s for s in SNIPPETS)
    assert any("recipes/pretrain.py" in c for c in COMMANDS) and any("recipes/sft.py" in c for c in COMMANDS)


@pytest.mark.parametrize("i", [i for i, s in enumerate(SNIPPETS) if "OpenAI(" not in s])
def test_python_snippet_runs_as_written(i, outputs):
    code = SNIPPETS[i]
    if "import hfpipe" not in code:  # "loading a model anywhere": prove it where hfpipe is not installed
        code = HIDE_HFPIPE + code
    result = run_python(code, outputs)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Do you wish to run the custom code" not in result.stdout + result.stderr


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("i", [i for i, s in enumerate(SNIPPETS) if "OpenAI(" in s])
def test_openai_client_snippet_against_the_served_model(i, outputs):
    if not _free(8000):
        pytest.skip("port 8000, which the README's snippet uses, is taken on this machine")
    command = next(c for c in COMMANDS if c.startswith("python recipes/serve.py"))
    args = shlex.split(command.split("#")[0])
    server = subprocess.Popen([sys.executable, str(REPO / args[1]), *args[2:]], cwd=outputs,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen("http://127.0.0.1:8000/health", timeout=2)
                break
            except OSError:
                assert server.poll() is None, server.stderr.read()[-3000:]
                assert time.time() < deadline, "the server did not start"
                time.sleep(0.5)
        result = run_python(SNIPPETS[i], outputs)
        assert result.returncode == 0, result.stderr[-3000:]
    finally:
        server.terminate()
        server.wait(timeout=30)


RECIPE_COMMANDS = [c for c in COMMANDS if re.match(r"(accelerate launch .*?|python )recipes/\w+\.py", c)]


@pytest.mark.parametrize("command", RECIPE_COMMANDS, ids=lambda c: c[:70])
def test_recipe_command_uses_known_settings(command, tmp_path, monkeypatch):
    """Each command's flags parse with its recipe's own dataclasses (they would be a user's first error)."""
    monkeypatch.chdir(tmp_path)
    words = shlex.split(command.split("  #")[0].split("&&")[-1])
    at = next(i for i, w in enumerate(words) if w.startswith("recipes/"))
    sys.path.insert(0, str(REPO / "recipes"))
    try:
        recipe = importlib.import_module(Path(words[at]).stem)
    finally:
        sys.path.remove(str(REPO / "recipes"))
    args = [str(REPO / w) if w.startswith("recipes/configs/") else w for w in words[at + 1 :]]
    parse_recipe_args(recipe.ARGUMENTS, args)


HFPIPE_COMMANDS = [c for c in COMMANDS if re.match(r"(accelerate launch .*?-m )?hfpipe \w+", c)]


@pytest.mark.parametrize("command", HFPIPE_COMMANDS, ids=lambda c: c[:70])
def test_hfpipe_command_uses_known_settings(command, tmp_path, monkeypatch):
    """``hfpipe <command> ...`` (and under ``accelerate launch -m``): its settings parse; a pipeline plans."""
    from hfpipe.cli import COMMANDS as CLI
    from hfpipe.pipeline import load_pipeline, plan

    monkeypatch.chdir(tmp_path)
    words = shlex.split(command.split("  #")[0])
    at = words.index("hfpipe")
    name = words[at + 1]
    args = [str(REPO / w) if w.startswith("recipes/configs/") else w for w in words[at + 2 :]]
    module = importlib.import_module(f"hfpipe.cli.{CLI[name][0]}")
    if name == "pipeline":
        known, overrides = module.parse(args)
        assert plan(load_pipeline(known.config, overrides))
    elif name == "configs":  # `hfpipe configs [NAME] [> file]`: prints what ships
        printed = module.main(args[: args.index(">")] if ">" in args else args)
        assert printed.strip()
    elif name == "refresh_code":
        parse_recipe_args(module.ARGUMENTS, ["--model_dirs", *args])
    else:
        parse_recipe_args(module.ARGUMENTS, args)


def test_readme_names_every_command():
    from hfpipe.cli import COMMANDS as CLI

    missing = [name for name in CLI if f"`{name}`" not in README and f"hfpipe {name}" not in README]
    assert not missing, f"commands the README does not name: {missing}"
