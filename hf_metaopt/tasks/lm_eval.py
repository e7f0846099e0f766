"""Export tasks as lm-evaluation-harness task YAML, so the same prompts evaluate there.

Hub tasks point at their Hub dataset; offline and user tasks have their splits written
as JSONL next to the YAML (``dataset_path: json`` with ``data_files`` relative to the YAML's
folder, so the folder can be moved). ``datasets`` resolves relative ``data_files`` against the
working directory, so run lm-eval from that folder:
``cd DIR && lm_eval --include_path . --tasks hf_metaopt_<name> --num_fewshot 32 ...``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from ..fileio import atomic_write_text
from .registry import get_task
from .spec import TaskSpec

__all__ = ["to_lm_eval_config", "export_lm_eval"]


def _jinja(template: str, spec: TaskSpec) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: "{{" + spec.column(m.group(1)) + "}}", template)


def to_lm_eval_config(spec: TaskSpec, data_files: dict[str, str] | None = None) -> dict:
    """The lm-evaluation-harness task dictionary of ``spec``.

    The harness joins context and choice with ``target_delimiter``; our label words carry
    their leading space, so the choices are the stripped words and the delimiter is that space.
    """
    spaced = all(w[:1] == " " for w in spec.label_words)
    config = {"task": f"hf_metaopt_{spec.name}"}
    if data_files is None:
        if spec.dataset_path is None:
            raise ValueError(f"task {spec.name!r} has no Hub dataset; export it with data_files (export_lm_eval does).")
        config["dataset_path"] = spec.dataset_path
        if spec.dataset_name:
            config["dataset_name"] = spec.dataset_name
        if spec.revision:
            config["dataset_kwargs"] = {"revision": spec.revision}
        config["training_split"] = spec.train_split
        if spec.dev_split:
            config["validation_split"] = spec.dev_split
        config["test_split"] = spec.test_split
        config["fewshot_split"] = spec.train_split
        template, label_column = _jinja(spec.template, spec), spec.label_field
    else:
        config["dataset_path"] = "json"
        config["dataset_kwargs"] = {"data_files": data_files}
        config.update(training_split="train", validation_split="dev", test_split="test", fewshot_split="train")
        template, label_column = spec.template.replace("{", "{{").replace("}", "}}"), "label"
    config.update(
        output_type="multiple_choice",
        doc_to_text=template,
        doc_to_choice=[w[1:] if spaced else w for w in spec.label_words],
        doc_to_target=label_column,
        target_delimiter=" " if spaced else "",
        fewshot_delimiter=spec.separator,
        metric_list=[{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        metadata={"version": 1.0, "source": "hf-metaopt", "description": spec.description},
    )
    return config


def export_lm_eval(directory: str | Path, tasks: list[str | TaskSpec] | None = None) -> list[Path]:
    """Write ``<task>.yaml`` per task into ``directory`` (offline tasks also get their JSONL splits)."""
    from .registry import list_tasks

    directory = Path(directory)
    written = []
    for task in tasks if tasks is not None else list_tasks():
        spec = get_task(task)
        data_files = None
        if spec.loader is not None:
            data_files = {}
            for role, ds in spec.load().items():
                target = directory / spec.name / f"{role}.jsonl"
                atomic_write_text(target, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in ds.to_list()))
                data_files[role] = f"{spec.name}/{role}.jsonl"
        text = yaml.safe_dump(to_lm_eval_config(spec, data_files), sort_keys=False, allow_unicode=True, width=1000)
        written.append(atomic_write_text(directory / f"{spec.name}.yaml", text))
    return written
