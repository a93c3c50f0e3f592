"""hfpipe's OpenAI-compatible server against ``transformers serve`` on the same weights.

    python benchmarks/bench_serve.py                     # a small random GPT it builds (about 5 minutes)
    python benchmarks/bench_serve.py --model DIR         # your hfpipe model directory
    python benchmarks/bench_serve.py --quick --no-peer   # tiny settings, hfpipe only (the smoke test)

Both servers run as a user would start them (``recipes/serve.py``; ``transformers serve`` on the
model converted to GPT-2, since it cannot load hfpipe's architecture), one after the other, on the same
cores. Clients send greedy ``/v1/completions`` requests at concurrency 1, 4 and 16; the table gives
throughput, p50/p95 latency, generated tokens/s and failed requests, then the same malformed-request
checks against both servers. Compare the ratios, not the absolute figures: the machine may be shared.
Writes ``benchmarks/results/serve.md`` and prints it.
"""

from __future__ import annotations

import hfpipe  # noqa: F401  (first: it quiets optional libraries' import-time warnings)

# isort: split

import argparse
import asyncio
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from safetensors import safe_open

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "serve.md"
# transformers serve as it starts, and with the continuous batching (paged attention) a user would turn on
PEERS = {"transformers serve": [], "transformers serve --continuous-batching": ["--continuous-batching"]}
PROMPTS = [
    "Return the number of", "The quick brown fox", "It was a bright cold day", "In the beginning",
    "Once upon a time there", "The result of the call", "Open the file and", "A list of all the",
]  # fmt: skip
TEXT = " ".join(PROMPTS) + " jumps over the lazy dog and the clocks were striking thirteen. " * 5


@dataclass
class Setup:
    emb_dim: int
    n_layers: int
    n_heads: int
    context_length: int
    max_tokens: int
    requests_per_client: int
    levels: tuple[int, ...] = (1, 4, 16)


FULL = Setup(emb_dim=256, n_layers=4, n_heads=4, context_length=256, max_tokens=64, requests_per_client=2)
QUICK = Setup(emb_dim=32, n_layers=2, n_heads=2, context_length=64, max_tokens=8, requests_per_client=1,
              levels=(1, 4))  # fmt: skip


def progress(step: str) -> None:
    print(f"[bench_serve] {time.strftime('%H:%M:%S')} {step}", file=sys.stderr, flush=True)


