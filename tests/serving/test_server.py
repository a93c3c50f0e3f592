"""The OpenAI-compatible server with the real ``openai`` client against real uvicorn servers on 127.0.0.1."""

import json
import threading
import time

import httpx
import openai
import pytest
import torch
from openai import OpenAI

PROMPTS = ["The quick brown", "Return the number", "I had always", "First Citizen:", "hear me", "fox", "lazy dog",
           "zero when", "Jack Gisburn", "Before we", "items in the", "cheap genius", "speak.", "it is", "The", "a"]  # fmt: skip


def client(url, api_key="none", **kwargs):
    return OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0, timeout=60, **kwargs)


def greedy(model, tokenizer, ids, max_new_tokens):
    """The reference: ``generate()`` alone on this prompt; returns (text, generated token count)."""
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=max_new_tokens, do_sample=False)[
            0, len(ids) :
        ]
    return tokenizer.decode(out, skip_special_tokens=True), len(out)


def stream_text(stream, chat=False):
    parts, finish = [], None
    for chunk in stream:
        for choice in chunk.choices:
            parts.append((choice.delta.content if chat else choice.text) or "")
            finish = choice.finish_reason or finish
    return "".join(parts), finish


def test_models_and_health(serve):
    url = serve()
    assert [m.id for m in client(url).models.list().data] == ["tiny-gpt"]
    health = httpx.get(f"{url}/health").json()
    assert health["status"] == "ok" and health["running"] == 0


def test_completion_matches_generate_and_counts_usage(serve, model, tokenizer):
    ids = tokenizer("The quick brown").input_ids
    text, n_new = greedy(model, tokenizer, ids, 12)
    out = client(serve()).completions.create(
        model="tiny-gpt", prompt="The quick brown", max_tokens=12, temperature=0
    )
    assert out.object == "text_completion" and out.choices[0].text == text
    assert out.choices[0].finish_reason == ("length" if n_new == 12 else "stop")
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (len(ids), n_new)
    assert out.usage.total_tokens == len(ids) + n_new


def test_chat_uses_the_chat_template(serve, model, tokenizer):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Who is Jack?"}]
    ids = tokenizer(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False),
                    add_special_tokens=False).input_ids  # fmt: skip
    text, n_new = greedy(model, tokenizer, ids, 10)
    out = client(serve()).chat.completions.create(
        model="tiny-gpt", messages=messages, max_tokens=10, temperature=0
    )
    assert out.choices[0].message.role == "assistant" and out.choices[0].message.content == text
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (len(ids), n_new)


def test_stream_equals_complete_text(serve):
    c = client(serve())
    kw = {"model": "tiny-gpt", "max_tokens": 20, "temperature": 0}
    whole = c.completions.create(prompt="lazy dog", **kw).choices[0]
    assert stream_text(c.completions.create(prompt="lazy dog", stream=True, **kw)) == (
        whole.text,
        whole.finish_reason,
    )
    messages = [{"role": "user", "content": "Hello"}]
    whole = c.chat.completions.create(messages=messages, **kw).choices[0]
    streamed = stream_text(c.chat.completions.create(messages=messages, stream=True, **kw), chat=True)
    assert streamed == (whole.message.content, whole.finish_reason)


