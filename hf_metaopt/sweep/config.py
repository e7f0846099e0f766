"""The sweep's configuration: grid axes as lists, plus the options every job shares.

Two dataclasses parsed by :class:`~hf_metaopt.arguments.MetaoptParser` with YAML defaults
(``--config``; flags override the file): :class:`SweepArguments` (the grid's axes, where runs
go, how models load) and :class:`~hf_metaopt.analysis.options.SharedOptions`, the fields of
:class:`~hf_metaopt.analysis.AnalysisOptions` that are not grid axes (its base class, so the
defaults and checks live in one place). Values are checked when parsed, and each job's
options when :func:`hf_metaopt.sweep.grid.plan_sweep` builds them, before any model loads.
"""

from __future__ import annotations

import sys
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from ..analysis.options import AnalysisOptions, SharedOptions, normalize_control
from ..arguments import MetaoptParser, read_yaml_config
from ..loading import DEFAULT_MODEL, ModelArguments
from ..tasks import DEFAULT_TASK

__all__ = ["GRID_AXES", "SharedOptions", "SweepArguments", "make_parser", "parse_args"]

# AnalysisOptions field -> the SweepArguments list that makes it a grid axis.
GRID_AXES = {"seed": "seeds", "learning_rate": "learning_rates", "method": "methods", "control": "controls",
             "balanced_demonstrations": "balanced", "permutations": "permutations"}
_NO_CONTROL = ("none", "null", "")
_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _default(cls: type, name: str) -> Any:
    return next(f.default for f in fields(cls) if f.name == name)


