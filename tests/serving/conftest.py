"""A tiny hfpipe model saved with a BPE tokenizer, and real uvicorn servers on 127.0.0.1 in threads."""

import threading
import time

import pytest
import torch

from hfpipe import GPTConfig, GPTForCausalLM
from hfpipe.serving import Engine, bind_socket, build_app, uvicorn_server
from hfpipe.tokenization import train_bpe_tokenizer

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Return the number of items in the list, or zero when it is empty.",
    "I had always thought Jack Gisburn rather a cheap genius.",
    "First Citizen: Before we proceed any further, hear me speak.",
] * 10


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A random tiny GPT (context 64) and its tokenizer, saved like an hfpipe output."""
    tokenizer = train_bpe_tokenizer(TEXTS, vocab_size=320, min_frequency=1, model_max_length=64)
    torch.manual_seed(0)
    config = GPTConfig(
        vocab_size=len(tokenizer), context_length=64, emb_dim=32, n_heads=2, n_layers=2, drop_rate=0.0,
        initializer_range=0.1,  # peaked logits: no near-ties for batched vs single greedy decoding
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("served") / "tiny-gpt"
    GPTForCausalLM(config).eval().save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def model(model_dir):
    return GPTForCausalLM.from_pretrained(model_dir).eval()


@pytest.fixture(scope="session")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


class Server:
    """uvicorn serving ``app`` on a free port of 127.0.0.1, in a thread."""

    def __init__(self, app):
        sock = bind_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn_server(app)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.02)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def engine(model, tokenizer):
    engine = Engine(model, tokenizer, max_batch_size=16, max_waiting=64)
    yield engine
    engine.shutdown()


@pytest.fixture(scope="session")
def serve(engine):
    """``serve(**build_app_kwargs) -> base url``: a server over the shared engine (started once per settings)."""
    servers = {}

    def start(**kwargs):
        key = tuple(sorted(kwargs.items()))
        if key not in servers:
            kwargs = {"engine": engine, "model_name": "tiny-gpt", "max_tokens_cap": 48, **kwargs}
            servers[key] = Server(build_app(**kwargs))
        return servers[key].url

    yield start
    for server in servers.values():
        server.stop()
