"""Chat with a model from recipes/sft.py: streamed answers, multi-turn history, /reset and /quit.

python recipes/chat.py --model_name_or_path outputs/sft
python recipes/chat.py --model_name_or_path outputs/sft --prompt "Name three primary colours."   # one-shot
python recipes/chat.py --model_name_or_path outputs/sft --temperature 0.7 --top_p 0.9
"""

from __future__ import annotations

from hfpipe.recipe_args import parse_recipe_args, setup_logging
from hfpipe.sft.chat import ChatArguments, chat_loop, load_chat

ARGUMENTS = (ChatArguments,)


def main(args: list[str] | None = None) -> str | None:
    """Chat interactively, or answer ``--prompt`` once; returns the one-shot answer."""
    (chat_args,) = parse_recipe_args(ARGUMENTS, args)
    setup_logging(main_process=False)  # the conversation only: warnings and errors, no info lines
    session = load_chat(chat_args)
    if chat_args.prompt is not None:
        return session.reply(chat_args.prompt)  # streamed to stdout as it is generated
    chat_loop(session)
    return None
