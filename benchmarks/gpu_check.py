"""GPU check: the analysis of the offline models on CUDA, in float32 and bfloat16, against a CPU run.

For each offline model (Gemma-3-270M and SmolLM2-135M-Instruct by default) it runs the same
analysis (``rt_sentiment``, K/V finetuning, the default options unless given) five times:
a CPU float32 run (the reference), then CUDA float32 and bfloat16, each with the fast route
(prefix cache reused) and the per-query reference route. Per run it measures wall time per
query, the peak CUDA memory above the loaded model divided by the weight bytes, and the
agreement of the predictions (ZSL / ICL / FT) and the largest per-layer metric difference
with the CPU run. It prints the table and writes it as JSON.

    bash benchmarks/gpu_check.sh --output gpu_check.json          # one H100: a few minutes
    python benchmarks/gpu_check.py --device cpu --models smollm2 --n_queries 8   # a dry run without a GPU
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from transformers import HfArgumentParser

from hf_metaopt.analysis import AnalysisOptions, analyze_task
from hf_metaopt.loading import ModelArguments, load_model

SETTINGS = ("zsl", "icl", "ft")
METRICS = (("simaou", "per_layer"), ("simam", "per_layer_delta"), ("kendall", "per_layer"))


@dataclass
class CheckArguments:
    models: list[str] = field(default_factory=lambda: ["gemma3", "smollm2"], metadata={"help": "offline models (or Hub ids / folders)."})
    task: str = field(default="rt_sentiment", metadata={"help": "the task analysed."})
    n_demonstrations: int = field(default=16, metadata={"help": "demonstrations."})
    n_queries: int = field(default=64, metadata={"help": "queries per run."})
    device: str = field(default="cuda", metadata={"help": "the accelerator (cpu for a dry run)."})
    output: str = field(default="gpu_check.json", metadata={"help": "the JSON written."})


def _weights_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _run(name: str, device: str, dtype: str, fast: bool, args: CheckArguments) -> dict:
    loaded = load_model(ModelArguments(model=name, device=device, dtype=dtype))
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    resident = torch.cuda.memory_allocated() if cuda else 0
    options = AnalysisOptions(n_demonstrations=args.n_demonstrations, n_queries=args.n_queries, fast=fast)
    start = time.perf_counter()
    report = analyze_task(loaded.model, loaded.tokenizer, args.task, options, provenance=loaded.provenance).report.to_dict()
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    weights = _weights_bytes(loaded.model)
    peak = (torch.cuda.max_memory_allocated() - resident) / weights if cuda else None
    del loaded
    if cuda:
        torch.cuda.empty_cache()
    return {"model": report["config"]["model"], "device": device, "dtype": dtype, "route": "fast" if fast else "per-query",
            "seconds_per_query": wall / len(report["labels"]), "peak_memory_over_weights": peak, "report": report}


def _compare(run: dict, reference: dict) -> dict:
    got, ref = run["report"], reference["report"]
    agree = {s: float(np.mean(np.equal(got["predictions"][s], ref["predictions"][s]))) for s in SETTINGS}
    diff = max(float(np.max(np.abs(np.subtract(got[m][k], ref[m][k])))) for m, k in METRICS)
    return {"prediction_agreement": agree, "max_metric_difference": diff}


def _table(rows: list[dict]) -> str:
    lines = ["| model | device | dtype | route | s / query | peak memory / weights | agreement with CPU (ZSL/ICL/FT) | max metric diff |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        agree = r.get("prediction_agreement")
        agree = "/".join(f"{agree[s]:.3f}" for s in SETTINGS) if agree else "reference"
        peak = "-" if r["peak_memory_over_weights"] is None else f"{r['peak_memory_over_weights']:.2f}"
        diff = "-" if "max_metric_difference" not in r else f"{r['max_metric_difference']:.1e}"
        lines.append(f"| {r['model']} | {r['device']} | {r['dtype']} | {r['route']} | {r['seconds_per_query']:.3f} | {peak} | {agree} | {diff} |")
    return "\n".join(lines)


def _write(args: CheckArguments, device_name: str, rows: list[dict], errors: list[str]) -> list[dict]:
    """The JSON so far (written after every run, so an interrupted check keeps what it measured)."""
    summary = [{k: v for k, v in r.items() if k != "report"} for r in rows]
    payload = {"device": device_name, "settings": args.__dict__, "rows": summary, "errors": errors}
    Path(args.output).write_text(json.dumps(payload, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> list[dict]:
    (args,) = HfArgumentParser(CheckArguments).parse_args_into_dataclasses(args=argv)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    rows, errors = [], []
    for name in args.models:
        try:
            reference = _run(name, "cpu", "float32", True, args)
        except Exception as err:  # record it and go on: one model's failure must not cost the others
            errors.append(f"{name} cpu float32: {type(err).__name__}: {err}")
            continue
        rows.append(reference)
        for dtype in ("float32", "bfloat16"):
            for fast in (True, False):
                try:
                    run = _run(name, args.device, dtype, fast, args)
                except Exception as err:
                    errors.append(f"{name} {args.device} {dtype} fast={fast}: {type(err).__name__}: {err}")
                    continue
                rows.append({**run, **_compare(run, reference)})
                print(_table(rows[-1:]).splitlines()[-1], flush=True)
                _write(args, device_name, rows, errors)
    summary = _write(args, device_name, rows, errors)
    print(f"\n{device_name}\n{_table(rows)}\nwrote {args.output}" + "".join(f"\nerror: {e}" for e in errors))
    return summary


if __name__ == "__main__":
    main()
