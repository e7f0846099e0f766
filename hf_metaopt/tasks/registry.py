"""The task registry: names -> :class:`TaskSpec`."""

from __future__ import annotations

from .paper import PAPER_TASKS
from .spec import TaskSpec

__all__ = ["get_task", "list_tasks", "register_task", "PAPER_TASK_NAMES"]

_REGISTRY: dict[str, TaskSpec] = {}
PAPER_TASK_NAMES = tuple(t.name for t in PAPER_TASKS)


def register_task(spec: TaskSpec, *, exist_ok: bool = False) -> TaskSpec:
    """Add ``spec`` to the registry under ``spec.name`` (``exist_ok`` replaces an existing one)."""
    if not isinstance(spec, TaskSpec):
        raise TypeError(f"register_task takes a TaskSpec, got {type(spec).__name__}.")
    if spec.name in _REGISTRY and not exist_ok:
        raise ValueError(f"a task named {spec.name!r} is already registered; pass exist_ok=True to replace it.")
    _REGISTRY[spec.name] = spec
    return spec


def list_tasks() -> list[str]:
    """Registered task names: the paper's six first, then those registered later (the offline ones by
    ``import hf_metaopt.offline``, yours)."""
    return list(_REGISTRY)


def get_task(name: str) -> TaskSpec:
    """The registered :class:`TaskSpec` called ``name``.

    Raises:
        ValueError: unknown name; the message lists the known tasks.
    """
    if isinstance(name, TaskSpec):
        return name
    if not isinstance(name, str):
        raise TypeError(f"task must be a task name (str) or a TaskSpec, got {type(name).__name__}.")
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown task {name!r}; known tasks: {', '.join(_REGISTRY)}. "
            "The offline tasks (rt_sentiment, rt_subjectivity, bbc_news) come with `import hf_metaopt.offline`, which the "
            "command line does. For your own data use --data-file with --template and --label-words (tasks.from_files)."
        ) from None


for _spec in PAPER_TASKS:
    register_task(_spec)
