#!/usr/bin/env bash
# The GPU check in one command (on one H200: 87 s): the offline models on CUDA in float32 and
# bfloat16, fast vs per-query route, against a CPU float32 run. Prints the table and writes
# gpu_check.json (pass --output to change it). See benchmarks/gpu_check.py; on a machine without
# the offline models add --random_init (with --model_files DIR for their configs and tokenizers).
# $PYTHON picks the interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" benchmarks/gpu_check.py "$@"
