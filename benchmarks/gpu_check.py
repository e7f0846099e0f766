"""GPU check: the analysis of the offline models on CUDA, in float32 and bfloat16, against a CPU run.

For each offline model (Gemma-3-270M and SmolLM2-135M-Instruct by default) it runs the same
analysis (``rt_sentiment``, K/V finetuning, the default options unless given) five times:
a CPU float32 run (the reference), then CUDA float32 and bfloat16, each with the fast route
(prefix cache reused) and the per-query reference route. Per run it measures wall time per
query, the peak CUDA memory above the loaded model divided by the weight bytes, and the
agreement of the predictions (ZSL / ICL / FT) and the largest per-layer metric difference
with the CPU run. It prints the table and writes it as JSON.

The FT side's CPU/CUDA differences are read against the finetuning's own stability: every
row keeps its training loss per SGD step (``report["finetuning"]["loss_per_step"]``), the
largest difference of that curve from the CPU run's and the first step where they part
(relative difference above 1e-3), and the share of FT predictions its float64 rerun agrees
with on the same device (``report["finetuning"]["stability"]``, ``docs/analysis.md``). FT
predictions that a float64 rerun on one device already changes sit near their decision
boundary, and any device's rounding moves them too.

``--random_init``: each model is built from its real config and tokenizer with random
weights (``torch.manual_seed(--seed)``, the model's own initialisation), saved once and
loaded by every run, so the CPU reference and the CUDA runs share the same weights: for a
GPU machine that cannot receive the trained weights (about 1.6 GB for the two models). It
checks the same architectures, shapes, dtypes, routes, speed and memory, but accuracies mean
nothing, and with near-uniform random logits a bfloat16 run may flip near-tied predictions
that trained weights would not. ``--model_files DIR`` reads each model's config and tokenizer
from ``DIR/<name>/`` (no weights needed) instead of the converted offline caches.

    python benchmarks/gpu_check.py --device cpu --random_init --model_files <dir> --n_queries 4 --n_demonstrations 4
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers.utils import logging as hf_logging

from hf_metaopt import offline
from hf_metaopt.arguments import MetaoptParser
from hf_metaopt.analysis import AnalysisOptions, analyze_task
from hf_metaopt.loading import ModelArguments, load_model

SETTINGS = ("zsl", "icl", "ft")
METRICS = (("simaou", "per_layer"), ("simam", "per_layer_delta"), ("kendall", "per_layer"))
RANDOM_NOTE = (
    "RANDOM weights (--random_init): real architectures and shapes, meaningless predictions"
)


@dataclass
class CheckArguments:
    models: list[str] = field(default_factory=lambda: ["gemma3", "smollm2"], metadata={"help": "offline models (or Hub ids / folders)."})
    task: str = field(default="rt_sentiment", metadata={"help": "the task analysed."})
    n_demonstrations: int = field(default=16, metadata={"help": "demonstrations."})
    n_queries: int = field(default=32, metadata={"help": "queries per run (the same in every run, CPU reference included)."})
    device: str = field(default="cuda", metadata={"help": "the accelerator (cpu for a dry run)."})
    output: str = field(default="gpu_check.json", metadata={"help": "the JSON written."})
    random_init: bool = field(
        default=False,
        metadata={"help": "build each model from its real config and tokenizer with random weights (seed --seed), "
                  "for a machine the trained weights cannot be sent to."},
    )
    model_files: str | None = field(
        default=None,
        metadata={"help": "with --random_init: a folder holding <model>/config.json and the tokenizer files "
                  "(default: the offline model's converted folder)."},
    )
    seed: int = field(default=0, metadata={"help": "torch.manual_seed of the --random_init weights."})
    data: str | None = field(
        default=None, metadata={"help": "folder with <task>/{train,dev,test}.jsonl (benchmarks/gpu_8b.py --prepare); default: the registered task."}
    )


def weights_bytes(model) -> int:
    """The bytes of the model's parameters."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _log(message: str) -> None:
    print(message, flush=True)


def _config_source(name: str, args: CheckArguments) -> tuple[str, str]:
    """``(the folder or Hub id holding the config and tokenizer of name, the model as reports name it)``."""
    if args.model_files:
        folder = Path(args.model_files) / name
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"--model_files {args.model_files}: no {name}/config.json there.")
        label = offline.OFFLINE_MODELS[name].hub_id if name in offline.OFFLINE_MODELS else name
        return str(folder), label
    if name in offline.OFFLINE_MODELS:
        copy = offline.offline_model(name)
        return str(copy.path()), copy.hub_id
    return name, name


