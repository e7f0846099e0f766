#!/usr/bin/env bash
# The 8B-class GPU benchmark (benchmarks/gpu_8b.py: Llama-3-8B, Mistral-7B, Gemma-2-9B with random
# bfloat16 weights) and the GPU check's FT comparison with the CPU (benchmarks/gpu_check.py,
# SmolLM2-135M's architecture with random weights), for a lent GPU machine without network.
#
#   here (with network and the offline assets):   bash benchmarks/gpu_8b.sh bundle .gpu
#       writes .gpu/: the tokenizer, the task's splits as JSONL, the GPU check's model files (config and
#       tokenizer, no weights) and .gpu/whl/, the wheels of the packages hf-metaopt needs that the lent
#       machine's image lacks or holds too old (their versions are this environment's); about 26 MB.
#   on the GPU machine, from the repository root:   bash benchmarks/gpu_8b.sh run .gpu OUT_DIR [gpu_8b.py flags]
#       installs .gpu/whl into /tmp/site (no network, no dependencies resolved), then runs gpu_8b.py (its JSON
#       gpu_8b_<card>.json after every model) and gpu_check.py (gpu_check.json) into OUT_DIR.
#
# $PYTHON picks the interpreter (default python3); GPU_8B_SECONDS bounds gpu_8b.py (default 420 s),
# so that the GPU check still runs inside one 10-minute call.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
# What the lent machine's image lacks (datasets and its dill, multiprocess) or holds older than hf-metaopt needs
# (transformers >= 5.24 and its huggingface_hub 2 with httpx2), plus the PEFT and accelerate these were tested with.
WHEELS=(transformers huggingface_hub tokenizers datasets dill multiprocess peft accelerate httpx2 httpcore2 truststore)

case "${1:-}" in
  bundle)
    dir="${2:?usage: gpu_8b.sh bundle DIR}"
    "$PY" benchmarks/gpu_8b.py --prepare "$dir"
    pins=$("$PY" -c 'import sys, importlib.metadata as m; print(" ".join(f"{n}=={m.version(n)}" for n in sys.argv[1:]))' "${WHEELS[@]}")
    # shellcheck disable=SC2086
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d "$dir/whl" $pins
    du -sh "$dir"
    ;;
  run)
    dir="${2:?usage: gpu_8b.sh run DIR OUT_DIR [flags]}"
    out="${3:?usage: gpu_8b.sh run DIR OUT_DIR [flags]}"
    shift 3
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$dir"/whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
    mkdir -p "$out"
    # What runs, first: a missing or mismatched package fails here, in seconds.
    "$PY" -c 'import importlib.metadata as m, torch, hf_metaopt.analysis
print("torch", torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA",
      *(f"{n} {m.version(n)}" for n in ("transformers", "huggingface_hub", "datasets", "pyarrow", "peft", "accelerate")))'
    timeout "${GPU_8B_SECONDS:-420}" "$PY" benchmarks/gpu_8b.py --data "$dir" --tokenizer "$dir/tokenizer" --output_dir "$out" "$@" \
      || echo "gpu_8b.py stopped (exit $?); the JSON holds the models it finished"
    "$PY" benchmarks/gpu_check.py --random_init --model_files "$dir/models" --models smollm2 --data "$dir" --output "$out/gpu_check.json"
    ;;
  *)
    echo "usage: bash benchmarks/gpu_8b.sh bundle DIR | run DIR OUT_DIR [gpu_8b.py flags]" >&2
    exit 2
    ;;
esac
