"""Arguments of the momentum-attention pretraining experiment, parsed by :class:`~hf_metaopt.arguments.MetaoptParser`.

Three dataclasses of our own plus :class:`transformers.TrainingArguments` (every
Trainer flag: schedule, batch size, checkpoints, ``push_to_hub`` ...). A YAML file
given with ``--config`` sets the defaults; flags on the command line override it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from ..analysis.options import check_learning_rate
from ..arguments import MetaoptParser

__all__ = [
    "ModelArguments",
    "DataArguments",
    "ExperimentArguments",
    "make_parser",
    "parse_args",
    "validate_args",
    "OFFLINE_CORPUS",
]

OFFLINE_CORPUS = "offline"


@dataclass
class ModelArguments:
    """Size of the GPT trained from scratch; both arms share it and differ only in ``momentum``."""

    hidden_size: int = field(default=128, metadata={"help": "Model width d."})
    num_hidden_layers: int = field(default=2, metadata={"help": "Number of transformer blocks."})
    num_attention_heads: int = field(default=4, metadata={"help": "Attention heads per block."})
    intermediate_size: int | None = field(default=None, metadata={"help": "MLP width (default 4 d)."})
    max_position_embeddings: int = field(default=256, metadata={"help": "Longest context the model accepts."})
    dropout: float = field(default=0.0, metadata={"help": "Dropout of embeddings, residuals and attention."})
    momentum: list[float] = field(
        default_factory=lambda: [0.5],
        metadata={"help": "eta of the momentum arm(s), each in [0, 1); several values run a sweep. "
                  "The vanilla GPT arm (eta = 0) always runs too."},
    )


@dataclass
class DataArguments:
    """The text corpus, its document-level train/validation split, the tokenizer and packing."""

    corpus: str = field(
        default=OFFLINE_CORPUS,
        metadata={"help": "'offline' (BBC News + Rotten Tomatoes from registry packages), a local "
                  ".txt/.jsonl/.csv file or folder, or a Hub dataset id such as 'Skylion007/openwebtext'."},
    )
    corpus_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    corpus_split: str = field(default="train", metadata={"help": "Split of the Hub/local dataset to read."})
    text_column: str = field(default="text", metadata={"help": "Column holding the document text."})
    streaming: bool = field(default=False, metadata={"help": "Stream the corpus (large Hub corpora)."})
    validation_documents: float = field(
        default=0.05,
        metadata={"help": "Held-out documents: a fraction (< 1) of the corpus, or a count (>= 1; "
                  "required with --streaming). Validation shares no document with training."},
    )
    max_documents: int | None = field(default=None, metadata={"help": "Use at most this many documents."})
    min_characters: int = field(default=20, metadata={"help": "Drop documents shorter than this."})
    block_size: int = field(default=256, metadata={"help": "Training sequence length (packed blocks)."})
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Hub tokenizer id or folder; by default a byte-level BPE is trained "
                                "on the training documents and saved with the run."},
    )
    tokenizer_vocab_size: int = field(default=4096, metadata={"help": "Vocabulary of the trained BPE."})
    tokenizer_train_documents: int = field(
        default=200_000, metadata={"help": "At most this many training documents feed the BPE trainer."},
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for datasets.map."})


@dataclass
class ExperimentArguments:
    """Seeds, evaluation after training and what to publish."""

    config: str | None = field(default=None, metadata={"help": "YAML file of defaults (flags override it)."})
    seeds: list[int] | None = field(
        default=None, metadata={"help": "Run every arm once per seed (default: --seed)."},
    )
    eval_context_lengths: list[int] = field(
        default_factory=lambda: [256, 512, 1024],
        metadata={"help": "Validation perplexity at these context lengths (capped at the model's maximum)."},
    )
    curve_eval_blocks: int | None = field(
        default=None,
        metadata={"help": "Validation blocks evaluated every eval_steps for the loss curves (default all); "
                  "the final perplexities always use the whole validation part."},
    )
    icl_tasks: list[str] = field(
        default_factory=lambda: ["rt_sentiment", "rt_subjectivity"],
        metadata={"help": "Offline tasks (hf_metaopt.tasks) for in-context accuracy; 'none' skips it."},
    )
    icl_shots: list[int] = field(
        default_factory=lambda: [0, 4, 16, 32],
        metadata={"help": "Demonstration counts; each is reduced to what fits the model's context."},
    )
    icl_queries: int = field(default=200, metadata={"help": "Queries per task and shot count."})
    hub_repo_prefix: str | None = field(
        default=None, metadata={"help": "With --push_to_hub: arms go to '<prefix>-gpt' and '<prefix>-momentum<eta>'."},
    )


def make_parser(**kwargs) -> MetaoptParser:
    """The parser shared by ``recipes/momentum_pretrain.py`` and ``hf-metaopt pretrain``."""
    return MetaoptParser((ModelArguments, DataArguments, ExperimentArguments, TrainingArguments), **kwargs)


def parse_args(argv: list[str] | None = None, parser: MetaoptParser | None = None):
    """Parse ``argv`` (default ``sys.argv[1:]``) with ``--config`` YAML defaults; flags override the file.

    ``parser``: one made by :func:`make_parser` (``hf-metaopt pretrain`` names its program). Returns
    ``(model_args, data_args, experiment_args, training_args)``, validated.
    """
    model_args, data_args, exp_args, training_args = (parser or make_parser()).parse_args_and_config(argv)
    validate_args(model_args, data_args, exp_args, training_args)
    return model_args, data_args, exp_args, training_args


def _check_positive(args, *names: str) -> None:
    for name in names:
        value = getattr(args, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: must be a positive integer; got {value!r}. Pass --{name} with a value >= 1")


def validate_args(model_args: ModelArguments, data_args: DataArguments,
                  exp_args: ExperimentArguments, training_args: TrainingArguments) -> None:
    """Reject bad combinations before any data is read or model built (normalises ``icl_tasks``)."""
    if [t.lower() for t in exp_args.icl_tasks] == ["none"]:
        exp_args.icl_tasks = []
    if not training_args.output_dir:
        raise ValueError("output_dir: required; pass --output_dir runs/my_run or set it in the YAML config")
    _check_positive(model_args, "hidden_size", "num_hidden_layers", "num_attention_heads", "max_position_embeddings")
    if model_args.intermediate_size is not None:
        _check_positive(model_args, "intermediate_size")
    _check_positive(training_args, "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps")
    if not 0.0 <= model_args.dropout < 1.0:
        raise ValueError(f"dropout: {model_args.dropout} is outside [0, 1); pass e.g. --dropout 0.1")
    if exp_args.seeds is not None and not exp_args.seeds:
        raise ValueError("seeds: an empty list runs nothing; give at least one seed (e.g. --seeds 0 1 2) or leave it out for --seed")
    # transformers' polynomial schedule divides by the steps left after the warm-up (the others guard it).
    polynomial = str(getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)) == "polynomial"
    if polynomial and training_args.max_steps > 0 and training_args.get_warmup_steps(training_args.max_steps) >= training_args.max_steps:
        raise ValueError(
            f"warmup_steps: {training_args.get_warmup_steps(training_args.max_steps)} warm-up steps leave none of "
            f"max_steps={training_args.max_steps} for the polynomial schedule's decay; lower --warmup_steps or raise --max_steps"
        )
    for eta in model_args.momentum:
        if not 0.0 <= eta < 1.0:
            raise ValueError(f"momentum: eta={eta} is outside [0, 1); pass values such as --momentum 0.5 0.9")
    check_learning_rate(training_args.learning_rate)
    if data_args.block_size < 2:
        raise ValueError(f"block_size: {data_args.block_size} is too small; use at least 2 tokens")
    if data_args.block_size > model_args.max_position_embeddings:
        raise ValueError(
            f"block_size: {data_args.block_size} is larger than max_position_embeddings="
            f"{model_args.max_position_embeddings}; lower --block_size or raise --max_position_embeddings"
        )
    if model_args.hidden_size % model_args.num_attention_heads:
        raise ValueError(
            f"hidden_size: {model_args.hidden_size} is not divisible by num_attention_heads="
            f"{model_args.num_attention_heads}"
        )
    if data_args.validation_documents <= 0:
        raise ValueError("validation_documents: must be > 0 (a fraction below 1 or a document count)")
    if data_args.streaming and data_args.validation_documents < 1:
        raise ValueError("validation_documents: with --streaming give a document count (>= 1), not a fraction")
    if data_args.streaming and training_args.max_steps <= 0:
        raise ValueError("max_steps: a streamed corpus has no length; set --max_steps")
    if any(length < 2 for length in exp_args.eval_context_lengths):
        raise ValueError(f"eval_context_lengths: {exp_args.eval_context_lengths} must all be >= 2")
    if any(k < 0 for k in exp_args.icl_shots):
        raise ValueError(f"icl_shots: {exp_args.icl_shots} must be non-negative")
    if training_args.push_to_hub and not (exp_args.hub_repo_prefix or training_args.hub_model_id):
        raise ValueError("push_to_hub: set --hub_repo_prefix (e.g. 'me/momentum-tiny') to name the arms' repos")
