"""Load a model directory into an ``Engine`` and serve it with uvicorn.

args = ServeArguments(model_name_or_path="outputs/quickstart")
run_server(args)        # blocks; Ctrl-C stops it
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..loading import load_model_and_tokenizer
from .app import build_app
from .engine import Engine

logger = logging.getLogger(__name__)

API_KEY_ENV = "HFPIPE_API_KEY"


@dataclass
class ServeArguments:
    """What to serve and the server's limits, as flat recipe keys."""

    model_name_or_path: str = field(
        metadata={
            "help": "an hfpipe output, a GPT-2 or any AutoModelForCausalLM directory, or a LoRA adapter"
        }
    )
    tokenizer_name_or_path: str | None = field(default=None, metadata={"help": "default: the model's own"})
    served_model_name: str | None = field(
        default=None, metadata={"help": "the model id clients send (default: the directory's name)"}
    )
    host: str = field(
        default="127.0.0.1", metadata={"help": "address to listen on (0.0.0.0: every interface)"}
    )
    port: int = field(default=8000, metadata={"help": "port to listen on"})
    api_key: str | None = field(
        default=None, metadata={"help": f"require 'Authorization: Bearer <key>' (or set {API_KEY_ENV})"}
    )
    max_batch_size: int = field(default=16, metadata={"help": "sequences decoded together at most"})
    max_waiting: int = field(default=64, metadata={"help": "requests allowed to wait; more are answered 429"})
    max_tokens_cap: int = field(default=1024, metadata={"help": "largest max_tokens a request may ask for"})
    request_timeout: float = field(default=600.0, metadata={"help": "seconds before a request is abandoned"})
    dtype: str = field(default="auto", metadata={"help": "auto, float32, bfloat16 or float16"})
    num_threads: int | None = field(default=None, metadata={"help": "torch CPU threads (default: torch's)"})


def check_arguments(args: ServeArguments) -> None:
    """Refuse limits that cannot work, naming the setting."""
    for name in ("max_batch_size", "max_waiting", "max_tokens_cap"):
        if getattr(args, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(args, name)}")
    if args.request_timeout <= 0:
        raise ValueError(f"request_timeout must be positive seconds, got {args.request_timeout}")
    if not 0 <= args.port < 65536:
        raise ValueError(f"port must be in [0, 65535], got {args.port}")
    if args.dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise ValueError(f"dtype must be auto, float32, bfloat16 or float16, got {args.dtype!r}")


def load_engine(args: ServeArguments) -> Engine:
    """Load the model (an adapter merged into its base) and tokenizer, and start the batching engine."""
    check_arguments(args)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    dtype = args.dtype if args.dtype == "auto" else getattr(torch, args.dtype)
    model, tokenizer = load_model_and_tokenizer(
        args.model_name_or_path,
        tokenizer_name_or_path=args.tokenizer_name_or_path,
        merge_adapter=True,
        dtype=dtype,
    )
    return Engine(model, tokenizer, max_batch_size=args.max_batch_size, max_waiting=args.max_waiting)


def create_app(args: ServeArguments, engine: Engine | None = None):
    """The FastAPI app for ``args`` (loading the model unless an ``engine`` is given)."""
    engine = engine or load_engine(args)
    name = args.served_model_name or Path(args.model_name_or_path.rstrip("/")).name
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    return build_app(engine, name, api_key, args.max_tokens_cap, args.request_timeout)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: a free one; read it back with ``sock.getsockname()[1]``)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port} ({err.strerror}); choose another --port") from None
    sock.listen(128)
    return sock


def uvicorn_server(app, log_level: str = "warning"):
    """A uvicorn server for ``app``, quiet but for errors and warnings."""
    import uvicorn

    return uvicorn.Server(
        uvicorn.Config(app, log_level=log_level, access_log=False, timeout_graceful_shutdown=5)
    )
