"""The OpenAI-compatible HTTP API (FastAPI) in front of an ``Engine``.

GET /v1/models, POST /v1/completions, POST /v1/chat/completions (both stream with server-sent events
when ``stream`` is true, ending in ``data: [DONE]``), GET /health. Every error, including a malformed
request, is a JSON body in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from .engine import Engine, QueueFullError, SamplingParams
from .engine import Request as EngineRequest


class APIError(Exception):
    """An error answered to the client in OpenAI's shape."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def response(self) -> JSONResponse:
        kind = {401: "authentication_error", 404: "not_found_error", 429: "rate_limit_error"}.get(
            self.status, "invalid_request_error" if self.status < 500 else "server_error"
        )
        body = {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status)


class _Strict(BaseModel):
    # strict: "10" is not an integer; unknown fields (user, logit_bias, ...) are accepted and ignored
    model_config = ConfigDict(strict=True, extra="ignore")


class StreamOptions(_Strict):
    include_usage: bool = False


class _Sampling(_Strict):
    model: str
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int = 1
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: bool | int | None = None


class CompletionRequest(_Sampling):
    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool = False
    best_of: int | None = None


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None


class ChatRequest(_Sampling):
    messages: list[ChatMessage]


def build_app(
    engine: Engine,
    model_name: str,
    api_key: str | None = None,
    max_tokens_cap: int = 1024,
    request_timeout: float = 600.0,
) -> FastAPI:
    """The FastAPI app serving ``engine`` under the name ``model_name``."""
    app = FastAPI(title="hfpipe", docs_url=None, redoc_url=None)
    tokenizer, context = engine.tokenizer, engine.context_length
    created = int(time.time())
    app.state.api_key_required = api_key is not None

    @app.exception_handler(APIError)
    async def _api_error(_, err: APIError):
        return err.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_, err: RequestValidationError):
        first = err.errors()[0]
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        if first.get("type") == "json_invalid":
            return APIError(400, f"the request body is not valid JSON: {first.get('msg')}").response()
        param = ".".join(loc) or None
        message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
        return APIError(400, message, param, "invalid_value").response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_, err: StarletteHTTPException):
        return APIError(err.status_code, str(err.detail)).response()

    @app.exception_handler(Exception)
    async def _unexpected(_, err: Exception):
        return APIError(500, f"internal error: {type(err).__name__}: {err}").response()

    def authorize(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), api_key.encode()):
            raise APIError(401, "invalid API key: send 'Authorization: Bearer <key>'", code="invalid_api_key")

    @app.get("/health")
    async def health():
        return {"status": "ok", **engine.load()}

    @app.get("/v1/models", dependencies=[Depends(authorize)])
    async def models():
        card = {"id": model_name, "object": "model", "created": created, "owned_by": "hfpipe"}
        return {"object": "list", "data": [{**card, "max_model_len": context}]}

    @app.post("/v1/completions", dependencies=[Depends(authorize)])
    async def completions(body: CompletionRequest):
        if body.echo or (body.best_of or 1) > 1:
            raise APIError(400, "echo and best_of are not supported", "echo" if body.echo else "best_of")
        prompts = _prompt_ids(body.prompt, tokenizer)
        return await _generate(body, prompts, "text_completion")

    @app.post("/v1/chat/completions", dependencies=[Depends(authorize)])
    async def chat(body: ChatRequest):
        if not body.messages:
            raise APIError(400, "messages is empty; send at least one message", "messages")
        if tokenizer.chat_template is None:
            raise APIError(400, f"{model_name} has no chat template; use /v1/completions", "messages")
        messages = [{"role": m.role, "content": _content(m.content)} for m in body.messages]
        try:
            text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except Exception as err:  # a template may raise on roles or orders it does not support
            raise APIError(400, f"the chat template rejected the messages: {err}", "messages") from None
        ids = tokenizer(text, add_special_tokens=False).input_ids
        return await _generate(body, [ids], "chat.completion")

    async def _generate(body: _Sampling, prompts: list[list[int]], kind: str):
        if body.model != model_name:
            raise APIError(404, f"model {body.model!r} does not exist; this server serves {model_name!r}",
                           "model", "model_not_found")  # fmt: skip
        params = _sampling_params(body, prompts, kind, context, max_tokens_cap)
        if len(prompts) * body.n > engine.max_batch_size:
            raise APIError(400, f"n x prompts must be at most {engine.max_batch_size}", "n")
        loop, events = asyncio.get_running_loop(), asyncio.Queue()
        emit = lambda *event: loop.call_soon_threadsafe(events.put_nowait, event)  # noqa: E731
        job = EngineRequest([p for p in prompts for _ in range(body.n)], params, emit)
        try:
            engine.submit(job)
        except QueueFullError as err:
            raise APIError(429, f"the server is busy ({err}); retry later", code="queue_full") from None
        reply = _Reply(kind, model_name, n_choices=len(job.prompts), prompt_tokens=sum(map(len, prompts)))
        deadline = loop.time() + request_timeout
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            stream = _sse(reply, events, job, deadline, include_usage)
            return StreamingResponse(stream, media_type="text/event-stream")
        try:
            async for _ in _events(reply, events, deadline):
                pass
        finally:
            job.cancel()
        return reply.complete()

    return app


def _content(content) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(part.text for part in content)


def _prompt_ids(prompt, tokenizer) -> list[list[int]]:
    if isinstance(prompt, str):
        prompt = [prompt]
    if not prompt:
        raise APIError(400, "prompt is empty", "prompt")
    if all(isinstance(p, int) for p in prompt):
        prompt = [prompt]
    ids = [tokenizer(p, add_special_tokens=False).input_ids if isinstance(p, str) else p for p in prompt]
    for p in ids:
        if not p:
            raise APIError(400, "a prompt is empty: give it at least one token", "prompt")
        if any(t < 0 or t >= len(tokenizer) for t in p):
            raise APIError(400, f"prompt token ids must be in [0, {len(tokenizer)})", "prompt")
    return ids


