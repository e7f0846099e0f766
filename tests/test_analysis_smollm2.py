"""The real model: SmolLM2-135M on 8 demonstrations and 32 queries of offline Rotten Tomatoes data."""

import json

import pytest


@pytest.mark.slow
def test_smollm2_icl_beats_zsl_or_the_report_explains(smollm2_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    import hf_metaopt  # noqa: F401  (registers the pipeline)
    from hf_metaopt import tasks

    demos, queries, spec = tasks.prepare("rt_sentiment", n_demonstrations=8, n_queries=32, seed=1)
    model = AutoModelForCausalLM.from_pretrained(smollm2_path)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_path)
    analyzer = pipeline("icl-analysis", model=model, tokenizer=tokenizer)
    report = analyzer(
        demos, queries, template=spec.template, label_words=list(spec.label_words), learning_rate=1e-3,
        seed=1, n_bootstrap=200,
    ).to_dict()
    json.dumps(report)
    acc = report["accuracy"]
    assert report["config"]["n_demonstrations"] == 8
    assert len(report["simaou"]["per_layer"]) == model.config.num_hidden_layers
    assert acc["icl"] > acc["zsl"] or any("accuracy" in n for n in report["notes"]), (acc, report["notes"])
    assert -1 <= report["simaou"]["mean"] <= 1 and -1 <= report["kendall"]["mean"] <= 1
