"""Native export at a real size: a gpt2-small-sized model in the llama layout (and with QK-norm, Qwen3) saved
as transformers' own class and imported back; wall times and the largest logit difference each way.

    python benchmarks/bench_native_export.py          # gpt2-small size; writes benchmarks/results/native_export.md
    python benchmarks/bench_native_export.py --preset tiny --output /tmp/native.md

Random weights (the export maps every tensor whatever its values); GPT-2's vocabulary from the shared data when
it is there (its tokenizer is saved beside the model), else the preset's vocabulary without a tokenizer.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
GPT2_TOKENIZER = REPO.parent / "shared" / "data" / "gpt2-tokenizer"
LAYOUTS = {"llama": {}, "llama + qk_norm (Qwen3)": {"qk_norm": True}}


def measure(preset: str, workdir: Path) -> list[dict]:
    """One row per layout: parameters, export and import seconds, and both logit differences."""
    from hfpipe import GPTConfig, GPTForCausalLM
    from hfpipe.export.native import export_native, import_native, max_logit_difference
    from hfpipe.tokenization import load_gpt2_tokenizer

    tokenizer = load_gpt2_tokenizer(GPT2_TOKENIZER) if GPT2_TOKENIZER.is_dir() else None
    sizes = {"vocab_size": len(tokenizer)} if tokenizer is not None else {}
    rows = []
    for i, (name, switches) in enumerate(LAYOUTS.items()):
        torch.manual_seed(0)
        config = GPTConfig.from_preset(preset, architecture="llama", **sizes, **switches)
        source = workdir / f"hfpipe-{i}"
        model = GPTForCausalLM(config)
        model.save_pretrained(source)
        if tokenizer is not None:
            tokenizer.save_pretrained(source)
        start = time.perf_counter()
        native = export_native(source, workdir / f"native-{i}")
        exported = time.perf_counter()
        back = import_native(native, workdir / f"back-{i}")
        imported = time.perf_counter()
        rows.append({
            "layout": name, "params": model.num_parameters(),
            "kv": f"{config.n_kv_heads} of {config.n_heads}", "export_s": exported - start,
            "import_s": imported - exported, "diff_native": max_logit_difference(source, native),
            "diff_back": max_logit_difference(source, back),
        })  # fmt: skip
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| layout | parameters | kv heads | export (s) | import back (s) | max logit diff native | max logit diff back |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r['layout']} | {r['params'] / 1e6:.1f}M | {r['kv']} | {r['export_s']:.1f} | "
                     f"{r['import_s']:.1f} | {r['diff_native']:.1e} | {r['diff_back']:.1e} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="gpt2-small")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "native_export.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hfpipe-native-") as tmp:
        rows = measure(args.preset, Path(tmp))
    text = (
        f"# Native export\n\n`python benchmarks/bench_native_export.py --preset {args.preset}`\n\n"
        + table(rows)
        + "\n\nA time is loading the source, converting and saving (safetensors and tokenizer); the logit "
        "check is not in it. Logit differences: fp32, 16 tokens, against the hfpipe source (`max_logit_difference`). "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end; torch {torch.__version__}, "
        f"Python {sys.version.split()[0]}.\n"
    )
    from hfpipe.io import write_file_atomically

    write_file_atomically(lambda tmp: tmp.write_text(text), args.output)
    print(text)
    return text


if __name__ == "__main__":
    main()