def build_model(setup: Setup, out: Path) -> Path:
    """A random hfpipe GPT (GPT-2 layout: QKV bias) with a small BPE tokenizer, saved to ``out``."""
    import torch

    from hfpipe import GPTConfig, GPTForCausalLM
    from hfpipe.tokenization import train_bpe_tokenizer

    tokenizer = train_bpe_tokenizer([TEXT] * 20, vocab_size=512, min_frequency=1)
    torch.manual_seed(0)
    config = GPTConfig(
        vocab_size=len(tokenizer), context_length=setup.context_length, emb_dim=setup.emb_dim,
        n_heads=setup.n_heads, n_layers=setup.n_layers, drop_rate=0.0, qkv_bias=True,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    GPTForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """A server command run in the background until ``/health`` answers; its output goes to a log file."""

    def __init__(
        self, name: str, command: list[str], port: int, log: Path, threads: int, timeout: float = 300
    ):
        self.name, self.url, self.log = name, f"http://127.0.0.1:{port}", log
        # the same torch threads for both servers (OMP_NUM_THREADS); on a busy machine more only spin
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": str(threads),
        }
        with open(log, "w") as fh:
            self.process = subprocess.Popen(command, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{name} did not start; its log:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()


async def load_test(url: str, model: str, concurrency: int, n_requests: int, max_tokens: int) -> dict:
    """``n_requests`` greedy completions from ``concurrency`` clients; throughput, latencies and failures."""
    latencies, tokens, failures = [], 0, 0
    queue = asyncio.Queue()
    for i in range(n_requests):
        queue.put_nowait(PROMPTS[i % len(PROMPTS)])

    async def client(http: httpx.AsyncClient):
        nonlocal tokens, failures
        while not queue.empty():
            body = {"model": model, "prompt": queue.get_nowait(), "max_tokens": max_tokens, "temperature": 0}
            start = time.perf_counter()
            try:
                response = await http.post(f"{url}/v1/completions", json=body)
                response.raise_for_status()
                tokens += response.json()["usage"]["completion_tokens"]
                latencies.append(time.perf_counter() - start)
            except (httpx.HTTPError, KeyError, ValueError):
                failures += 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    latencies.sort()
    pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")  # noqa: E731
    return {"requests": n_requests, "failed": failures, "wall": wall, "req_s": len(latencies) / wall,
            "tok_s": tokens / wall, "p50": statistics.median(latencies) if latencies else float("nan"),
            "p95": pct(0.95)}  # fmt: skip


CHECKS = {
    "GET /v1/models": ("GET", "/v1/models", None),
    '`"messages": "hello"`': ("POST", "/v1/chat/completions", {"messages": "hello"}),
    "malformed JSON": ("POST", "/v1/chat/completions", b'{"messages": [{"role": '),
    "`max_tokens: 0`": ("POST", "/v1/completions", {"prompt": "a", "max_tokens": 0}),
    "prompt over the context": ("POST", "/v1/completions", {"prompt": "fox " * 2000, "max_tokens": 4}),
}


def run_checks(url: str, model: str) -> dict[str, str]:
    """The HTTP status of each bad or edge request, and whether the server still answers afterwards."""
    results = {}
    for name, (method, path, body) in CHECKS.items():
        kw = {}
        if isinstance(body, bytes):
            kw = {"content": body, "headers": {"content-type": "application/json"}}
        elif body is not None:
            kw = {"json": {"model": model, **body}}
        try:
            status = httpx.request(method, f"{url}{path}", timeout=120, **kw).status_code
            results[name] = str(status)
        except httpx.HTTPError as err:
            results[name] = f"no answer ({type(err).__name__})"
    alive = httpx.get(f"{url}/health", timeout=30).status_code == 200
    results["still serving afterwards"] = "yes" if alive else "no"
    return results


def measure(server: ServerProcess, model: str, setup: Setup, levels) -> dict[int, dict]:
    asyncio.run(load_test(server.url, model, 2, 2, setup.max_tokens))  # warm-up
    out = {}
    for c in levels:
        progress(f"{server.name}: concurrency {c}")
        out[c] = asyncio.run(load_test(server.url, model, c, c * setup.requests_per_client, setup.max_tokens))
    return out


def table(setup: Setup, n_params: int, threads: int, ours: dict, peers: dict, checks: dict) -> str:
    row = lambda name, c, r: (  # noqa: E731
        f"| {name} | {c} | {r['requests']} | {r['failed']} | {r['req_s']:.2f} | {r['tok_s']:,.0f} | "
        f"{r['p50']:.2f} | {r['p95']:.2f} |"
    )
    lines = [
        "# Serving: hfpipe `recipes/serve.py` vs `transformers serve`",
        "",
        f"Random GPT, {n_params / 1e6:.1f} M parameters ({setup.n_layers} layers, {setup.emb_dim} dims, context "
        f"{setup.context_length}); greedy `/v1/completions`, `max_tokens` {setup.max_tokens}, "
        f"{setup.requests_per_client} requests per client; {os.cpu_count()} CPU cores, {platform.machine()}, "
        f"{threads} torch thread(s) per server, torch {__import__('torch').__version__}, transformers "
        f"{__import__('transformers').__version__}. `transformers serve` serves the same weights converted to "
        "GPT-2; the servers run one after the other. Latencies in seconds.",
        "",
        "| server | concurrency | requests | failed | requests/s | generated tokens/s | p50 | p95 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [row("hfpipe", c, r) for c, r in ours.items()]
    for name, peer in peers.items():
        lines += [row(name, c, r) for c, r in peer.items()]
    top, low = max(ours), min(ours)
    tok_s = lambda results, c: results[c]["tok_s"] or float("nan")  # noqa: E731
    lines += ["", "| ratio | value |", "|---|---|",
              f"| hfpipe tokens/s, concurrency {top} / concurrency {low} (goal >= 3x) | {tok_s(ours, top) / tok_s(ours, low):.2f}x |"]  # fmt: skip
    for name, peer in peers.items():
        lines.append(
            f"| {name} tokens/s, concurrency {top} / {low} | {tok_s(peer, top) / tok_s(peer, low):.2f}x |"
        )
    for name, peer in peers.items():
        lines.append(f"| hfpipe / {name} tokens/s at concurrency {top} (target >= 1.0x) | "
                     f"{tok_s(ours, top) / tok_s(peer, top):.2f}x |")  # fmt: skip
    failed = sum(r["failed"] for r in ours.values())
    lines.append(f"| failed requests, hfpipe (goal 0) | {failed} |")
    names = list(checks)
    lines += ["", "HTTP status of the same requests (4xx is the right answer for a bad request; 500 is a server bug):",
              "", "| request | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]  # fmt: skip
    for check in next(iter(checks.values())):
        lines.append(f"| {check} | " + " | ".join(checks[n][check] for n in names) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="an hfpipe model directory (default: build a small random one)")
    parser.add_argument("--quick", action="store_true", help="tiny settings, for the smoke test")
    parser.add_argument("--no-peer", action="store_true", help="skip the transformers serve runs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each server (default 1)")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    setup = QUICK if args.quick else FULL

    from hfpipe.loading import convert_checkpoint, read_config

    with tempfile.TemporaryDirectory(prefix="bench_serve-") as tmp:
        tmp = Path(tmp)
        if args.model:
            model_dir = Path(args.model)
            config = read_config(str(model_dir))
            setup.context_length = config.get("context_length", setup.context_length)
            setup.n_layers, setup.emb_dim = config.get("n_layers", "?"), config.get("emb_dim", "?")
        else:
            model_dir = build_model(setup, tmp / "hfpipe-gpt")
        with safe_open(str(next(model_dir.glob("*.safetensors"))), "pt") as fh:
            n_params = sum(math.prod(fh.get_slice(k).get_shape()) for k in fh.keys())

        progress(f"starting hfpipe's server on {model_dir}")
        port = free_port()
        command = [sys.executable, "recipes/serve.py", "--model_name_or_path", str(model_dir), "--port", str(port),
                   "--served_model_name", "bench", "--max_waiting", "256"]  # fmt: skip
        ours_server = ServerProcess("hfpipe", command, port, tmp / "hfpipe.log", args.threads)
        try:
            ours = measure(ours_server, "bench", setup, setup.levels)
            checks = {"hfpipe": run_checks(ours_server.url, "bench")}
        finally:
            ours_server.stop()

        peers = {}
        if not args.no_peer:
            gpt2_dir = convert_checkpoint(str(model_dir), str(tmp / "gpt2"), direction="to_gpt2")
            for name, flags in PEERS.items():
                progress(f"starting {name} on the same weights converted to GPT-2")
                port = free_port()
                command = [
                    "transformers",
                    "serve",
                    str(gpt2_dir),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    *flags,
                ]
                peer_server = ServerProcess(name, command, port, tmp / "transformers.log", args.threads)
                try:
                    peers[name] = measure(
                        peer_server, str(gpt2_dir), setup, (min(setup.levels), max(setup.levels))
                    )
                    checks[name] = run_checks(peer_server.url, str(gpt2_dir))
                finally:
                    peer_server.stop()

    result = table(setup, n_params, args.threads, ours, peers, checks)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(result)
    print(result)
    return result


if __name__ == "__main__":
    main()
