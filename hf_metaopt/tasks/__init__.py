"""Task registry: the paper's six tasks, tasks registered from above (``import hf_metaopt.offline``), user data.

    import hf_metaopt.offline                 # registers the offline tasks (the command line does it)
    from hf_metaopt import tasks
    tasks.list_tasks()                        # ['sst2', 'sst5', 'mr', 'subj', 'agnews', 'cb', 'rt_sentiment', ...]
    demos, queries, spec = tasks.prepare("rt_sentiment", n_demonstrations=16, n_queries=200, seed=1)
    spec = tasks.from_files("my.csv", template="Review: {text} Sentiment:", label_words="Negative,Positive")
    data = spec.load()
    tasks.check_sizes(spec, data, n_demonstrations=16, n_queries=200)   # before loading a model
"""

from .arguments import DEFAULT_TASK, TaskArguments, resolve_task
from .lm_eval import export_lm_eval, to_lm_eval_config
from .prepare import Selection, check_sizes, prepare, select_examples
from .registry import PAPER_TASK_NAMES, get_task, list_tasks, register_task
from .spec import DATA_DIR_ENV, DatasetUnavailableError, TaskSpec
from .user import from_files, parse_label_words

__all__ = [
    "DEFAULT_TASK",
    "TaskArguments",
    "resolve_task",
    "check_sizes",
    "DATA_DIR_ENV",
    "DatasetUnavailableError",
    "PAPER_TASK_NAMES",
    "TaskSpec",
    "check_sizes",
    "export_lm_eval",
    "from_files",
    "get_task",
    "list_tasks",
    "parse_label_words",
    "prepare",
    "select_examples",
    "Selection",
    "register_task",
    "to_lm_eval_config",
]
