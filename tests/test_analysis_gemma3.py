"""The real Gemma-3-270M (sliding windows of 512 tokens) with 32 demonstrations: prompts past the window (slow)."""

import pytest


@pytest.mark.slow
def test_gemma3_with_32_demonstrations_reads_each_layer_over_its_window(gemma3_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hf_metaopt.analysis import AnalysisOptions, analyze_task

    model = AutoModelForCausalLM.from_pretrained(gemma3_path)
    tokenizer = AutoTokenizer.from_pretrained(gemma3_path)
    options = AnalysisOptions(n_demonstrations=32, n_queries=8, batch_size=8, n_bootstrap=100)
    report = analyze_task(model, tokenizer, "rt_sentiment", options).report.to_dict()
    assert report["config"]["n_demonstrations"] == 32
    sliding = [i for i, kind in enumerate(model.config.layer_types) if kind == "sliding_attention"]
    window_notes = [n for n in report["notes"] if "512-token window" in n]
    assert window_notes, report["notes"]  # 32 demonstrations pass the 512-token window
    assert all(f"{i}" in " ".join(window_notes) for i in (sliding[0], sliding[-1]))
    kendall = report["kendall"]
    assert len(kendall["per_layer"]) == len(kendall["example_level"]["per_layer"]) == 18
    assert all(-1.0 <= v <= 1.0 for v in kendall["per_layer"] + report["simam"]["per_layer_delta"])
