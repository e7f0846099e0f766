"""8B-class GPU benchmark: the default analysis on Llama-3-8B, Mistral-7B and Gemma-2-9B with random bfloat16 weights.

The models are their real configurations, written below (a lent GPU machine has no network):
Llama-3-8B (grouped-query attention, 8 K/V heads for 32 query heads), Mistral-7B-v0.1 (GQA and a
4096-token sliding window) and Gemma-2-9B (attention and final-logit soft-capping, sliding and
global layers alternating). Weights are initialised randomly (``torch.manual_seed(--seed)``, the
model's own initialisation) directly on the device in bfloat16: no 16 GB copy ever exists on
the CPU, and nothing is downloaded. The tokenizer is one that travels: the offline SmolLM2
tokenizer (49152 ids; Llama-3 has 128256 embeddings and Gemma-2 256000, so its ids fit;
Mistral's 32000 do not hold them, so Mistral's ``vocab_size`` is raised to the tokenizer's,
0.1B more embedding parameters, said in the JSON). The task's splits come from ``--data``, a
folder :func:`prepare` writes beforehand from the offline data (``--prepare DIR``, with the
tokenizer and the GPU check's model files), since the offline packages do not travel;
``benchmarks/gpu_8b.sh`` makes that folder with the wheels the lent machine lacks, and runs both
benchmarks there.

Per model, the default protocol (``AnalysisOptions``' defaults: 32 demonstrations, 200 queries,
K/V finetuning, no untrained control) runs twice: the fast route (prefix cache reused), timed,
and the per-query reference route; the float64 rerun of the finetuning is off (``--stability_check``
adds it: it holds a float64 copy, 4x the bfloat16 weights). It records the wall time of the whole
analysis and per query, the peak CUDA memory over the weight bytes (the whole peak, and the
part above the loaded model), the batch size, and the two routes' agreement on predictions and
per-layer metrics. Targets (issue 21): 200 queries in under 3 minutes on one H100-class GPU, peak
memory under 1.3x the weights. The JSON goes to ``--output_dir`` as ``gpu_8b_<card>.json``.

``--tiny`` shrinks each configuration (2 layers, width 64, a 16-token window) and keeps its
attention features: the same code path on the CPU, for the test::

    python benchmarks/gpu_8b.py --tiny --device cpu --n_demonstrations 4 --n_queries 4
"""

from __future__ import annotations

import copy
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # gpu_check beside this file, also when loaded by path

from gpu_check import compare, finetuning_facts, load_splits, weights_bytes  # noqa: E402

from hf_metaopt import offline, tasks  # noqa: E402
from hf_metaopt.analysis import AnalysisOptions, analyze_task  # noqa: E402
from hf_metaopt.arguments import MetaoptParser  # noqa: E402

# The configurations as published with the weights (config.json of meta-llama/Meta-Llama-3-8B,
# mistralai/Mistral-7B-v0.1, google/gemma-2-9b), less the fields transformers fills in itself.
CONFIGS: dict[str, dict[str, Any]] = {
    "llama-3-8b": {
        "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "hidden_act": "silu", "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "vocab_size": 128256, "tie_word_embeddings": False,
        "attention_bias": False, "bos_token_id": 128000, "eos_token_id": 128001,
    },
    "mistral-7b": {
        "model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "hidden_act": "silu", "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "sliding_window": 4096, "vocab_size": 32000,
        "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
    },
    "gemma-2-9b": {
        "model_type": "gemma2", "hidden_size": 3584, "intermediate_size": 14336, "num_hidden_layers": 42,
        "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh",
        "max_position_embeddings": 8192, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "sliding_window": 4096,
        "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0, "query_pre_attn_scalar": 256,
        "vocab_size": 256000, "attention_bias": False, "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0,
    },
}
# --tiny: the same architectures, small enough for a CPU test.
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}
TINY_WINDOW, TINY_HEAD = 16, 16
TARGETS = {"seconds": 180.0, "peak_memory_over_weights": 1.3}


