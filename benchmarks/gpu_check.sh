#!/usr/bin/env bash
# The GPU check in one command (on one H100: a few minutes): the offline models on CUDA in
# float32 and bfloat16, fast vs per-query route, against a CPU float32 run. Prints the table and
# writes gpu_check.json (pass --output to change it). See benchmarks/gpu_check.py.
# On a lent GPU machine that cannot receive the trained weights: benchmarks/GPU_RUN.txt
# (--random_init --model_files .gpu/models, with the bundle in .gpu/). $PYTHON picks the
# interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" benchmarks/gpu_check.py "$@"
