"""Chat with a fine-tuned model: streamed tokens, multi-turn history through the saved chat template.

The history is rendered with the tokenizer's own chat template (the one training used), so the model
sees exactly the prompts it was trained on. When the history outgrows the context, the oldest turns go.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import TextStreamer

from hfpipe.loading import load_model_and_tokenizer

from ..loading import model_context_length

HELP = "commands: /reset (forget the conversation), /quit (or Ctrl-D)"


@dataclass
class ChatArguments:
    """The model and the sampling settings of recipes/chat.py."""

    model_name_or_path: str = field(metadata={"help": "SFT output dir (model, adapter or merged), or Hub id"})
    prompt: str | None = field(
        default=None, metadata={"help": "one-shot: answer this and exit (for scripts)"}
    )
    system_prompt: str | None = field(default=None, metadata={"help": "system message opening every chat"})
    max_new_tokens: int = field(default=256, metadata={"help": "cap on each answer's length"})
    temperature: float = field(default=0.0, metadata={"help": "0 is greedy; > 0 samples"})
    top_k: int | None = field(default=None, metadata={"help": "sample among the k likeliest tokens"})
    top_p: float | None = field(
        default=None, metadata={"help": "nucleus sampling: smallest set with this mass"}
    )
    seed: int = field(default=123, metadata={"help": "seed of sampling"})

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 is greedy), got {self.temperature}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


class ChatSession:
    """A conversation with ``model``: ``reply(text)`` streams and returns the answer, keeping the history."""

    def __init__(self, model, tokenizer, args: ChatArguments, stream: bool = True):
        if not tokenizer.chat_template:
            raise ValueError(
                f"{args.model_name_or_path} has no chat template; chat with a recipes/sft.py output, which saves one"
            )
        self.model, self.tokenizer, self.args, self.stream = model.eval(), tokenizer, args, stream
        self.context = model_context_length(model.config) or 1024
        self.reset()

    def reset(self) -> None:
        self.history = (
            [{"role": "system", "content": self.args.system_prompt}] if self.args.system_prompt else []
        )

    def _prompt_ids(self) -> list[int]:
        while True:
            ids = self.tokenizer.apply_chat_template(
                self.history, add_generation_prompt=True, tokenize=True, return_dict=True
            )["input_ids"]
            first = 1 if self.history and self.history[0]["role"] == "system" else 0
            if len(ids) < self.context or len(self.history) - first <= 1:
                return list(ids)[-(self.context - 1) :]
            del self.history[first : first + 2]  # forget the oldest exchange

    @torch.no_grad()
    def reply(self, text: str) -> str:
        """Answer ``text`` (streamed to stdout when ``stream``), and remember both in the history."""
        self.history.append({"role": "user", "content": text})
        ids = torch.tensor([self._prompt_ids()], device=self.model.device)
        a = self.args
        sampling = (
            {"do_sample": True, "temperature": a.temperature, "top_k": a.top_k, "top_p": a.top_p}
            if a.temperature > 0
            else {"do_sample": False}
        )
        torch.manual_seed(a.seed)
        streamer = (
            TextStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True) if self.stream else None
        )
        out = self.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max(1, min(a.max_new_tokens, self.context - ids.shape[1])),
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id,
            streamer=streamer,
            **sampling,
        )
        answer = self.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()
        self.history.append({"role": "assistant", "content": answer})
        return answer


def load_chat(args: ChatArguments, stream: bool = True) -> ChatSession:
    """A ChatSession on ``args.model_name_or_path`` (a model, a LoRA adapter dir, or a merged model)."""
    model, tokenizer = load_model_and_tokenizer(args.model_name_or_path)
    return ChatSession(model, tokenizer, args, stream)


def chat_loop(session: ChatSession, read=input) -> None:
    """The interactive loop: a line in, a streamed answer out, until /quit or end of input."""
    print(HELP)
    while True:
        try:
            text = read("you> ").strip()
        except EOFError:
            print()
            return
        if text == "/quit":
            return
        if text == "/reset":
            session.reset()
            print("(conversation reset)")
            continue
        if text:
            print("model> ", end="", flush=True)
            session.reply(text)
