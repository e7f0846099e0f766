"""``hf-metaopt analyze``: the ICL-vs-finetuning analysis of one model on one task.

A thin layer: the flags are the fields of the library's dataclasses (``HfArgumentParser``):
:class:`~hf_metaopt.loading.ModelArguments`, :class:`~hf_metaopt.tasks.TaskArguments`,
:class:`~hf_metaopt.analysis.AnalysisOptions`, :class:`~hf_metaopt.analysis.selection.SelectionArguments`
and :class:`OutputArguments`. Everything that can be checked before loading a model is
checked first; then :func:`~hf_metaopt.analysis.analyze_task` runs and the run folder is written.
With no arguments it runs the embedded offline default.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from transformers import HfArgumentParser

from ..analysis.options import AnalysisOptions
from ..analysis.selection import SelectionArguments
from ..loading import ModelArguments
from ..tasks.arguments import TaskArguments

__all__ = ["HelpFormatter", "OutputArguments", "make_parser", "register", "run"]

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


def make_parser() -> HfArgumentParser:
    """The flags of ``hf-metaopt analyze``, generated from the dataclasses above."""
    return HfArgumentParser(DATACLASSES, add_help=False)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each flag's default, unless its help names the default already (``--model``), and with
    ``--no-x`` switches described as what they do rather than as a copy of ``--x``'s help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.nargs == 0 and action.const is False and action.option_strings[0].startswith("--no"):
            positive = "--" + action.dest.replace("_", "-")
            own = re.search(r"\(--no-[\w-]+: ([^)]*)\)", text)
            if own:
                return f"{own.group(1)} (turns {positive} off)."
            return "do not " + re.sub(r"\s*\([^)]*\)", "", text).rstrip(".") + f" (turns {positive} off)."
        if re.search(r"\bdefault\b", text):
            return text
        return super()._get_help_string(action)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "analyze", help=HELP, parents=[make_parser()], formatter_class=HelpFormatter,
        description=HELP + ". With no arguments: the embedded offline default (Gemma-3-270M base on bbc_news, 32 demonstrations).",
    )
    parser.set_defaults(func=run)


def _flag_names(message: str) -> str:
    """Option errors name fields (`n_queries`); on the command line they are flags (--n-queries)."""
    return re.sub(r"`([a-z_]+)`", lambda m: "--" + m.group(1).replace("_", "-"), message)


def parse(args: argparse.Namespace) -> tuple[Any, ...]:
    """The dataclasses of the parsed flags; bad values raise ``ValueError`` naming the flag."""
    values = {k: v for k, v in vars(args).items() if k not in ("command", "func")}
    try:
        return make_parser().parse_dict(values, allow_extra_keys=True)
    except (ValueError, TypeError) as err:
        raise ValueError(_flag_names(str(err))) from None


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
    acc, rec = report["accuracy"], report["rec2ftp"]
    return (
        f"accuracy ZSL {acc['zsl']:.3f}  ICL {acc['icl']:.3f}  FT {acc['ft']:.3f}; "
        f"Rec2FTP {'n/a' if rec is None else round(rec, 3)}, SimAOU {report['simaou']['mean']:.3f}, "
        f"SimAM {report['simam']['before']:.3f} -> {report['simam']['after']:.3f}, Kendall {report['kendall']['mean']:.3f}"
    )


def _push(run_dir, repo_id: str, token: str | None) -> int:
    later = f"push it later with: hf-metaopt push {run_dir} --repo-id {repo_id}"
    try:
        from ..hub import push_report

        info = push_report(run_dir, repo_id, token=token)
    except KeyboardInterrupt as err:
        from ..cli import Terminated

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


def _check_data(spec, data, options, selection_args) -> None:
    from .. import tasks

    tasks.check_sizes(spec, data, options.n_demonstrations, options.n_queries, options.split)
    if selection_args.select_on:
        tasks.check_sizes(spec, data, options.n_demonstrations, options.n_queries, selection_args.select_on)


def _split_line(spec, data, options) -> str:
    """How a data file's rows were split: the pool the demonstrations come from and the queries."""
    from .. import tasks

    n_demos, n_queries = tasks.check_sizes(spec, data, options.n_demonstrations, options.n_queries, options.split)
    sizes = {role: len(data[role]) if role in data else 0 for role in ("train", "dev", "test")}
    return (f"data {spec.data_path}: {sizes['train']} train rows (the {n_demos} demonstrations are drawn from them), "
            f"{sizes['dev']} dev, {sizes['test']} test; {n_queries} {options.split} rows are the queries "
            "(--test-size sets a single file's test share).")


