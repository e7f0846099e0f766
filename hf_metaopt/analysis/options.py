"""The options of one ICL-vs-finetuning analysis: one frozen, validated object, one set of defaults.

The pipeline, the command line (``hf-metaopt analyze``, parsed by :class:`~hf_metaopt.arguments.MetaoptParser`),
the recipes and the sweep all build an :class:`AnalysisOptions`; it is written whole into
``report["config"]``. Bad values raise ``ValueError`` naming the field and the fix, when
the object is made, before anything is computed.

The defaults are the embedded offline run's (``hf-metaopt analyze`` with no arguments):
they were chosen on the offline tasks' dev splits, never on a reported split
(``docs/analysis.md``, "Default run").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

__all__ = [
    "AUTO_BATCH_SIZE", "AnalysisOptions", "SharedOptions", "CONTROL_NAMES", "CONTROLS", "LAYER_CAUSAL_METHODS", "MAX_LEARNING_RATE",
    "METHODS", "POSITIONS", "SPLITS", "batch_size_value", "check_learning_rate", "control_names", "normalize_control",
]

METHODS = ("kv", "lora", "full", "layer_causal", "layer_causal_lora")
# Each layer-causal method trains what its base method trains, with the layer-causal loss
# (docs/analysis.md, "Layer-causal finetuning"); everywhere else it behaves as its base method.
LAYER_CAUSAL_METHODS = {"layer_causal": "kv", "layer_causal_lora": "lora"}
POSITIONS = ("prediction", "label")
# The controls an analysis can add (docs/analysis.md, "Controls"), in the order they run and are named.
CONTROL_NAMES = ("untrained", "shuffled_labels")
CONTROLS = (None, "untrained", "shuffled_labels", "untrained+shuffled_labels")
SPLITS = ("train", "dev", "test")
AUTO_BATCH_SIZE = "auto"
# Larger rates overflow SGD's update step in float16 (largest value 65504) and wreck any model.
MAX_LEARNING_RATE = 1e4


def _positive_int(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer (e.g. 16); got {value!r}.")


def check_learning_rate(value: Any, name: str = "learning_rate") -> float:
    """``value`` as a float if it is a finite number in (0, :data:`MAX_LEARNING_RATE`]; else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_LEARNING_RATE:  # NaN fails too
        raise ValueError(f"`{name}` must be a number > 0 and <= {MAX_LEARNING_RATE:g}, finite (e.g. 1e-3); got {value!r}.")
    return float(value)


def normalize_control(value: Any) -> str | None:
    """``control`` as :class:`AnalysisOptions` holds it: ``None`` or the names of :data:`CONTROL_NAMES` joined by ``+``.

    Accepts ``None``, a name, names joined by ``+`` (``"untrained+shuffled_labels"``, in either order),
    or a list / tuple of names (empty: ``None``); each name once. Anything else raises ``ValueError``.
    """
    if value is None:
        return None
    if isinstance(value, str):
        names = [part.strip() for part in value.split("+")]
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        names = [v.strip() for v in value]
    else:
        names = None
    if names is None or any(n not in CONTROL_NAMES for n in names) or len(set(names)) != len(names):
        raise ValueError(f"`control` must be one of {list(CONTROLS)} (or a list of {list(CONTROL_NAMES)}, each once); got {value!r}.")
    return "+".join(n for n in CONTROL_NAMES if n in names) or None


def control_names(control: str | None) -> tuple[str, ...]:
    """The controls of a ``control`` value: ``"untrained+shuffled_labels"`` -> ``("untrained", "shuffled_labels")``; ``None`` -> ``()``."""
    return tuple(control.split("+")) if control else ()


def batch_size_value(value: Any) -> int | str:
    """``value`` as a batch size: a positive integer (also given as a string, as flags and YAML give it) or ``"auto"``.

    Raises ``ValueError`` naming ``batch_size`` and the two accepted forms.
    """
    if isinstance(value, str):
        text = value.strip().lower()
        if text == AUTO_BATCH_SIZE:
            return AUTO_BATCH_SIZE
        if text.isdigit() and int(text) >= 1:
            return int(text)
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError(f"`batch_size` must be 'auto' (fitted to the free memory) or a positive integer (e.g. 8); got {value!r}.")


def _choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {list(allowed)}; got {value!r}.")


