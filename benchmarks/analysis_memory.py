"""Peak memory of the ICL-vs-finetuning analysis above the loaded model, as a ratio of the weights.

    python benchmarks/analysis_memory.py                          # SmolLM2-135M and Gemma-3-270M, every method
    python benchmarks/analysis_memory.py --models smollm2 --queries 50 --methods kv --growth none   # quicker
    python benchmarks/analysis_memory.py --before none            # without the comparison run

For each model (float32, ``rt_sentiment``, 16 demonstrations, ``--queries`` test queries) and
each measured run, a fresh Python process loads the model, reads every weight once (so the
weights are resident), imports what the analysis imports and selects the examples; then it
hands the heap memory that loading freed back to the system (glibc's ``malloc_trim``: memory
freed but still resident would otherwise be reused by the analysis without showing, and hide
part of its peak), resets the peak resident set size (on Linux: writes ``5`` to
``/proc/self/clear_refs``, which resets ``VmHWM``; where that is refused, a thread samples
``VmRSS`` every millisecond), runs the whole analysis (``run_analysis``) and reads the peak. The
ratio printed is

    (peak resident memory during the analysis - resident memory before it) / weight bytes,

target <= 0.5 for ``method="kv"``. Each run's process first does what ``hf-metaopt analyze`` does
(``hf_metaopt.heap.return_large_blocks``: glibc hands large blocks back as soon as they are freed);
``kv, glibc heap`` is the K/V run in a process that does not (a Python user's, by default), and
``before`` runs that way too, as the code at that ref did. Every other method of ``AnalysisOptions`` (``lora``, ``full``: a
full copy, by design, and any added later) is printed too, and ``before``: the same measurement
of ``method="kv"`` with the package as it is at the git ref ``--before`` (default ``main``,
extracted with ``git archive`` into a temporary folder), with whether its report equals this
tree's (predictions and every metric, bit for bit).

``--growth N1 N2`` (default 100 500) also runs ``method="kv"`` with N1 and N2 queries and prints
the growth of the process's peak resident memory during the analysis (model included) from N1
to N2: target < 5%, since what the analysis keeps per query is a few kilobytes.

Each run is CPU-heavy (a few minutes per run on two cores); the numbers are memory, not time.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"smollm2": "SmolLM2-135M", "gemma3": "Gemma-3-270M"}
COMPARED = ("accuracy", "predictions", "labels", "rec2ftp", "simaou", "simam", "kendall")


def _methods() -> tuple[str, ...]:
    """The finetuning methods of this tree's ``AnalysisOptions`` (``kv`` first)."""
    sys.path.insert(0, str(ROOT))
    try:
        from hf_metaopt.analysis.options import METHODS
    finally:
        sys.path.remove(str(ROOT))
    return ("kv", *[m for m in METHODS if m != "kv"])