def _check_model_fit(model_args, tokenizer, spec, options, selection_args, data) -> None:
    """What the tokenizer and the config tell before the weights load.

    The label words must start with different tokens, batches need a pad (or EOS) token,
    and at least one demonstration must fit the model's context next to the longest query.
    """
    from .. import tasks
    from ..analysis import prompt_format
    from ..analysis.inference import resolve_pad_id
    from ..analysis.prompts import PromptEncoder
    from ..loading import load_config
    from ..torch_utils import context_length

    encoder = PromptEncoder(tokenizer, prompt_format(spec), options.start_token)
    resolve_pad_id(tokenizer)
    if selection_args.select_on:
        return  # the demonstrations depend on the seed the selection picks
    # context_length reads only model.config, which is all there is before the weights load.
    length = context_length(SimpleNamespace(config=load_config(model_args)))
    chosen = tasks.select_examples(spec, options.n_demonstrations, options.n_queries, options.seed, split=options.split, data=data,
                                   balanced=options.balanced_demonstrations)
    encoder.fit_prefix(chosen.demonstrations[: options.max_demonstrations], chosen.queries, length)


def _analyze(model_args, tokenizer, spec, options, selection_args, data, out):
    from ..analysis import analyze_task
    from ..analysis.selection import select
    from ..loading import load_model

    loaded = load_model(model_args, tokenizer=tokenizer)
    extra = {}
    if selection_args.select_on == "dev":
        options, extra["selection"] = select(loaded.model, loaded.tokenizer, spec, options, selection_args, data=data, progress=out.progress)
        print(f"selected on dev: learning rate {options.learning_rate:g}, seed {options.seed}", file=sys.stderr)
    return analyze_task(
        loaded.model, loaded.tokenizer, spec, options, data=data, provenance=loaded.provenance, extra=extra, progress=out.progress
    )


def _save(folder, report) -> None:
    from ..runs import ReportNotSavedError

    try:
        folder.save(report)
    except ReportNotSavedError as err:
        if err.unsaved:
            print(err.unsaved)  # nowhere to write it: the terminal is the last copy
        raise


def run(args: argparse.Namespace) -> int:
    """Check everything that can be checked, load the model, analyse, write the run folder, push.

    Every check that needs no model weights runs first: arguments, data, model reference,
    Hub settings, the run folder (reserved and locked), the tokenizer and the context length.
    """
    from .. import tasks
    from ..analysis.report import PLOT_FILES
    from ..loading import check_model_reference, load_tokenizer, model_label
    from ..runs import RunFolder, default_run_dir

    model_args, task_args, options, selection_args, out = parse(args)
    spec = tasks.resolve_task(task_args)
    if selection_args.select_on:
        selection_args.grids()
    check_model_reference(model_args)
    _check_push(out)
    run_dir = out.output_dir or default_run_dir(spec.name, model_label(model_args))
    with _progress_bars(out.progress), RunFolder(run_dir) as folder:
        data = spec.load()
        _check_data(spec, data, options, selection_args)
        if spec.data_path:
            print(_split_line(spec, data, options), file=sys.stderr)
        tokenizer = load_tokenizer(model_args)
        _check_model_fit(model_args, tokenizer, spec, options, selection_args, data)
        result = _analyze(model_args, tokenizer, spec, options, selection_args, data, out)
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
        print(_summary_line(result.report))
        _save(folder, result.report)
    print(f"wrote {folder.path}/report.md, report.json and the plots ({', '.join(PLOT_FILES)})")
    return _push(folder.path, out.repo_id, out.token) if out.push_to_hub else 0
