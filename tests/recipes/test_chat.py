"""recipes/chat.py: one-shot mode streams the greedy answer; the loop keeps history, /reset and /quit."""

import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "sft"))
from sft_fixtures import bpe_tokenizer, save_hfpipe_model  # noqa: E402

from hfpipe.cli import chat  # noqa: E402
from hfpipe.loading import load_model_and_tokenizer  # noqa: E402
from hfpipe.sft.chat import ChatArguments, chat_loop, load_chat  # noqa: E402


def test_one_shot_prompt_streams_the_greedy_answer(tmp_path, capsys):
    model_dir = save_hfpipe_model(tmp_path / "m", bpe_tokenizer())
    answer = chat.main(
        ["--model_name_or_path", str(model_dir), "--prompt", "Say red.", "--max_new_tokens", "8"]
    )
    printed = capsys.readouterr().out
    assert answer and answer in printed  # streamed as generated
    model, tok = load_model_and_tokenizer(str(model_dir))
    ids = tok.apply_chat_template([{"role": "user", "content": "Say red."}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)  # fmt: skip
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    assert answer == tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def test_loop_keeps_history_and_resets(tmp_path, capsys):
    model_dir = save_hfpipe_model(tmp_path / "m", bpe_tokenizer())
    session = load_chat(
        ChatArguments(str(model_dir), max_new_tokens=4, system_prompt="Be brief."), stream=False
    )
    lines = iter(["hello", "again", "/reset", "once more", "/quit", "never read"])
    chat_loop(session, read=lambda _: next(lines))
    roles = [m["role"] for m in session.history]
    assert roles == ["system", "user", "assistant"] and session.history[1]["content"] == "once more"
    assert "(conversation reset)" in capsys.readouterr().out