@dataclass
class BenchArguments:
    models: list[str] = field(default_factory=lambda: list(CONFIGS), metadata={"help": f"models among {list(CONFIGS)}."})
    task: str = field(default="rt_sentiment", metadata={"help": "the task analysed."})
    data: str | None = field(default=None, metadata={"help": "folder with <task>/{train,dev,test}.jsonl (from --prepare); default: the offline task."})
    tokenizer: str | None = field(default=None, metadata={"help": "tokenizer folder (from --prepare); default: the offline SmolLM2 tokenizer."})
    n_demonstrations: int = field(default=AnalysisOptions.n_demonstrations, metadata={"help": "demonstrations."})
    n_queries: int = field(default=AnalysisOptions.n_queries, metadata={"help": "queries."})
    batch_size: int | None = field(default=None, metadata={"help": "queries per forward pass (default: the analysis's auto, fitted to the free GPU memory; the JSON records the one used)."})
    stability_check: bool = field(default=False, metadata={"help": "also the float64 rerun of the finetuning (a float64 copy: 4x the weights)."})
    per_query_route: bool = field(default=True, metadata={"help": "also run the per-query reference route and compare."})
    device: str = field(default="cuda", metadata={"help": "the accelerator (cpu with --tiny for a dry run)."})
    dtype: str = field(default="bfloat16", metadata={"help": "the weights' dtype."})
    tiny: bool = field(default=False, metadata={"help": "shrink each configuration (2 layers, width 64): the CPU test."})
    seed: int = field(default=0, metadata={"help": "torch.manual_seed of the random weights."})
    output_dir: str = field(default="benchmarks/results", metadata={"help": "where gpu_8b_<card>.json is written."})
    prepare: str | None = field(
        default=None, metadata={"help": "write the tokenizer, the task's splits and the GPU check's model files into this folder, and stop."}
    )


def _log(message: str) -> None:
    print(message, flush=True)


def prepare(folder: str | Path, task: str = "rt_sentiment", tokenizer: str | Path | None = None,
            check_models: tuple[str, ...] = ("smollm2",)) -> Path:
    """Write what the benchmarks need off this machine into ``folder``: ``tokenizer/`` (default: the offline SmolLM2
    tokenizer's files, no weights), ``<task>/{train,dev,test}.jsonl`` (the task's splits) and, for the GPU check's
    ``--random_init --model_files``, ``models/<name>/`` (an offline model's config and tokenizer) per ``check_models``."""
    from transformers import AutoConfig, AutoTokenizer

    folder = Path(folder)
    AutoTokenizer.from_pretrained(tokenizer or offline.smollm2_dir()).save_pretrained(folder / "tokenizer")
    (folder / task).mkdir(parents=True, exist_ok=True)
    for split, rows in tasks.get_task(task).load().items():
        rows.to_json(folder / task / f"{split}.jsonl", lines=True)
    for name in check_models:
        source = offline.offline_model(name).path()
        AutoConfig.from_pretrained(source).save_pretrained(folder / "models" / name)
        AutoTokenizer.from_pretrained(source).save_pretrained(folder / "models" / name)
    return folder


def model_config(name: str, tokenizer, tiny: bool) -> tuple[Any, list[str]]:
    """``name``'s configuration for ``tokenizer`` (``--tiny``: shrunk) and notes on what differs from the published one:
    the vocabulary grown to the tokenizer's where it has fewer ids, and the tokenizer's special-token ids."""
    from transformers import AutoConfig

    values, notes, vocab = copy.deepcopy(CONFIGS[name]), ["bos/eos/pad token ids: the tokenizer's"], len(tokenizer)
    values.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    if values["vocab_size"] < vocab:
        notes.append(f"vocab_size {values['vocab_size']} raised to the tokenizer's {vocab}")
        values["vocab_size"] = vocab
    if tiny:
        values.update(TINY, vocab_size=vocab)
        if "sliding_window" in values:
            values["sliding_window"] = TINY_WINDOW
        if "head_dim" in values:  # Gemma-2 scales its queries by its head size
            values.update(head_dim=TINY_HEAD, query_pre_attn_scalar=TINY_HEAD)
    return AutoConfig.for_model(values.pop("model_type"), **values), notes


