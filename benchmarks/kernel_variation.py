"""How much a report varies with the CPU kernels and thread count torch uses.

    python benchmarks/kernel_variation.py                               # smollm2, rt_sentiment, k=16, 48 queries
    python benchmarks/kernel_variation.py --model gemma3 --task bbc_news --n-queries 100 --out runs/kv.json

torch chooses vectorised kernels by the CPU's capability (``DEFAULT``, ``AVX2``, ``AVX512`` on
x86-64) and splits reductions by thread count, so float32 results differ in their last bits
between machines. This runs the same ``hf-metaopt analyze`` (the real command line) in one
subprocess per setting this CPU can run (``ATEN_CPU_CAPABILITY`` and ``OMP_NUM_THREADS`` set
before torch starts), then prints, against the first setting, the share of identical
predictions per route and the largest difference of every headline figure. README's
"Reproducibility" paragraph quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FIGURES = {
    "accuracy ZSL": ("accuracy", "zsl"), "accuracy ICL": ("accuracy", "icl"), "accuracy FT": ("accuracy", "ft"),
    "Rec2FTP": ("rec2ftp",), "SimAOU": ("simaou", "mean"), "SimAM before": ("simam", "before"),
    "SimAM after": ("simam", "after"), "SimAM delta": ("simam", "delta"), "Kendall": ("kendall", "mean"),
    "Kendall (example)": ("kendall", "example_level", "mean"),
    "top-k recall": ("topk_recall", "token_level", "mean"),
    "top-k recall (example)": ("topk_recall", "example_level", "mean"),
    "FT float64 agreement": ("finetuning", "stability", "agreement"),
}


def settings() -> list[tuple[str, int]]:
    """(capability, threads) this CPU can run: every capability with 2 threads, the best with 1 too."""
    from hf_metaopt.analysis.environment import cpu_capabilities

    caps = cpu_capabilities()
    return [(cap, 2) for cap in caps] + [(caps[-1], 1)]


def run(capability: str, threads: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "hf_metaopt.cli", "analyze", "--model", args.model, "--task", args.task,
               "--n-demonstrations", str(args.k), "--n-queries", str(args.n_queries), "--learning-rate", str(args.learning_rate),
               "--output-dir", str(out), "--no-progress"]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{capability}/{threads}: hf-metaopt analyze failed:\n{done.stderr[-3000:]}")
    return json.loads((out / "report.json").read_text())


def dig(report: dict, path: tuple) -> float | None:
    for key in path:
        report = (report or {}).get(key) if isinstance(report, dict) else None
    return None if report is None else float(report)


def compare(base: dict, other: dict) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for route in ("zsl", "icl", "ft"):
        a, b = base["predictions"][route], other["predictions"][route]
        row[f"same {route.upper()} predictions"] = sum(x == y for x, y in zip(a, b)) / len(a)
    for name, path in FIGURES.items():
        a, b = dig(base, path), dig(other, path)
        row[name] = None if a is None or b is None else abs(a - b)
    return row


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--task", default="rt_sentiment")
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--n-queries", type=int, default=48)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    runs = settings()
    with tempfile.TemporaryDirectory(prefix="hf-metaopt-kernels-") as tmp:
        reports = [run(cap, threads, args, Path(tmp) / f"{cap}-{threads}") for cap, threads in runs]
    capabilities = [r["config"].get("environment", {}).get("cpu_capability") for r in reports]
    rows = [{"setting": f"{cap} x {threads} threads (torch: {used})", **compare(reports[0], rep)}
            for (cap, threads), used, rep in zip(runs, capabilities, reports)]
    print(f"{args.model} on {args.task}, k={args.k}, {args.n_queries} queries; differences against {rows[0]['setting']}")
    for row in rows[1:]:
        print(f"\n{row['setting']}")
        for key, value in row.items():
            if key != "setting":
                print(f"  {key:28s} {'n/a' if value is None else f'{value:.6g}'}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"model": args.model, "task": args.task, "rows": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()
