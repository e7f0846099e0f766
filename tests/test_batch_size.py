"""The batch size: 'auto' fitted to the free memory (capped), a number fixing it; validated everywhere it is given,
recorded in the report, read by the sweep (tests/test_sweep.py runs its jobs with it)."""

import pytest
import torch
from transformers import GPT2Config, LlamaConfig, LlamaForCausalLM

from hf_metaopt import sweep
from hf_metaopt.analysis import AnalysisOptions, PromptFormat, run_analysis
from hf_metaopt.analysis.batch_size import CPU_CAP, MEMORY_SHARE, forward_bytes, resolve_batch_size
from hf_metaopt.commands import analyze

from toy_reviews import DEMOS, QUERIES, TEMPLATE, WORDS

CONFIG = LlamaConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                     intermediate_size=64, vocab_size=400, max_position_embeddings=256, bos_token_id=0, eos_token_id=0)


def llama():
    torch.manual_seed(0)
    return LlamaForCausalLM(CONFIG).eval()


def test_forward_bytes_by_hand():
    # E=32, I=64, H=4, H_kv=2, D=8, V=400; 2 rows of 5 tokens after 10 cached, float32, one label token:
    # per row 4*(5*(4*32 + 3*64 + 2*4*8) + 15*2*8*(2+4)) + 2*4*4*5*15 + 8*4*15 + 4*15*4*8 = 13440 + 2400 + 480 + 1920
    # logits 4*2*min(2, 5)*400 + 8*2*1*400 = 6400 + 6400
    assert forward_bytes(CONFIG, 2, cached=10, fed=5) == 2 * 18240 + 12800
    # GPT-2 names its sizes n_embd / n_head / n_inner (None: 4 x n_embd) and has no separate K/V heads
    gpt2 = GPT2Config(n_embd=32, n_head=4, vocab_size=400)
    per_row = 4 * (5 * (4 * 32 + 3 * 128 + 2 * 32) + 15 * 2 * 8 * 8) + 2 * 4 * 4 * 5 * 15 + 8 * 4 * 15 + 4 * 15 * 4 * 8
    assert forward_bytes(gpt2, 1, cached=10, fed=5) == per_row + 4 * 1 * 1 * 400 + 8 * 400


def test_auto_takes_the_largest_batch_that_fits_its_share_of_the_free_memory():
    model, queries, labels = llama(), [[5] * 6] * 20, [[7], [8]]
    need = {b: forward_bytes(CONFIG, b, cached=30, fed=6 + 1) for b in range(1, 9)}
    assert resolve_batch_size("auto", model, queries, labels, cached=30, free=int(need[3] / MEMORY_SHARE)) == 3
    assert resolve_batch_size("auto", model, queries, labels, cached=30, free=int(need[3] / MEMORY_SHARE) - 1) == 2
    assert resolve_batch_size("auto", model, queries, labels, cached=30, free=1) == 1  # nothing fits: one at a time
    assert resolve_batch_size("auto", model, queries, labels, cached=30, free=2**40) == CPU_CAP  # capped on CPU
    assert resolve_batch_size("auto", model, queries[:3], labels, cached=30, free=2**40) == 3  # never above the queries
    # fed tokens: the longest query, plus the longest label word (its later tokens or the label position)
    uncached = forward_bytes(CONFIG, 2, cached=0, fed=30 + 6 + 3, label_tokens=3)  # the prefix fed with each query
    assert resolve_batch_size("auto", model, queries, [[7, 9, 9]], context=30, free=int(uncached / MEMORY_SHARE)) == 2
    assert resolve_batch_size("auto", model, queries, [[7, 9, 9]], context=30, free=int(uncached / MEMORY_SHARE) - 1) == 1
    assert resolve_batch_size(5, model, queries, labels, free=1) == 5  # a number fixes it
    assert resolve_batch_size("12", model, queries, labels) == 12


def test_auto_on_this_machine_measures_the_free_memory():
    assert 1 <= resolve_batch_size("auto", llama(), [[5] * 6] * 20, [[7]]) <= CPU_CAP


@pytest.mark.parametrize("value", [0, -1, True, 2.5, "big", "", None])
def test_a_bad_batch_size_is_refused_naming_both_forms(value):
    with pytest.raises(ValueError, match=r"`batch_size` must be 'auto' .* or a positive integer"):
        AnalysisOptions(batch_size=value)


def test_the_flag_takes_auto_or_a_number_and_refuses_the_rest(tmp_path, capsys):
    assert analyze.parse([])[2].batch_size == "auto"
    assert analyze.parse(["--batch-size", "auto"])[2].batch_size == "auto"
    assert analyze.parse(["--batch_size", "16"])[2].batch_size == 16
    config = tmp_path / "run.yaml"
    config.write_text("batch_size: 4\n")
    assert analyze.parse(["--config", str(config)])[2].batch_size == 4
    config.write_text("batch_size: auto\n")
    assert analyze.parse(["--config", str(config), "--batch-size", "2"])[2].batch_size == 2
    with pytest.raises(SystemExit) as exit_:
        analyze.parse(["--batch-size", "0"])
    assert exit_.value.code == 2
    assert "`batch_size` must be 'auto'" in capsys.readouterr().err


def test_the_sweep_reads_the_batch_size_as_the_analysis_does(tmp_path):
    _, shared = sweep.parse_args(["--batch_size", "3"])
    assert shared.batch_size == 3
    config = tmp_path / "s.yaml"
    config.write_text("tasks: [rt_sentiment]\nbatch_size: auto\n")
    _, shared = sweep.parse_args(["--config", str(config)])
    assert shared.batch_size == "auto"
    with pytest.raises(SystemExit):
        sweep.parse_args(["--batch_size", "none"])


def test_the_report_records_the_option_and_the_batch_size_used(tiny_tokenizer):
    prompt = PromptFormat(TEMPLATE, tuple(WORDS), "\n")
    options = dict(learning_rate=0.1, n_bootstrap=20, stability_check=False)
    auto = run_analysis(llama(), tiny_tokenizer, DEMOS, QUERIES, prompt, AnalysisOptions(**options)).report
    assert auto.config["batch_size"] == "auto"
    assert auto.config["batch_size_used"] == min(CPU_CAP, len(QUERIES))  # a tiny model fits anywhere
    fixed = run_analysis(llama(), tiny_tokenizer, DEMOS, QUERIES, prompt, AnalysisOptions(batch_size=2, **options)).report
    assert fixed.config["batch_size"] == 2 and fixed.config["batch_size_used"] == 2
    assert fixed["predictions"] == auto["predictions"]