def test_stream_ends_with_done_and_usage(serve):
    body = {"model": "tiny-gpt", "prompt": "fox", "max_tokens": 5, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    with httpx.stream("POST", f"{serve()}/v1/completions", json=body, timeout=60) as response:
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    usage = json.loads(events[-2][6:])["usage"]
    assert usage["completion_tokens"] <= 5 and usage["prompt_tokens"] > 0


def test_stop_sequences(serve):
    c = client(serve())
    kw = {"model": "tiny-gpt", "prompt": "Jack Gisburn", "max_tokens": 24, "temperature": 0}
    full = c.completions.create(**kw).choices[0].text
    stop = full[5:8]
    assert len(stop) == 3, "the reference text is too short to pick a stop string from"
    out = c.completions.create(stop=[stop, "never appears \u2603"], **kw).choices[0]
    assert out.text == full[: full.index(stop)] and out.finish_reason == "stop"
    assert stream_text(c.completions.create(stop=stop, stream=True, **kw)) == (out.text, "stop")


def test_n_choices_and_seed(serve):
    c = client(serve())
    kw = {"model": "tiny-gpt", "prompt": "The", "max_tokens": 8, "temperature": 1.0, "top_p": 0.9, "seed": 7}
    first, again = c.completions.create(n=2, **kw), c.completions.create(n=2, **kw)
    assert [ch.index for ch in first.choices] == [0, 1]
    assert [ch.text for ch in first.choices] == [ch.text for ch in again.choices]  # seeded: reproducible
    assert first.choices[0].text != first.choices[1].text  # each choice samples its own stream
    assert first.usage.completion_tokens > 8  # both choices counted
    streamed = c.completions.create(n=2, stream=True, **kw)
    texts = ["", ""]
    for chunk in streamed:
        for ch in chunk.choices:
            texts[ch.index] += ch.text
    assert texts == [ch.text for ch in first.choices]


def test_sixteen_concurrent_clients_are_batched_and_correct(serve, engine, model, tokenizer):
    expected = [greedy(model, tokenizer, tokenizer(p).input_ids, 16)[0] for p in PROMPTS]
    c, answers = client(serve()), [None] * len(PROMPTS)
    start = threading.Barrier(len(PROMPTS))

    def ask(i):
        start.wait()
        out = c.completions.create(model="tiny-gpt", prompt=PROMPTS[i], max_tokens=16, temperature=0)
        answers[i] = out.choices[0].text

    engine.stats["max_batch_size_seen"] = 0
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert answers == expected
    assert engine.stats["max_batch_size_seen"] > 1, "concurrent requests were not decoded together"


BAD_REQUESTS = {
    "malformed JSON": ("/v1/completions", b'{"model": "tiny-gpt", "prompt": ', 400, None),
    "JSON that is not an object": ("/v1/completions", b"[1, 2]", 400, None),
    "wrong field type": (
        "/v1/completions",
        {"model": "tiny-gpt", "prompt": "a", "max_tokens": "ten"},
        400,
        "max_tokens",
    ),
    "messages as a string": (
        "/v1/chat/completions",
        {"model": "tiny-gpt", "messages": "hello"},
        400,
        "messages",
    ),
    "unknown role": (
        "/v1/chat/completions",
        {"model": "tiny-gpt", "messages": [{"role": "x", "content": "a"}]},
        400,
        "messages.0.role",
    ),
    "missing prompt": ("/v1/completions", {"model": "tiny-gpt"}, 400, "prompt"),
    "prompt over the context": ("/v1/completions", {"model": "tiny-gpt", "prompt": [5] * 64}, 400, "prompt"),
    "prompt + max_tokens over the context": (
        "/v1/completions",
        {"model": "tiny-gpt", "prompt": [5] * 30, "max_tokens": 40},
        400,
        "max_tokens",
    ),
    "max_tokens 0": (
        "/v1/completions",
        {"model": "tiny-gpt", "prompt": "a", "max_tokens": 0},
        400,
        "max_tokens",
    ),
    "max_tokens negative": (
        "/v1/chat/completions",
        {"model": "tiny-gpt", "messages": [{"role": "user", "content": "a"}], "max_tokens": -1},
        400,
        "max_tokens",
    ),
    "max_tokens over the cap": (
        "/v1/completions",
        {"model": "tiny-gpt", "prompt": "a", "max_tokens": 49},
        400,
        "max_tokens",
    ),
    "n 0": ("/v1/completions", {"model": "tiny-gpt", "prompt": "a", "n": 0}, 400, "n"),
    "temperature 5": (
        "/v1/completions",
        {"model": "tiny-gpt", "prompt": "a", "temperature": 5},
        400,
        "temperature",
    ),
    "token id out of range": ("/v1/completions", {"model": "tiny-gpt", "prompt": [1, 99999]}, 400, "prompt"),
    "unknown model": ("/v1/completions", {"model": "gpt-4", "prompt": "a"}, 404, "model"),
    "unknown route": ("/v1/embeddings", {"model": "tiny-gpt", "input": "a"}, 404, None),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(serve, case):
    url = serve()
    path, body, status, param = BAD_REQUESTS[case]
    kw = {"content": body} if isinstance(body, bytes) else {"json": body}
    response = httpx.post(f"{url}{path}", headers={"content-type": "application/json"}, timeout=60, **kw)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["param"] == param
    assert client(url).completions.create(model="tiny-gpt", prompt="a", max_tokens=2).choices[0].finish_reason


def test_openai_client_sees_typed_errors(serve):
    c = client(serve())
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        c.completions.create(model="tiny-gpt", prompt="a", max_tokens=0)
    with pytest.raises(openai.NotFoundError, match="gpt-4"):
        c.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "a"}])