def _release_freed_heap() -> None:
    """Give the heap memory freed so far back to the system (glibc), so that the baseline is what is in use."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to release this way
        pass


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


class PeakMemory:
    """Peak resident memory (bytes) of this process above its resident memory at ``start()``."""

    def __init__(self):
        self.sampled = 0
        self._stop = threading.Event()
        self._thread = None

    def start(self) -> None:
        try:
            with open("/proc/self/clear_refs", "w") as clear:
                clear.write("5")  # resets VmHWM to the current VmRSS
        except OSError:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        self.base = _status_kib("VmRSS")

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.sampled = max(self.sampled, _status_kib("VmRSS"))
            time.sleep(0.001)

    def stop(self) -> int:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            peak = self.sampled
        else:
            peak = _status_kib("VmHWM")
        return (peak - self.base) * 1024


def _child(args) -> None:
    """One measured run, printed as a JSON line (this process imports the package under test)."""
    if args.heap == "cli":
        from hf_metaopt.heap import return_large_blocks

        return_large_blocks()  # as hf-metaopt analyze does, before anything is loaded
    import peft  # noqa: F401  (imported before the reset: code, not the analysis's data)
    import torch
    import transformers  # noqa: F401
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer  # noqa: F401

    from hf_metaopt import tasks
    from hf_metaopt.analysis import AnalysisOptions, run_analysis
    from hf_metaopt.analysis.run import prompt_format

    try:
        from hf_metaopt import offline  # registers the offline tasks too
    except ImportError:  # refs before 0.2 (--before) kept the offline assets in hf_metaopt.assets
        from hf_metaopt import assets as offline
    path = offline.model_path(args.child) if hasattr(offline, "model_path") else offline.offline_model(args.child).path()
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    weights = sum(t.numel() * t.element_size() for t in {id(p): p for p in model.parameters()}.values())
    for tensor in [*model.parameters(), *model.buffers()]:
        float(tensor.float().sum())  # every page of the weights is resident before the reset
    spec = tasks.get_task(args.task)
    chosen = tasks.select_examples(spec, 16, args.queries, args.seed, split="test")
    extra = {}
    if "stability_check" in {f.name for f in dataclasses.fields(AnalysisOptions)}:  # older refs (--before) lack it
        extra["stability_check"] = args.stability_check
    options = AnalysisOptions(method=args.method, n_queries=args.queries, seed=args.seed, **extra)
    peak = PeakMemory()
    _release_freed_heap()
    peak.start()
    result = run_analysis(model, tokenizer, chosen.demonstrations, chosen.queries, prompt_format(spec), options)
    above = peak.stop()
    report = result.report.to_dict()
    compared = {k: report[k] for k in COMPARED}
    print(json.dumps({"weights": weights, "above": above, "peak": peak.base * 1024 + above,
                      "batch_size": report["config"].get("batch_size_used", report["config"]["batch_size"]), "report": compared}))


def _measure(model: str, method: str, package_root: Path, args, queries: int | None = None, heap: str = "cli") -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", model, "--method", method, "--heap", heap,
               "--queries", str(queries or args.queries), "--task", args.task, "--seed", str(args.seed)]
    command += ["--stability-check"] if args.stability_check else []
    env = {**os.environ, "PYTHONPATH": str(package_root), "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True, cwd=package_root)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _extract(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "hf_metaopt"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _growth_sizes(values: list[str]) -> tuple[int, int] | None:
    if values == ["none"]:
        return None
    if len(values) != 2 or not all(v.isdigit() and int(v) > 0 for v in values):
        raise SystemExit(f"--growth takes two query counts (e.g. 100 500) or 'none'; got {' '.join(values)}")
    return int(values[0]), int(values[1])


def main(argv=None) -> None:
    methods = _methods()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--methods", nargs="+", default=list(methods), choices=list(methods))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--growth", nargs="+", default=["100", "500"], metavar="N",
                        help="two query counts for the growth of the peak with method kv, or 'none'")
    parser.add_argument("--task", default="rt_sentiment")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stability-check", action="store_true",
                        help="also run the float64 rerun of the finetuning (a float64 copy of the model: about 2x the weights)")
    parser.add_argument("--before", default="main", help="git ref measured for comparison ('none': skip)")
    parser.add_argument("--child", choices=list(MODELS), help=argparse.SUPPRESS)
    parser.add_argument("--method", default="kv", help=argparse.SUPPRESS)
    parser.add_argument("--heap", default="cli", choices=["cli", "default"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args)
        return
    growth = _growth_sizes(args.growth)
    with tempfile.TemporaryDirectory(prefix="hf-metaopt-before-") as tmp:
        before_root = _extract(args.before, Path(tmp)) if args.before != "none" else None
        print(f"{args.task}, 16 demonstrations, {args.queries} queries, float32; ratio = peak above the loaded model / weights",
              flush=True)
        for model in args.models:
            print(f"{MODELS[model]}:", flush=True)
            plan = [(method, method, ROOT, "cli") for method in args.methods]
            if "kv" in args.methods:
                plan.insert(1, ("kv, glibc heap", "kv", ROOT, "default"))
            if before_root is not None:
                plan.insert(1, ("before", "kv", before_root, "default"))
            runs = {}
            for name, method, root, heap in plan:
                runs[name] = run = _measure(model, method, root, args, heap=heap)
                label = f"kv at {args.before}" if name == "before" else name
                target = "  (target <= 0.5)" if name == "kv" else ""
                print(f"  {label:>16}: {run['above'] / 2**20:6.0f} MiB above the model's {run['weights'] / 2**20:.0f} MiB of weights, "
                      f"ratio {run['above'] / run['weights']:.2f}, batch size {run['batch_size']}{target}", flush=True)
            if "before" in runs and "kv" in runs:
                same = json.dumps(runs["before"]["report"]) == json.dumps(runs["kv"]["report"])
                print(f"  kv report identical to {args.before}'s (predictions, every metric): {same}", flush=True)
            if "kv, glibc heap" in runs:
                same = json.dumps(runs["kv, glibc heap"]["report"]) == json.dumps(runs["kv"]["report"])
                print(f"  kv report identical with either heap: {same}", flush=True)
            if growth is not None:
                small, large = (_measure(model, "kv", ROOT, args, queries=n) for n in growth)
                print(f"  kv peak resident memory (model included), {growth[0]} vs {growth[1]} queries: "
                      f"{small['peak'] / 2**20:.0f} vs {large['peak'] / 2**20:.0f} MiB, "
                      f"growth {100 * (large['peak'] - small['peak']) / small['peak']:.1f}% (target < 5%); above the model "
                      f"{small['above'] / 2**20:.0f} vs {large['above'] / 2**20:.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
