"""One small analysis on a tiny random GPT-2, run in the test process or as a script (tests/test_reproducibility.py).

    python tests/tiny_analysis.py TOKENIZER_DIR NUM_THREADS OUT_JSON
"""

from __future__ import annotations

import sys


def analyze(tokenizer_dir: str) -> dict:
    """The report (as a dict) of a seeded tiny model on the toy reviews, with the untrained control."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from hf_metaopt.analysis import AnalysisOptions, PromptFormat, run_analysis
    from toy_reviews import DEMOS, QUERIES, TEMPLATE, WORDS

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=400, n_positions=256,
                                       bos_token_id=0, eos_token_id=0)).eval()
    options = AnalysisOptions(learning_rate=0.1, batch_size=2, n_bootstrap=20, control="untrained", seed=3)
    prompt = PromptFormat(TEMPLATE, tuple(WORDS), "\n")
    return run_analysis(model, AutoTokenizer.from_pretrained(tokenizer_dir), DEMOS, QUERIES, prompt, options).report.to_dict()


if __name__ == "__main__":
    import json
    from pathlib import Path

    import torch

    tokenizer_dir, threads, out = sys.argv[1:]
    torch.set_num_threads(int(threads))  # the parent's: the same sums, the same environment record
    Path(out).write_text(json.dumps(analyze(tokenizer_dir), indent=2, allow_nan=False))