def _random_model(name: str, args: CheckArguments, workdir: Path) -> tuple[str, dict[str, Any]]:
    """Save ``name``'s architecture with random float32 weights (and its tokenizer) under ``workdir``.

    Returns the folder, which :func:`load_model` then loads like any model folder, and the
    provenance the reports record.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source, label = _config_source(name, args)
    config = AutoConfig.from_pretrained(source)
    tokenizer = AutoTokenizer.from_pretrained(source)
    torch.manual_seed(args.seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    folder = workdir / re.sub(r"[^A-Za-z0-9._-]+", "_", name)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    provenance = {
        "model": label,
        "model_source": f"random weights (torch.manual_seed({args.seed}), the model's own initialisation) "
        f"on the config and tokenizer of {source}",
    }
    return str(folder), provenance


def load_splits(folder: str | Path, task: str) -> dict:
    """The task's splits from ``folder/<task>/{train,dev,test}.jsonl``, as ``analyze_task(data=...)`` takes them."""
    import datasets

    return {split: datasets.Dataset.from_json(str(Path(folder) / task / f"{split}.jsonl")) for split in ("train", "dev", "test")}


def _run(name: str, device: str, dtype: str, fast: bool, args: CheckArguments, provenance: dict | None = None) -> dict:
    loaded = load_model(ModelArguments(model=name, device=device, dtype=dtype))
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    resident = torch.cuda.memory_allocated() if cuda else 0
    options = AnalysisOptions(n_demonstrations=args.n_demonstrations, n_queries=args.n_queries, fast=fast)
    start = time.perf_counter()
    report = analyze_task(
        loaded.model, loaded.tokenizer, args.task, options, provenance={**loaded.provenance, **(provenance or {})},
        data=load_splits(args.data, args.task) if args.data else None,
    ).report.to_dict()
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    weights = weights_bytes(loaded.model)
    peak = (torch.cuda.max_memory_allocated() - resident) / weights if cuda else None
    del loaded
    if cuda:
        torch.cuda.empty_cache()
    return {"model": report["config"]["model"], "device": device, "dtype": dtype, "route": "fast" if fast else "per-query",
            "seconds_per_query": wall / len(report["labels"]), "peak_memory_over_weights": peak, **finetuning_facts(report),
            "report": report}


def compare(got: dict, ref: dict) -> dict:
    """Two reports of the same analysis: the share of equal predictions per setting and the largest per-layer metric difference."""
    agree = {s: float(np.mean(np.equal(got["predictions"][s], ref["predictions"][s]))) for s in SETTINGS}
    diff = max(float(np.max(np.abs(np.subtract(got[m][k], ref[m][k])))) for m, k in METRICS)
    return {"prediction_agreement": agree, "max_metric_difference": diff}


def finetuning_facts(report: dict) -> dict:
    """The training loss per SGD step and the float64 rerun's FT agreement (``None`` where it did not run)."""
    stability = report["finetuning"].get("stability") or {}
    return {"loss_per_step": report["finetuning"]["loss_per_step"], "float64_ft_agreement": stability.get("agreement")}


def loss_curve_difference(run: list, reference: list, tolerance: float = 1e-3) -> dict:
    """How far a loss curve is from the reference's: the largest absolute difference over the steps, and the first step
    (0-based) whose relative difference exceeds ``tolerance`` (``None``: none does). A step whose loss is missing
    (inf/NaN) on one side counts as apart."""
    apart, largest = None, 0.0
    for step, (a, b) in enumerate(zip(run, reference)):
        gap = float("inf") if a is None or b is None else abs(a - b)
        largest = max(largest, gap)
        if apart is None and gap > tolerance * max(abs(b or 0.0), 1e-12):
            apart = step
    return {"loss_curve_max_difference": largest, "loss_curve_first_step_apart": apart}


def _compare(run: dict, reference: dict) -> dict:
    return {**compare(run["report"], reference["report"]),
            **loss_curve_difference(run["loss_per_step"], reference["loss_per_step"])}


