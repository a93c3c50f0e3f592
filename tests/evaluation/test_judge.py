"""The LLM judge against a real OpenAI-compatible HTTP server on 127.0.0.1 (no mocked client)."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hfpipe.evaluation.judge import JudgeUnavailableError, judge_responses, load_responses, parse_score

RECORDS = [
    {
        "instruction": "Name the capital of France.",
        "input": "",
        "output": "Paris.",
        "model_response": "Paris is it.",
    },
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5", "model_response": "It is 5."},
    {"instruction": "Spell 'cat' backwards.", "input": "", "output": "tac", "model_response": "dog"},
    {"instruction": "Say hello.", "input": "", "output": "Hello!", "model_response": "mumble"},
]
# The judge's answer for each model response: a plain number, a number in words, no number at all.
REPLIES = {"Paris is it.": "90", "It is 5.": "Score: 80/100", "dog": "5", "mumble": "I cannot rate this."}


class JudgeServer:
    """A deterministic OpenAI-compatible chat endpoint; ``fail_after`` answers, it returns 503."""

    def __init__(self, fail_after: int | None = None):
        self.requests, self.fail_after = [], fail_after
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                if not self.path.endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": "not found"}})
                if server.fail_after is not None and len(server.requests) > server.fail_after:
                    return self._send(503, {"error": {"message": "overloaded"}})
                prompt = body["messages"][0]["content"]
                response = re.search(r"score the model response `(.*?)` on a scale", prompt, re.S).group(1)
                message = {"role": "assistant", "content": REPLIES[response]}
                self._send(200, {
                    "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                })  # fmt: skip

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = JudgeServer()
    yield s
    s.close()


def test_parse_score():
    assert parse_score("87") == 87 and parse_score(" Score: 80/100") == 80 and parse_score("100.") == 100
    assert parse_score("no idea") is None and parse_score("") is None and parse_score(None) is None
    assert parse_score("250") is None and parse_score("3.5") is None


def test_judge_scores_every_answer_and_keeps_them(server, tmp_path):
    out = tmp_path / "judge_scores.json"
    summary = judge_responses(RECORDS, server.url, "judge-model", out, max_retries=0, progress=False)
    assert summary.scores == [90, 80, 5] and summary.unparsable == 1  # never counted as 0
    metrics = summary.metrics()
    assert metrics["judge/mean"] == pytest.approx(175 / 3) and metrics["judge/unparsable"] == 1
    assert summary.distribution() == {"0-19": 1, "20-39": 0, "40-59": 0, "60-79": 0, "80-100": 2}
    saved = json.loads(out.read_text())
    assert [r["score"] for r in saved["records"]] == [90, 80, 5, None]
    assert saved["records"][3]["judge_reply"] == "I cannot rate this." and saved["metrics"] == metrics
    request = server.requests[1]
    assert request["model"] == "judge-model" and request["temperature"] == 0.0
    assert request["messages"][0]["content"] == (
        "Given the input `Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request.\n\n### Instruction:\nAdd the numbers.\n\n### Input:\n2 and 3` and correct output "
        "`5`, score the model response `It is 5.` on a scale from 0 to 100, where 100 is the best score. "
        "Respond with the integer number only."
    )


def test_endpoint_going_down_keeps_the_scores_and_a_rerun_resumes(tmp_path):
    out = tmp_path / "judge_scores.json"
    failing = JudgeServer(fail_after=2)
    try:
        with pytest.raises(
            JudgeUnavailableError, match=rf"{re.escape(failing.url)} failed after 1 retries.*2 scores"
        ):
            judge_responses(RECORDS, failing.url, "m", out, max_retries=1, timeout=5, progress=False)
        assert len(failing.requests) == 4  # 2 answered, then the 3rd tried twice
    finally:
        failing.close()
    assert [r.get("score") for r in json.loads(out.read_text())["records"]] == [90, 80, None, None]
    healthy = JudgeServer()
    try:
        summary = judge_responses(RECORDS, healthy.url, "m", out, max_retries=0, progress=False)
    finally:
        healthy.close()
    assert len(healthy.requests) == 2 and summary.scores == [90, 80, 5]


def test_unreachable_endpoint_names_the_url(tmp_path):
    url = "http://127.0.0.1:9/v1"  # discard port: nothing listens
    with pytest.raises(JudgeUnavailableError, match=re.escape(url)):
        judge_responses(RECORDS, url, "m", tmp_path / "s.json", max_retries=0, timeout=2, progress=False)


def test_load_responses_accepts_both_key_names(tmp_path):
    path = tmp_path / "test_responses.json"
    path.write_text(json.dumps([
        {"instruction": "a", "input": "", "reference": "b", "response": "c"},
        {"instruction": "d", "output": "e", "model_response": "f"},
    ]))  # fmt: skip
    assert load_responses(path) == [
        {"instruction": "a", "input": "", "output": "b", "model_response": "c"},
        {"instruction": "d", "input": "", "output": "e", "model_response": "f"},
    ]
    path.write_text(json.dumps([{"instruction": "a", "output": "b"}]))
    with pytest.raises(ValueError, match="no model response"):
        load_responses(path)