def random_model(config, device: str, dtype: torch.dtype, seed: int):
    """The architecture with random weights made on ``device`` in ``dtype`` (no CPU copy first)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    elsewhere = {str(p.device) for p in model.parameters() if p.device.type != torch.device(device).type}
    if elsewhere:
        raise RuntimeError(f"the random weights were made on {sorted(elsewhere)}, not on {device}.")
    return model.eval()


def _analysis(model, tokenizer, args: BenchArguments, data, fast: bool) -> tuple[dict, float]:
    options = AnalysisOptions.from_kwargs(
        n_demonstrations=args.n_demonstrations, n_queries=args.n_queries, fast=fast, stability_check=args.stability_check,
        **({"batch_size": args.batch_size} if args.batch_size else {}),
    )
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    report = analyze_task(model, tokenizer, args.task, options, data=data).report.to_dict()
    if cuda:
        torch.cuda.synchronize()
    return report, time.perf_counter() - start


def run_model(name: str, tokenizer, args: BenchArguments, data) -> dict:
    """One model: random weights on the device, the fast analysis timed, the per-query route compared."""
    cuda = args.device.startswith("cuda")
    config, notes = model_config(name, tokenizer, args.tiny)
    begin = time.perf_counter()
    model = random_model(config, args.device, getattr(torch, args.dtype), args.seed)
    init_seconds = time.perf_counter() - begin
    weights = weights_bytes(model)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    resident = torch.cuda.memory_allocated() if cuda else 0
    report, seconds = _analysis(model, tokenizer, args, data, fast=True)
    peak = torch.cuda.max_memory_allocated() if cuda else None
    row = {
        "model": name, "parameters": sum(p.numel() for p in model.parameters()), "weight_bytes": weights,
        "notes": notes,
        "init_seconds": init_seconds, "seconds": seconds, "seconds_per_query": seconds / len(report["labels"]),
        "n_queries": len(report["labels"]), "n_demonstrations": report["config"]["n_demonstrations"],
        "batch_size": report["config"].get("batch_size_used", report["config"]["batch_size"]),
        "peak_memory_over_weights": None if peak is None else peak / weights,
        "peak_above_model_over_weights": None if peak is None else (peak - resident) / weights,
        "accuracy": report["accuracy"], **finetuning_facts(report),
    }
    if args.per_query_route:
        reference, reference_seconds = _analysis(model, tokenizer, args, data, fast=False)
        row.update({"per_query_seconds": reference_seconds, "routes": compare(report, reference)})
    del model
    if cuda:
        torch.cuda.empty_cache()
    return row


def _card(device: str) -> str:
    return torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    lines = ["| model | parameters | s (200 queries: target < 180) | s / query | peak memory / weights (target < 1.3) | above the model "
             "| batch | routes agree (ZSL/ICL/FT) | max metric diff | per-query route s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        peak = "-" if r["peak_memory_over_weights"] is None else f"{r['peak_memory_over_weights']:.2f}"
        above = "-" if r["peak_above_model_over_weights"] is None else f"{r['peak_above_model_over_weights']:.2f}"
        routes = r.get("routes")
        agree = "/".join(f"{routes['prediction_agreement'][s]:.3f}" for s in ("zsl", "icl", "ft")) if routes else "-"
        diff = f"{routes['max_metric_difference']:.1e}" if routes else "-"
        slow = f"{r['per_query_seconds']:.1f}" if "per_query_seconds" in r else "-"
        lines.append(f"| {r['model']} | {r['parameters'] / 1e9:.2f}B | {r['seconds']:.1f} | {r['seconds_per_query']:.3f} | {peak} | {above} "
                     f"| {r['batch_size']} | {agree} | {diff} | {slow} |")
    return "\n".join(lines)


def _write(path: Path, card: str, args: BenchArguments, rows: list[dict], errors: list[str]) -> None:
    payload = {"device": card, "weights": "random (real configurations), bfloat16 unless --dtype", "targets": TARGETS,
               "settings": asdict(args), "rows": rows, "errors": errors}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def main(argv: list[str] | None = None) -> list[dict]:
    (args,) = MetaoptParser(BenchArguments).parse_args_and_config(argv)
    if args.prepare:
        _log(f"wrote {prepare(args.prepare, args.task, args.tokenizer)} (tokenizer/, {args.task}/*.jsonl, models/)")
        return []
    unknown = [m for m in args.models if m not in CONFIGS]
    if unknown:
        raise SystemExit(f"--models {unknown}: not among {list(CONFIGS)}.")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here; run on a GPU machine, or pass --tiny --device cpu for a dry run.")
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or offline.smollm2_dir())
    data = load_splits(args.data, args.task) if args.data else None
    card = _card(args.device)
    path = Path(args.output_dir) / f"gpu_8b_{re.sub(r'[^a-z0-9]+', '_', card.lower()).strip('_')}{'_tiny' if args.tiny else ''}.json"
    _log(f"gpu 8b: {card}; {args.task}, {args.n_demonstrations} demonstrations, {args.n_queries} queries, {args.dtype}, "
         f"random weights{' (tiny)' if args.tiny else ''}")
    rows, errors, begin = [], [], time.perf_counter()
    for name in args.models:
        _log(f"[{time.perf_counter() - begin:6.1f} s] {name}")
        try:
            rows.append(run_model(name, tokenizer, args, data))
        except Exception as err:  # record it and go on: one model's failure must not cost the others
            errors.append(f"{name}: {type(err).__name__}: {err}")
            _log(f"error: {errors[-1]}")
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
            continue
        _log(table(rows[-1:]).splitlines()[-1])
        _write(path, card, args, rows, errors)
    _write(path, card, args, rows, errors)
    _log(f"\n{card}\n{table(rows)}\nwrote {path} ({time.perf_counter() - begin:.0f} s)" + "".join(f"\nerror: {e}" for e in errors))
    return rows


if __name__ == "__main__":
    main()
