"""Which task a run analyses, as command-line arguments: a registered name with overrides, or user data."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .registry import get_task
from .spec import TaskSpec, template_fields
from .user import from_files, parse_label_words

__all__ = ["DEFAULT_TASK", "TaskArguments", "resolve_task"]

# The default run's task (BBC News topics, registered by hf_metaopt.offline), chosen on dev splits.
DEFAULT_TASK = "bbc_news"


@dataclass(frozen=True)
class TaskArguments:
    """The task of a run; parsed by ``HfArgumentParser`` (``--task``, ``--data-file``, ...)."""

    task: str | None = field(default=None, metadata={"help": f"registered task (default {DEFAULT_TASK}; see `hf-metaopt tasks list`)."})
    data_file: str | None = field(
        default=None, metadata={"help": "your own CSV/TSV/JSON/JSONL file or datasets folder (needs --template and --label-words)."}
    )
    template: str | None = field(default=None, metadata={"help": "e.g. 'Review: {text} Sentiment:'; overrides the task's template."})
    label_words: str | None = field(
        default=None, metadata={"help": "comma-separated, e.g. 'Negative,Positive' (a leading space is added)."}
    )
    test_size: float | None = field(
        default=None,
        metadata={"help": "the queries of a --data-file that has no test split of its own: a fraction (< 1) or a count (>= 1) "
                  "of its labelled rows (default 0.2, at least one row); of the rest a tenth goes to dev, the others are the "
                  "demonstrations' pool."},
    )
    label_column: str = field(default="label", metadata={"help": "column of --data-file holding the label (index or label word)."})
    label_values: Literal["auto", "words", "indices"] = field(
        default="auto",
        metadata={"help": "integer labels of --data-file: auto (a label equal to a label word is that word, other integers are "
                  "0-based indices; refused if both readings fit and differ), words, or indices."},
    )
    separator: str | None = field(
        default=None, metadata={"help": "between demonstrations (default: the task's, a newline); '\\n' is understood."}
    )


def resolve_task(args: TaskArguments) -> TaskSpec:
    """The :class:`TaskSpec` the arguments name: user data, or a registered task with overrides.

    Raises ``ValueError`` naming the argument and the fix for contradictory or incomplete ones.
    """
    separator = None if args.separator is None else args.separator.encode().decode("unicode_escape")
    if args.test_size is not None and not args.data_file:
        raise ValueError("--test-size splits a --data-file; a registered task has its own test split.")
    if args.data_file:
        if args.task:
            raise ValueError("give either --task or --data-file, not both.")
        if not args.template or not args.label_words:
            raise ValueError(
                "--data-file needs --template (e.g. 'Review: {text} Sentiment:') and --label-words (e.g. 'Negative,Positive')."
            )
        return from_files(
            args.data_file, template=args.template, label_words=args.label_words, label_column=args.label_column,
            separator=separator or "\n", label_values=args.label_values, test_size=args.test_size,
        )
    spec = get_task(args.task or DEFAULT_TASK)
    changes: dict[str, Any] = {}
    if args.template:
        fields = template_fields(args.template)
        if set(fields) != set(spec.template_fields):
            raise ValueError(f"--template uses the fields {fields}, but task {spec.name!r} provides {spec.template_fields}.")
        changes["template"] = args.template
    if args.label_words:
        words = parse_label_words(args.label_words)
        if len(words) != len(spec.label_words):
            raise ValueError(
                f"--label-words has {len(words)} words but task {spec.name!r} has {len(spec.label_words)} labels "
                f"{list(spec.label_words)}."
            )
        changes["label_words"] = words
    if separator is not None:
        changes["separator"] = separator
    return replace(spec, **changes) if changes else spec
