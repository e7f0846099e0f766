"""``hf-metaopt analyze``: the ICL-vs-finetuning analysis of one model on one task.

A thin layer: the flags are the fields of the library's dataclasses (:class:`~hf_metaopt.arguments.MetaoptParser`,
``--config file.yaml`` for their defaults): :class:`~hf_metaopt.loading.ModelArguments`,
:class:`~hf_metaopt.tasks.TaskArguments`, :class:`~hf_metaopt.analysis.AnalysisOptions`,
:class:`~hf_metaopt.analysis.selection.SelectionArguments` and :class:`OutputArguments`. Everything
that can be checked before loading a model is checked first (the run's plan,
:func:`~hf_metaopt.analysis.plan.plan_task`); then the engine runs that plan and the run folder is
written. With no arguments it runs the embedded offline default.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..analysis.options import AnalysisOptions
from ..analysis.report_markdown import change_recall_text, rec2ftp_text
from ..analysis.report_verdict import verdict_lines
from ..analysis.selection import SelectionArguments
from ..arguments import ConfigError, MetaoptParser
from ..loading import ModelArguments
from ..tasks.arguments import TaskArguments
from .formatting import HelpFormatter
from .signals import Terminated

__all__ = ["HelpFormatter", "OutputArguments", "main", "make_parser", "parse", "register", "run"]

HELP = "compare in-context learning with finetuning (Dai et al., 2023) for a model on a task"


@dataclass(frozen=True)
class OutputArguments:
    """Where the run goes."""

    output_dir: str | None = field(default=None, metadata={"help": "run folder (default runs/<task>-<model>-<timestamp>); never overwritten."})
    push_to_hub: bool = field(default=False, metadata={"help": "push the run folder to --repo-id on the Hub."})
    repo_id: str | None = field(default=None, metadata={"help": "Hub repo for --push-to-hub, e.g. your-name/icl-analysis."})
    token: str | None = field(default=None, metadata={"help": "Hub token (default: HF_TOKEN or the login cache)."})
    progress: bool = field(default=True, metadata={"help": "show progress bars (--no-progress hides them)."})


DATACLASSES = (ModelArguments, TaskArguments, AnalysisOptions, SelectionArguments, OutputArguments)


DESCRIPTION = (HELP + ". With no arguments: the embedded offline default (Gemma-3-270M base on bbc_news, 32 demonstrations). "
               "--config FILE.yaml sets defaults (field_name: value), flags override it.")


def make_parser() -> MetaoptParser:
    """The flags of ``hf-metaopt analyze``, generated from the dataclasses above (plus ``--config``)."""
    return MetaoptParser(DATACLASSES, prog="hf-metaopt analyze", description=DESCRIPTION, formatter_class=HelpFormatter)


def register(subparsers) -> None:
    """List ``analyze`` in ``hf-metaopt --help``; :func:`main` parses its flags."""
    subparsers.add_parser("analyze", help=HELP, add_help=False)


def _flag_names(message: str) -> str:
    """Option errors name fields (`n_queries`); on the command line they are flags (--n-queries)."""
    return re.sub(r"`([a-z_]+)`", lambda m: "--" + m.group(1).replace("_", "-"), message)


def parse(argv: Sequence[str] | None = None) -> tuple[Any, ...]:
    """The dataclasses of ``argv`` (``--config`` defaults, flags over them); a bad value raises ``ValueError`` naming the flag."""
    try:
        return make_parser().parse_args_and_config(argv)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:
        raise ValueError(_flag_names(str(err))) from None


def main(argv: Sequence[str] | None = None) -> int:
    """``hf-metaopt analyze ARGS``: parse once, then :func:`run`."""
    return run(*parse(argv))


def _check_push(out: OutputArguments) -> None:
    if not out.push_to_hub:
        return
    if not out.repo_id:
        raise ValueError("--push-to-hub needs --repo-id (e.g. your-name/icl-analysis).")
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(out.repo_id)
    except HFValidationError as err:
        raise ValueError(f"--repo-id {out.repo_id!r} is not a valid Hub repo id ({err}); use 'owner/name'.") from None
    from huggingface_hub import get_token

    if not (out.token or get_token()):
        raise ValueError("--push-to-hub needs a Hub token: pass --token, set HF_TOKEN, or run `hf auth login` first.")


def _summary_line(report) -> str:
    acc, shift = report["accuracy"], report.get("label_shift") or {}
    kl = (shift.get("kl_icl_ft") or {}).get("mean")
    return (
        f"accuracy ZSL {acc['zsl']:.3f}  ICL {acc['icl']:.3f}  FT {acc['ft']:.3f}; "
        f"Rec2FTP {rec2ftp_text(report)}, SimAOU {report['simaou']['mean']:.3f}, "
        f"SimAM {report['simam']['before']:.3f} -> {report['simam']['after']:.3f}, Kendall {report['kendall']['mean']:.3f}, "
        f"ChangeRecall {change_recall_text(report)}, KL(ICL||FT) {'n/a' if kl is None else f'{kl:.3f}'}"
    )


def _verdict_lines(report) -> list[str]:
    """The verdict, one compact line per metric, and the spread over demonstration orders when there are several."""
    data = report.to_dict()
    lines = verdict_lines(data)
    if lines:
        alpha = data["verdict"].get("alpha")
        lines = [f"verdict (beyond each control and baseline? one-sided paired tests over queries, alpha {alpha}):"] + [
            f"  {line}" for line in lines]
    perm = data.get("permutations")
    if perm:
        spread, agreement = perm["spread"], perm["agreement"]
        std = lambda name: "n/a" if spread[name]["std"] is None else f"{spread[name]['std']:.3f}"  # noqa: E731
        lines.append(f"over {perm['n']} demonstration orders: std of accuracy ICL {std('accuracy_icl')}, FT {std('accuracy_ft')}, "
                     f"SimAOU {std('simaou')}, Kendall {std('kendall_token')}; the same prediction in every order for "
                     f"ICL {agreement['icl']['all_orders']:.3f}, FT {agreement['ft']['all_orders']:.3f} of the queries")
    return lines


def _push(run_dir, repo_id: str, token: str | None) -> int:
    later = f"push it later with: hf-metaopt push {run_dir} --repo-id {repo_id}"
    try:
        from ..hub import push_report

        info = push_report(run_dir, repo_id, token=token)
    except KeyboardInterrupt as err:
        how, code = ("terminated (SIGTERM)", 143) if isinstance(err, Terminated) else ("interrupted", 130)
        print(f"hf-metaopt analyze: {how} while pushing; the run is saved in {run_dir}; {later}", file=sys.stderr)
        return code
    except Exception as err:  # network, auth: the local run stays
        print(f"hf-metaopt analyze: error: push to {repo_id} failed ({type(err).__name__}: {err}); the run is saved in {run_dir}; {later}", file=sys.stderr)
        return 1
    print(f"pushed to {getattr(info, 'pr_url', None) or getattr(info, 'commit_url', None) or repo_id}")
    return 0


@contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    """With --no-progress, also silence the download and weight-loading bars of transformers and the Hub."""
    if enabled:
        yield
        return
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from transformers.utils import logging as hf_logging

    hub_was_on, hf_was_on = not are_progress_bars_disabled(), hf_logging.is_progress_bar_enabled()
    disable_progress_bars()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if hub_was_on:
            enable_progress_bars()
        if hf_was_on:
            hf_logging.enable_progress_bar()


def _split_line(spec, data, n_demos: int, n_queries: int, split: str) -> str:
    """How a data file's rows were split: the pool the demonstrations come from and the queries."""
    sizes = {role: len(data[role]) if role in data else 0 for role in ("train", "dev", "test")}
    return (f"data {spec.data_path}: {sizes['train']} train rows (the {n_demos} demonstrations are drawn from them), "
            f"{sizes['dev']} dev, {sizes['test']} test; {n_queries} {split} rows are the queries "
            "(--test-size sets a single file's test share).")


