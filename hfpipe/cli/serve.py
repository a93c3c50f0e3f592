"""Serve a model with an OpenAI-compatible API (completions, chat, streaming), batching concurrent requests.

python recipes/serve.py --model_name_or_path outputs/quickstart
python recipes/serve.py --config recipes/configs/serve.yaml --model_name_or_path outputs/quickstart --port 8080

Then any OpenAI client: ``OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="none")``.
"""

import logging

from transformers.utils import logging as hf_logging

from hfpipe.recipe_args import parse_recipe_args, setup_logging
from hfpipe.serving import ServeArguments, bind_socket, create_app, load_engine, uvicorn_server

logger = logging.getLogger("hfpipe.serve")


ARGUMENTS = (ServeArguments,)


def main(args: list[str] | None = None) -> None:
    """Load the model, listen, and serve until interrupted."""
    setup_logging()
    hf_logging.disable_progress_bar()
    (cfg,) = parse_recipe_args(ARGUMENTS, args)
    engine = load_engine(cfg)
    app = create_app(cfg, engine)
    sock = bind_socket(cfg.host, cfg.port)
    host, port = sock.getsockname()[:2]
    logger.info(
        "serving %s (context %d tokens, batches of up to %d) at http://%s:%d/v1%s",
        cfg.model_name_or_path, engine.context_length, cfg.max_batch_size, host, port,
        ", API key required" if app.state.api_key_required else "",
    )  # fmt: skip
    try:
        uvicorn_server(app).run(sockets=[sock])
    finally:
        engine.shutdown()