def _sampling_params(body: _Sampling, prompts, kind: str, context: int, cap: int) -> SamplingParams:
    """Check the request's limits and sampling fields; each failure names its field."""
    if body.logprobs:
        raise APIError(400, "logprobs are not supported", "logprobs")
    if body.n < 1:
        raise APIError(400, f"n must be at least 1, got {body.n}", "n")
    longest = max(map(len, prompts))
    param = "prompt" if kind == "text_completion" else "messages"
    if longest >= context:
        raise APIError(400, f"the prompt has {longest} tokens; this model's context is {context} tokens, and "
                       "at least one must remain for the answer: shorten it", param, "context_length_exceeded")  # fmt: skip
    max_tokens = body.max_completion_tokens if body.max_tokens is None else body.max_tokens
    if max_tokens is None:  # OpenAI's defaults: 16 for completions, the rest of the context for chat
        max_tokens = min(16 if kind == "text_completion" else cap, context - longest, cap)
    if max_tokens <= 0 or max_tokens > cap:
        raise APIError(400, f"max_tokens must be between 1 and {cap}, got {max_tokens}", "max_tokens")
    if longest + max_tokens > context:
        raise APIError(400, f"the prompt ({longest} tokens) plus max_tokens ({max_tokens}) exceed this model's "
                       f"context of {context} tokens: lower max_tokens", "max_tokens", "context_length_exceeded")  # fmt: skip
    temperature = 1.0 if body.temperature is None else body.temperature
    if not 0.0 <= temperature <= 2.0:
        raise APIError(400, f"temperature must be in [0, 2], got {temperature}", "temperature")
    top_p = 1.0 if body.top_p is None else body.top_p
    if not 0.0 < top_p <= 1.0:
        raise APIError(400, f"top_p must be in (0, 1], got {top_p}", "top_p")
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    if len(stop) > 4 or not all(stop):
        raise APIError(400, "stop must be up to 4 non-empty strings", "stop")
    return SamplingParams(max_tokens, temperature, top_p, tuple(stop), body.seed)


class _Reply:
    """The texts, finish reasons and usage of one request, and its OpenAI-shaped JSON."""

    def __init__(self, kind: str, model: str, n_choices: int, prompt_tokens: int):
        self.kind, self.model = kind, model
        prefix = "cmpl" if kind == "text_completion" else "chatcmpl"
        self.id, self.created = f"{prefix}-{uuid.uuid4().hex}", int(time.time())
        self.texts = [""] * n_choices
        self.finish: list[str | None] = [None] * n_choices
        self.prompt_tokens, self.completion_tokens = prompt_tokens, 0

    @property
    def done(self) -> bool:
        return all(self.finish)

    def usage(self) -> dict:
        total = self.prompt_tokens + self.completion_tokens
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": total}  # fmt: skip

    def _choice(self, index: int, text: str, finish: str | None, delta: bool, first: bool = False) -> dict:
        if self.kind == "text_completion":
            return {"index": index, "text": text, "logprobs": None, "finish_reason": finish}
        if not delta:
            message = {"role": "assistant", "content": text}
            return {"index": index, "message": message, "logprobs": None, "finish_reason": finish}
        content = {"role": "assistant", "content": text} if first else ({"content": text} if text else {})
        return {"index": index, "delta": content, "logprobs": None, "finish_reason": finish}

    def complete(self) -> dict:
        choices = [
            self._choice(i, t, f, delta=False) for i, (t, f) in enumerate(zip(self.texts, self.finish))
        ]
        return {"id": self.id, "object": self.kind, "created": self.created, "model": self.model,
                "choices": choices, "usage": self.usage()}  # fmt: skip

    def chunk(self, choices: list[dict], usage: dict | None = None) -> str:
        kind = "text_completion" if self.kind == "text_completion" else "chat.completion.chunk"
        body = {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if usage is not None:
            body["usage"] = usage
        return f"data: {json.dumps(body)}\n\n"


async def _events(reply: _Reply, events: asyncio.Queue, deadline: float) -> AsyncIterator[tuple]:
    """Engine events for one request until every choice has finished; raises APIError on error or timeout."""
    loop = asyncio.get_running_loop()
    while not reply.done:
        try:
            event = await asyncio.wait_for(events.get(), max(deadline - loop.time(), 0))
        except asyncio.TimeoutError:
            raise APIError(
                504, "the request timed out; ask for fewer tokens or retry later", code="timeout"
            ) from None
        kind, index, *rest = event
        if kind == "error":
            raise APIError(500, rest[0])
        if kind == "text":
            reply.texts[index] += rest[0]
        else:
            reply.finish[index] = rest[0]
            reply.completion_tokens += rest[1]
        yield event


async def _sse(reply: _Reply, events, job, deadline: float, include_usage: bool) -> AsyncIterator[str]:
    """Server-sent events: one chunk per piece of text, a last one per choice with its finish reason."""
    try:
        try:
            if reply.kind == "chat.completion":
                yield reply.chunk(
                    [reply._choice(i, "", None, True, first=True) for i in range(len(reply.texts))]
                )
            async for kind, index, *rest in _events(reply, events, deadline):
                text, finish = (rest[0], None) if kind == "text" else ("", rest[0])
                yield reply.chunk([reply._choice(index, text, finish, delta=True)])
            if include_usage:
                yield reply.chunk([], reply.usage())
        except APIError as err:
            yield f"data: {json.dumps(json.loads(err.response().body))}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        job.cancel()  # also when the client went away mid-stream: its rows leave the batch
