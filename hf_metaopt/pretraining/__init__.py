"""The momentum-attention pretraining experiment (Dai et al. 2023, section 5).

Trains a vanilla GPT and MomentumGPT arms of the same size on the same data with
``transformers.Trainer``, then compares validation perplexity by context length and
in-context accuracy. Entry points: :func:`main` (used by ``recipes/momentum_pretrain.py``
and ``hf-metaopt pretrain``), :func:`make_parser`, :func:`run_experiment`.
"""

from .arguments import DataArguments, ExperimentArguments, ModelArguments, make_parser, parse_args
from .corpus import decontaminate, load_corpus, pack_blocks, register_corpus
from .evaluation import icl_accuracy, perplexity_by_context
from .experiment import arm_values, build_model, run_experiment, train_arm
from .table import summarize, to_markdown, write_comparison
from .tokenizer import train_bpe_tokenizer

__all__ = [
    "ModelArguments", "DataArguments", "ExperimentArguments", "make_parser", "parse_args", "main",
    "run_experiment", "train_arm", "build_model", "arm_values",
    "load_corpus", "register_corpus", "pack_blocks", "decontaminate", "train_bpe_tokenizer",
    "perplexity_by_context", "icl_accuracy", "summarize", "to_markdown", "write_comparison",
]


def main(argv: list[str] | None = None, parser=None) -> dict | None:
    """Parse ``argv`` (YAML ``--config`` + flags; ``parser`` from :func:`make_parser`), run the experiment,
    print the comparison table and return its summary."""
    args = parse_args(argv, parser)
    summary = run_experiment(*args)
    if summary is not None:
        print(to_markdown(summary))
    return summary