def test_api_key(serve):
    url = serve(api_key="s3cret")
    with pytest.raises(openai.AuthenticationError):
        client(url, api_key="wrong").models.list()
    assert httpx.get(f"{url}/v1/models").status_code == 401
    assert client(url, api_key="s3cret").models.list().data[0].id == "tiny-gpt"
    assert httpx.get(f"{url}/health").status_code == 200  # load balancers probe without a key


def test_client_disconnect_mid_stream_frees_its_slot(tokenizer):
    """A model with a long context, so that an unstopped stream would run for seconds."""
    from hfpipe import GPTConfig, GPTForCausalLM
    from hfpipe.serving import Engine, build_app

    from .conftest import Server

    torch.manual_seed(0)
    config = GPTConfig(vocab_size=len(tokenizer), context_length=1024, emb_dim=64, n_heads=2, n_layers=4,
                       drop_rate=0.0, eos_token_id=None)  # fmt: skip
    engine = Engine(GPTForCausalLM(config).eval(), tokenizer, max_batch_size=4)
    server = Server(build_app(engine, "long", max_tokens_cap=1000))
    try:
        body = {"model": "long", "prompt": "The", "max_tokens": 1000, "stream": True, "temperature": 0}
        with httpx.stream("POST", f"{server.url}/v1/completions", json=body, timeout=60) as response:
            next(response.iter_lines())  # the first event, then hang up
        deadline = time.monotonic() + 30
        while httpx.get(f"{server.url}/health").json()["running"]:
            assert time.monotonic() < deadline, "the abandoned stream kept its slot"
            time.sleep(0.02)
        assert engine.stats["generated_tokens"] < 500, "the abandoned stream was generated to its end"
        out = client(server.url).completions.create(model="long", prompt="a", max_tokens=3)
        assert out.usage.completion_tokens == 3
    finally:
        server.stop()
        engine.shutdown()


def test_request_timeout(serve):
    url = serve(request_timeout=0.001)
    response = httpx.post(
        f"{url}/v1/completions", json={"model": "tiny-gpt", "prompt": "a", "max_tokens": 48}
    )
    assert response.status_code == 504 and response.json()["error"]["code"] == "timeout"


def test_queue_limit_answers_429(model, tokenizer):
    from hfpipe.serving import Engine, build_app

    from .conftest import Server

    engine = Engine(model, tokenizer, max_batch_size=1, max_waiting=1)
    server = Server(build_app(engine, "tiny-gpt", max_tokens_cap=48))
    try:
        start, statuses = threading.Barrier(8), []
        body = {"model": "tiny-gpt", "prompt": "The", "max_tokens": 40, "temperature": 0}

        def ask():
            start.wait()
            statuses.append(httpx.post(f"{server.url}/v1/completions", json=body, timeout=60).status_code)

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert 429 in statuses and 200 in statuses and set(statuses) <= {200, 429}
        assert httpx.post(f"{server.url}/v1/completions", json=body, timeout=60).status_code == 200
    finally:
        server.stop()
        engine.shutdown()


def test_default_max_tokens_fit_the_context(serve):
    c = client(serve())
    out = c.completions.create(model="tiny-gpt", prompt=[5] * 60, temperature=0)  # default 16 > 4 left
    assert out.usage.completion_tokens <= 4
    assert c.completions.create(model="tiny-gpt", prompt="a", temperature=0).usage.completion_tokens <= 16