@dataclass(frozen=True)
class SharedOptions:
    """The analysis options a sweep does not vary: every :class:`AnalysisOptions` field but the grid axes
    (``seed``, ``learning_rate``, ``method``, ``control``, ``balanced_demonstrations``, ``permutations``), validated the
    same way."""

    n_demonstrations: int = field(
        default=32, metadata={"help": "demonstrations: the task's train split shuffled with --seed, the first k (those that fit the context are used)."}
    )
    n_queries: int | None = field(
        default=200, metadata={"help": "queries from --split (shuffled with seed 1, capped at this many)."}
    )
    split: Literal["train", "dev", "test"] = field(
        default="test", metadata={"help": "the split queries come from (dev for model selection)."}
    )
    position: Literal["prediction", "label"] = field(
        default="prediction", metadata={"help": "where metrics are read: prediction (last prompt token) or label (first label token appended)."}
    )
    start_token: str | None = field(
        default="auto", metadata={"help": "token starting every sequence: auto (BOS, else EOS), a token string, or none."}
    )
    max_demonstrations: int = field(default=32, metadata={"help": "at most this many demonstrations in context."})
    batch_size: int | str = field(
        default=AUTO_BATCH_SIZE,
        metadata={"help": "queries per forward pass: auto (fitted to the free memory of the model's device, at most 8 on CPU) "
                          "or a number that fixes it.", "parse": batch_size_value},
    )
    n_bootstrap: int = field(default=1000, metadata={"help": "bootstrap resamples for the 95%% intervals."})
    kendall_queries: int | None = field(
        default=None, metadata={"help": "Kendall and top-k recall over the first N queries only (the reference code reads 100); default: all."}
    )
    top_k_tokens: int = field(default=100, metadata={"help": "k of the token-level top-k recall (the reference code's 100)."})
    top_k_examples: int = field(default=5, metadata={"help": "k of the example-level top-k recall (the reference code's 5)."})
    fast: bool = field(
        default=True, metadata={"help": "reuse the demonstration prefix's cache for every query (--no-fast: the per-query reference route)."}
    )
    n_inspect: int = field(
        default=16,
        metadata={"help": "the first N queries keep, per layer, the ICL attention mass and the FT score of every demonstration "
                          "token in scores.safetensors (0: none)."},
    )
    stability_check: bool = field(
        default=True,
        metadata={"help": "rerun the finetuning in float64 and report the share of FT predictions that agree "
                          "(--no-stability-check: skip the rerun)."},
    )

    def __post_init__(self):
        for name in ("n_demonstrations", "max_demonstrations", "n_bootstrap", "top_k_tokens", "top_k_examples"):
            _positive_int(name, getattr(self, name))
        object.__setattr__(self, "batch_size", batch_size_value(self.batch_size))
        _positive_int("n_queries", self.n_queries, allow_none=True)
        _positive_int("kendall_queries", self.kendall_queries, allow_none=True)
        if isinstance(self.n_inspect, bool) or not isinstance(self.n_inspect, int) or self.n_inspect < 0:
            raise ValueError(f"`n_inspect` must be an integer >= 0 (e.g. 16; 0 keeps no per-token scores); got {self.n_inspect!r}.")
        _choice("position", self.position, POSITIONS)
        _choice("split", self.split, SPLITS)
        for name in ("fast", "stability_check"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"`{name}` must be True or False; got {getattr(self, name)!r}.")
        if isinstance(self.start_token, str) and self.start_token.strip().lower() in ("none", ""):
            object.__setattr__(self, "start_token", None)  # the command line's way to say None
        if self.start_token is not None and not isinstance(self.start_token, str):
            raise ValueError(f"`start_token` must be 'auto', a token string or None; got {self.start_token!r}.")


@dataclass(frozen=True)
class AnalysisOptions(SharedOptions):
    """What one analysis does with a model and a task (every field has a CLI flag of the same name)."""

    balanced_demonstrations: bool = field(
        default=False,
        metadata={"help": "a class-balanced draw of the k demonstrations (label counts differ by at most one, labels interleaved "
                  "in a seeded order) instead of the paper's unbalanced one; given demonstrations: chosen from them."},
    )
    learning_rate: float = field(default=1e-2, metadata={"help": "finetuning SGD learning rate (constant, no momentum)."})
    method: Literal["kv", "lora", "full", "layer_causal", "layer_causal_lora"] = field(
        default="kv",
        metadata={"help": "what finetuning trains: kv (key/value projections), lora (PEFT on k/v), full, or layer_causal / "
                          "layer_causal_lora (kv / lora with every layer's input detached and a loss at every layer, "
                          "Deutch et al.)."},
    )
    seed: int = field(default=1, metadata={"help": "demonstration shuffle, training and bootstrap seed."})
    control: Literal["untrained", "shuffled_labels", "untrained+shuffled_labels"] | None = field(
        default=None,
        metadata={"help": "also analyse a control: untrained (a randomly initialised copy, Deutch et al.), shuffled_labels "
                          "(the demonstrations' labels permuted, for ICL and FT alike), or both (untrained+shuffled_labels)."},
    )
    permutations: int = field(
        default=1,
        metadata={"help": "analyse the same demonstrations in this many orders (ICL prompt and FT training order permuted "
                          "together; order 0 is the drawn order, the others seeded permutations) and report the spread."},
    )

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "learning_rate", check_learning_rate(self.learning_rate))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"`seed` must be an integer; got {self.seed!r}.")
        _choice("method", self.method, METHODS)
        object.__setattr__(self, "control", normalize_control(self.control))
        _positive_int("permutations", self.permutations)
        if not isinstance(self.balanced_demonstrations, bool):
            raise ValueError(f"`balanced_demonstrations` must be True or False; got {self.balanced_demonstrations!r}.")

    @property
    def base_method(self) -> str:
        """What finetuning trains: ``"kv"``, ``"lora"`` or ``"full"`` (a layer-causal method: its base method's)."""
        return LAYER_CAUSAL_METHODS.get(self.method, self.method)

    @property
    def controls(self) -> tuple[str, ...]:
        """The controls asked for, in the order they run: ``()``, ``("untrained",)``, ``("untrained", "shuffled_labels")``, ..."""
        return control_names(self.control)

    @property
    def layer_causal(self) -> bool:
        """Whether finetuning takes the layer-causal loss (``method`` ``layer_causal`` or ``layer_causal_lora``)."""
        return self.method in LAYER_CAUSAL_METHODS

    @classmethod
    def from_kwargs(cls, base: "AnalysisOptions | None" = None, **kwargs: Any) -> "AnalysisOptions":
        """``base`` (default: the defaults) with ``kwargs`` replaced; unknown names raise ``TypeError`` listing the valid ones."""
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - valid)
        if unknown:
            raise TypeError(f"unknown analysis option(s) {unknown}; valid options: {sorted(valid)}.")
        values = asdict(base) if base is not None else {}
        return cls(**{**values, **kwargs})

    def to_dict(self) -> dict[str, Any]:
        """Every option by name (JSON types)."""
        return asdict(self)
