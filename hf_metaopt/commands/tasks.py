"""``hf-metaopt tasks list`` and ``hf-metaopt tasks export DIR`` (lm-evaluation-harness YAML)."""

from __future__ import annotations

import argparse
import shlex


def register(subparsers) -> None:
    """Add ``tasks list`` and ``tasks export``."""
    parser = subparsers.add_parser("tasks", help="list the registered tasks or export them for lm-evaluation-harness")
    sub = parser.add_subparsers(dest="tasks_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="the registered tasks with their source, splits and label words")
    listing.set_defaults(func=run_list)
    export = sub.add_parser(
        "export", help="write one lm-evaluation-harness task YAML per task into DIR",
        description="Write one lm-evaluation-harness task YAML per task into DIR (offline and user tasks also get their "
                    "splits as JSONL in DIR/<task>/, referenced relative to DIR: run lm_eval from DIR, "
                    "as the printed command does).",
    )
    export.add_argument("directory", metavar="DIR", help="the folder to write into (created if missing); lm_eval reads it "
                        "with --include_path. Existing files of the same names are replaced.")
    export.add_argument("--tasks", default=None, help="comma-separated task names (default: all)")
    export.set_defaults(func=run_export)


def run_list(args: argparse.Namespace) -> int:
    from .. import tasks

    rows = []
    for name in tasks.list_tasks():
        spec = tasks.get_task(name)
        source = f"{spec.dataset_path}" + (f"/{spec.dataset_name}" if spec.dataset_name else "") if spec.dataset_path else "offline"
        words = ",".join(w.strip() for w in spec.label_words)
        rows.append((name, source, f"test={spec.test_split if spec.loader is None else 'test'}", f"labels={words}", spec.description))
    print(format_columns(rows))
    return 0


def format_columns(rows: list[tuple[str, ...]]) -> str:
    """``rows`` as text columns, each as wide as its widest cell (the last one unpadded)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)] if rows else []
    return "\n".join("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]]).rstrip() for row in rows)


def run_export(args: argparse.Namespace) -> int:
    from .. import tasks

    names = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    if names:
        for name in names:
            tasks.get_task(name)  # unknown names fail before anything is written
    written = tasks.export_lm_eval(args.directory, names)
    for path in written:
        print(path)
    names = ",".join("hf_metaopt_" + p.stem for p in written)
    # The JSONL data_files are relative to DIR, and datasets resolves them against the working directory.
    print(f"run with: cd {shlex.quote(str(args.directory))} && lm_eval --include_path . --tasks {names} --num_fewshot 32 "
          "--model hf --model_args pretrained=...")
    return 0