def _table(rows: list[dict]) -> str:
    lines = ["| model | device | dtype | route | s / query | peak memory / weights | agreement with CPU (ZSL/ICL/FT) | max metric diff "
             "| FT float64 agreement | loss curve vs CPU: max diff (first step apart) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        agree = r.get("prediction_agreement")
        agree = "/".join(f"{agree[s]:.3f}" for s in SETTINGS) if agree else "reference"
        peak = "-" if r["peak_memory_over_weights"] is None else f"{r['peak_memory_over_weights']:.2f}"
        diff = "-" if "max_metric_difference" not in r else f"{r['max_metric_difference']:.1e}"
        stable = "-" if r.get("float64_ft_agreement") is None else f"{r['float64_ft_agreement']:.3f}"
        curve = "-" if "loss_curve_max_difference" not in r else f"{r['loss_curve_max_difference']:.1e} ({r['loss_curve_first_step_apart']})"
        lines.append(f"| {r['model']} | {r['device']} | {r['dtype']} | {r['route']} | {r['seconds_per_query']:.3f} | {peak} | {agree} | {diff} "
                     f"| {stable} | {curve} |")
    return "\n".join(lines)


def _header(args: CheckArguments, device_name: str) -> str:
    weights = RANDOM_NOTE if args.random_init else "trained weights"
    return f"{device_name}; {args.task}, {args.n_demonstrations} demonstrations, {args.n_queries} queries; {weights}"


def _write(args: CheckArguments, device_name: str, rows: list[dict], errors: list[str]) -> list[dict]:
    """The JSON so far (written after every run, so an interrupted check keeps what it measured)."""
    summary = [{k: v for k, v in r.items() if k != "report"} for r in rows]
    payload = {"device": device_name, "weights": RANDOM_NOTE if args.random_init else "trained", "settings": args.__dict__,
               "rows": summary, "errors": errors}
    Path(args.output).write_text(json.dumps(payload, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> list[dict]:
    (args,) = MetaoptParser(CheckArguments).parse_args_and_config(argv)
    hf_logging.disable_progress_bar()  # the progress lines below say what runs; keep the output short
    if args.model_files and not args.random_init:
        raise SystemExit("--model_files holds configs and tokenizers without weights: pass --random_init with it.")
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    _log(f"gpu check: {_header(args, device_name)}")
    rows, errors = [], []
    begin = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as workdir:
        for name in args.models:
            provenance = None
            try:
                source = name
                if args.random_init:
                    _log(f"[{time.perf_counter() - begin:6.1f} s] {name}: random weights (seed {args.seed})")
                    source, provenance = _random_model(name, args, Path(workdir))
                _log(f"[{time.perf_counter() - begin:6.1f} s] {name}: cpu float32 fast (the reference)")
                reference = _run(source, "cpu", "float32", True, args, provenance)
            except Exception as err:  # record it and go on: one model's failure must not cost the others
                errors.append(f"{name} cpu float32: {type(err).__name__}: {err}")
                _log(f"error: {errors[-1]}")
                continue
            rows.append(reference)
            print(_table(rows[-1:]).splitlines()[-1], flush=True)
            _write(args, device_name, rows, errors)
            for dtype in ("float32", "bfloat16"):
                for fast in (True, False):
                    _log(f"[{time.perf_counter() - begin:6.1f} s] {name}: {args.device} {dtype} {'fast' if fast else 'per-query'}")
                    try:
                        run = _run(source, args.device, dtype, fast, args, provenance)
                    except Exception as err:
                        errors.append(f"{name} {args.device} {dtype} fast={fast}: {type(err).__name__}: {err}")
                        _log(f"error: {errors[-1]}")
                        continue
                    rows.append({**run, **_compare(run, reference)})
                    print(_table(rows[-1:]).splitlines()[-1], flush=True)
                    _write(args, device_name, rows, errors)
            if args.random_init:  # the saved random weights (1 GB for Gemma): free the disk before the next model
                shutil.rmtree(source, ignore_errors=True)
    summary = _write(args, device_name, rows, errors)
    print(f"\n{_header(args, device_name)}\n{_table(rows)}\nwrote {args.output} ({time.perf_counter() - begin:.0f} s)"
          + "".join(f"\nerror: {e}" for e in errors), flush=True)
    return summary


if __name__ == "__main__":
    main()
