#!/bin/bash
# The GPU check (issue 16), for a machine with NVIDIA GPUs; about 5-10 minutes. One table at the end, also
# written to benchmarks/results/gpu_check.md:
#   - GPT-2 124M pretraining tokens/s and MFU on 1 GPU, bf16 autocast + SDPA, eager and with torch_compile,
#     hfpipe's recipe against transformers' GPT2LMHeadModel with the same Trainer settings, interleaved;
#   - the same size with the modern preset (llama: RoPE, RMSNorm, SwiGLU, GQA) and Muon, beside the book one;
#   - the recipe under accelerate_configs/fsdp.yaml (FSDP2, GPTBlock units) on every GPU present, 20 steps.
#
#   bash benchmarks/gpu_check.sh             # on the GPU machine, from anywhere
#   bash benchmarks/gpu_check.sh --dry-run   # print the commands, run nothing (works without a GPU)
#
# Environment (optional): PYTHON (default python), WORK (default a new temp dir), NGPU (default: all visible),
# and for the data step TOKENIZER (default GPT-2's: ../shared/data/gpt2-tokenizer, else the Hub's
# openai-community/gpt2) and TEXT (default ../shared/data/tinyshakespeare.txt, else the stdlib corpus).
set -euo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=0
case "${1:-}" in
    --dry-run) DRY_RUN=1 ;;
    "") ;;
    *) echo "usage: bash benchmarks/gpu_check.sh [--dry-run]" >&2; exit 2 ;;
esac
PYTHON=${PYTHON:-python}

if [ "$DRY_RUN" = 1 ]; then
    WORK=${WORK:-/tmp/hfpipe-gpu-check}
    NGPU=${NGPU:-8}
else
    if ! command -v nvidia-smi >/dev/null 2>&1 \
        || ! "$PYTHON" -c "import sys, torch; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
        echo "gpu_check: no CUDA GPU here (nvidia-smi or torch.cuda missing); run it on a GPU machine," \
            "or pass --dry-run to see the commands" >&2
        exit 2
    fi
    WORK=${WORK:-$(mktemp -d -t hfpipe-gpu-check-XXXX)}
    NGPU=${NGPU:-$("$PYTHON" -c "import torch; print(torch.cuda.device_count())")}
fi
ONE_GPU=${CUDA_VISIBLE_DEVICES:-0}
ONE_GPU=${ONE_GPU%%,*}  # the single-GPU runs see one GPU (with more, Trainer would use DataParallel)

run() {
    if [ "$DRY_RUN" = 1 ]; then
        printf '%q ' "$@" | sed 's/ $//'
        echo
    else
        "$@"
    fi
}

DATA=()
[ -n "${TOKENIZER:-}" ] && DATA+=(--tokenizer "$TOKENIZER")
[ -n "${TEXT:-}" ] && DATA+=(--text "$TEXT")
# ${DATA[@]+...}: an empty array under set -u, also in bash < 4.4
run "$PYTHON" benchmarks/bench_gpu.py prepare --workdir "$WORK" ${DATA[@]+"${DATA[@]}"}
ONE=(env CUDA_VISIBLE_DEVICES="$ONE_GPU" "$PYTHON" benchmarks/bench_gpu.py)
run "${ONE[@]}" throughput --workdir "$WORK" --name eager
run "${ONE[@]}" throughput --workdir "$WORK" --name compiled --torch-compile --repeats 1
run "${ONE[@]}" throughput --workdir "$WORK" --name modern --architecture llama --optimizer muon
run "$PYTHON" -m accelerate.commands.launch --config_file accelerate_configs/fsdp.yaml \
    --num_processes "$NGPU" --main_process_port 0 benchmarks/bench_gpu.py fsdp --workdir "$WORK" \
    --max_steps 20
run "$PYTHON" benchmarks/bench_gpu.py table --workdir "$WORK"
