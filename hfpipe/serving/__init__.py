"""An OpenAI-compatible server for hfpipe models: a batching engine behind a FastAPI app.

Needs the ``serve`` extra: ``pip install "hfpipe[serve]"`` (fastapi, uvicorn).
"""

from .app import APIError, build_app
from .engine import Engine, QueueFullError, Request, SamplingParams
from .server import ServeArguments, bind_socket, create_app, load_engine, uvicorn_server

__all__ = [
    "APIError",
    "Engine",
    "QueueFullError",
    "Request",
    "SamplingParams",
    "ServeArguments",
    "bind_socket",
    "build_app",
    "create_app",
    "load_engine",
    "uvicorn_server",
]