def _plan(model_args, tokenizer, spec, options, selection_args, data):
    """The run's plan (examples, prefix fit) from the tokenizer and the config, before the weights load; ``None``
    when the dev-split selection picks the seed first. Prints how a data file was split."""
    from .. import tasks
    from ..analysis.plan import plan_task
    from ..loading import load_config
    from ..torch_utils import context_length

    if selection_args.select_on:  # the selection picks the seed, hence the examples: check what holds for every seed
        from ..analysis.inference import resolve_pad_id
        from ..analysis.plan import prompt_format
        from ..analysis.prompts import PromptEncoder

        PromptEncoder(tokenizer, prompt_format(spec), options.start_token)
        resolve_pad_id(tokenizer)
        tasks.check_sizes(spec, data, options.n_demonstrations, options.n_queries, selection_args.select_on)
        plan, counts = None, tasks.check_sizes(spec, data, options.n_demonstrations, options.n_queries, options.split)
    else:
        plan = plan_task(tokenizer, spec, options, max_length=context_length(load_config(model_args)), data=data)
        counts = (len(plan.provenance["demonstration_ids"]), len(plan.queries))
    if spec.data_path:
        print(_split_line(spec, data, *counts, options.split), file=sys.stderr)
    return plan


def _analyze(model_args, tokenizer, spec, options, selection_args, data, out, plan):
    from ..analysis import analyze_task
    from ..analysis.selection import select
    from ..loading import load_model

    loaded = load_model(model_args, tokenizer=tokenizer)
    extra = {}
    if selection_args.select_on == "dev":
        options, extra["selection"] = select(loaded.model, loaded.tokenizer, spec, options, selection_args, data=data, progress=out.progress)
        print(f"selected on dev: learning rate {options.learning_rate:g}, seed {options.seed}", file=sys.stderr)
    return analyze_task(
        loaded.model, loaded.tokenizer, spec, options, data=data, provenance=loaded.provenance, extra=extra, progress=out.progress,
        plan=plan,
    )