@dataclass(frozen=True)
class SweepArguments:
    """The grid (one job per model x task x method x learning rate x control x balanced x permutations x seed) and where
    runs go."""

    models: list[str] = field(
        default_factory=lambda: [DEFAULT_MODEL],
        metadata={"help": "Hub ids, local model folders, or embedded offline models (gemma3, smollm2)."},
    )
    tasks: list[str] = field(default_factory=lambda: [DEFAULT_TASK], metadata={"help": "registered task names (hf-metaopt tasks list)."})
    seeds: list[int] = field(default_factory=lambda: [_default(AnalysisOptions, "seed")], metadata={"help": "one run per seed; summaries show mean ± std over seeds."})
    learning_rates: list[float] = field(
        default_factory=lambda: [_default(AnalysisOptions, "learning_rate")], metadata={"help": "finetuning SGD learning rates."}
    )
    methods: list[str] = field(
        default_factory=lambda: [_default(AnalysisOptions, "method")], metadata={"help": "what finetuning trains: kv, lora, full, layer_causal and/or layer_causal_lora."}
    )
    controls: list[str] = field(
        default_factory=lambda: [_default(AnalysisOptions, "control")],
        metadata={"help": "null/none (the pretrained model only), untrained (also a randomly initialised copy), shuffled_labels "
                          "(also the demonstrations with shuffled labels) and/or untrained+shuffled_labels (both in one job)."},
    )
    # Strings on the command line (argparse would read "false" as True), booleans after __post_init__.
    balanced: list[str] = field(
        default_factory=lambda: [_default(AnalysisOptions, "balanced_demonstrations")],
        metadata={"help": "false (the paper's unbalanced demonstration draw) and/or true (balanced_demonstrations)."},
    )
    permutations: list[int] = field(
        default_factory=lambda: [_default(AnalysisOptions, "permutations")],
        metadata={"help": "demonstration orders per job (1: the drawn order only; e.g. 1 3): the spread over orders."},
    )
    output_dir: str = field(default="runs/sweep", metadata={"help": "one run folder per job below it, and the summary files."})
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = field(
        default=_default(ModelArguments, "dtype"), metadata={"help": "weights dtype of every model."}
    )
    device: str = field(
        default=_default(ModelArguments, "device"),
        metadata={"help": "'auto': each process's own GPU (under accelerate launch, the local process index-th), else CPU; 'cpu'; "
                  "or a device such as 'cuda:1' (one process only)."},
    )
    data_dir: str | None = field(default=None, metadata={"help": "local copies of the Hub datasets, one save_to_disk folder per task."})
    progress: bool = field(default=True, metadata={"help": "show progress bars: one per process over its jobs, one per analysis (--no-progress: no bars)."})
    config: str | None = field(default=None, metadata={"help": "YAML file of defaults (flags override it)."})

    def __post_init__(self):
        # YAML reads 1e-3 as a string and lists from a YAML file bypass argparse's type conversion.
        object.__setattr__(self, "learning_rates", [_number(float, "learning_rates", v) for v in self.learning_rates])
        object.__setattr__(self, "seeds", [_number(int, "seeds", v) for v in self.seeds])
        object.__setattr__(self, "permutations", [_number(int, "permutations", v) for v in self.permutations])
        controls = [None if c is None or (isinstance(c, str) and c.strip().lower() in _NO_CONTROL) else c for c in self.controls]
        object.__setattr__(self, "controls", [_control(c) for c in controls])
        object.__setattr__(self, "balanced", [_boolean("balanced", v) for v in self.balanced])
        dtypes = typing.get_args(typing.get_type_hints(SweepArguments)["dtype"])
        if self.dtype not in dtypes:
            raise ValueError(f"`dtype` is {self.dtype!r}, not one of its choices ({', '.join(dtypes)}).")
        for name in ("models", "tasks", *GRID_AXES.values()):
            values = getattr(self, name)
            if not isinstance(values, list) or not values:
                raise ValueError(f"`{name}` must be a non-empty list (e.g. {name}: [{_example(name)}]); got {values!r}.")
            repeated = sorted({str(v) for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"`{name}` repeats {repeated}; each grid value must appear once.")


def _number(kind: type, name: str, value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"`{name}` must hold {kind.__name__}s; got {value!r}.")
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must hold {kind.__name__}s; got {value!r}.") from None
    if kind is int and number != float(value):
        raise ValueError(f"`{name}` must hold integers; got {value!r}.")
    return number


def _control(value: Any) -> Any:
    """A ``controls`` entry as ``AnalysisOptions.control`` holds it (``[untrained, shuffled_labels]`` and
    ``shuffled_labels+untrained`` are ``untrained+shuffled_labels``); a bad one is left for the job's options to refuse."""
    try:
        return normalize_control(value)
    except ValueError:
        return value


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    try:
        return _BOOLEANS[str(value).strip().lower()]
    except KeyError:
        raise ValueError(f"`{name}` must hold true or false; got {value!r}.") from None


def _example(name: str) -> str:
    return {"models": DEFAULT_MODEL, "tasks": DEFAULT_TASK}.get(name, "...")


def make_parser(default_config: str | Path | None = None, **kwargs: Any) -> MetaoptParser:
    """The sweep's flags: :class:`SweepArguments` and :class:`SharedOptions` (shared by the recipe and the CLI)."""
    return MetaoptParser((SweepArguments, SharedOptions), default_config=default_config, **kwargs)


def parse_args(
    argv: list[str] | None = None, *, default_config: str | Path | None = None, parser: MetaoptParser | None = None
) -> tuple[SweepArguments, SharedOptions]:
    """``(SweepArguments, SharedOptions)`` from YAML defaults (``--config``) and flags (default ``sys.argv[1:]``).

    ``parser``: one made by :func:`make_parser` (``hf-metaopt sweep`` names its program).

    Raises:
        ValueError: the ``--config`` file is empty, or neither it nor the flags name any of the
            grid's lists (a typo'd or empty file would otherwise run the whole default grid).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = parser or make_parser(default_config)
    _check_config_names_a_grid(parser, argv)
    return parser.parse_args_and_config(argv)


GRID_LISTS = ("models", "tasks", *GRID_AXES.values())


def _check_config_names_a_grid(parser: MetaoptParser, argv: list[str]) -> None:
    config = parser.config_path(argv)
    if not config or not Path(config).is_file():
        return  # no file, or a missing one (which the parser reports)
    values = read_yaml_config(config)
    if values is None or values == {}:
        raise ValueError(f"--config: '{config}' is empty; a sweep config names its grid, e.g. models: [gemma3] and "
                         "tasks: [rt_sentiment] (see recipes/configs/sweep_offline.yaml).")
    if not isinstance(values, dict):
        return  # the parser says what a config must hold
    known = {f.name for cls in (SweepArguments, SharedOptions) for f in fields(cls)}
    if set(values) - known:
        return  # a misspelt key: the parser names it, which says more than "no grid"
    given = set(values) | {token[2:].split("=", 1)[0].replace("-", "_") for token in argv if token.startswith("--")}
    if not given & set(GRID_LISTS):
        raise ValueError(f"--config: '{config}' sets none of the grid's lists ({', '.join(GRID_LISTS)}), so the sweep would "
                         "run the default grid; name at least models and tasks in it or as flags.")
