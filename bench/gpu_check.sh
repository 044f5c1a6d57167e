#!/usr/bin/env bash
# The GPU check: one script, under 8 minutes on one GPU, one table (see bench/gpu_check.py):
# training steps of ViT-B/16 + BERT-base at bf16 (MFU, memory estimated against measured),
# a real-size run with the data loader in the loop and the GPU's utilisation, the
# out-of-memory path forced, --check's estimate on the GPU, and the demo trained on CUDA.
#
#     bash bench/gpu_check.sh [--out DIR]
#
# Without a GPU it says so and exits 0.
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(test -x .venv/bin/python && echo .venv/bin/python || echo python3)}
if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null
then
    echo "gpu_check: no GPU here (torch sees none): nothing to measure"
    exit 0
fi
"$PYTHON" -c 'import torch; p = torch.cuda.get_device_properties(0); print(f"gpu_check on {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}")'
exec "$PYTHON" bench/gpu_check.py "$@"