def _save(folder, report) -> None:
    from ..runs import ReportNotSavedError

    try:
        folder.save(report)
    except ReportNotSavedError as err:
        if err.unsaved:
            print(err.unsaved)  # nowhere to write it: the terminal is the last copy
        raise


def run(model_args: ModelArguments, task_args: TaskArguments, options: AnalysisOptions, selection_args: SelectionArguments,
        out: OutputArguments) -> int:
    """Check everything that can be checked, load the model, analyse, write the run folder, push.

    Every check that needs no model weights runs first: arguments, data, model reference,
    Hub settings, the run folder (reserved and locked), the tokenizer and the context length
    (the run's plan: its examples and the ICL prefix that fits). The process's heap then hands
    large blocks back as soon as they are freed (:func:`~hf_metaopt.heap.return_large_blocks`).
    """
    from .. import tasks
    from ..analysis.query_scores import SCORES_FILE
    from ..heap import return_large_blocks
    from ..analysis.report import PLOT_FILES
    from ..loading import check_model_reference, load_tokenizer, model_label
    from ..runs import RunFolder, default_run_dir

    spec = tasks.resolve_task(task_args)
    if selection_args.select_on:
        selection_args.grids()
    check_model_reference(model_args)
    _check_push(out)
    run_dir = out.output_dir or default_run_dir(spec.name, model_label(model_args))
    with _progress_bars(out.progress), RunFolder(run_dir) as folder:
        data = spec.load()
        tokenizer = load_tokenizer(model_args)
        plan = _plan(model_args, tokenizer, spec, options, selection_args, data)
        return_large_blocks()
        result = _analyze(model_args, tokenizer, spec, options, selection_args, data, out, plan)
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
        print(_summary_line(result.report))
        for line in _verdict_lines(result.report):
            print(line)
        _save(folder, result.report)
    print(f"wrote {folder.path}/report.md, report.json, report.html, {SCORES_FILE} and the plots ({', '.join(PLOT_FILES)})")
    return _push(folder.path, out.repo_id, out.token) if out.push_to_hub else 0
