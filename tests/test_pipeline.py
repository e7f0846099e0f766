"""pipeline("icl-analysis"): registration, the report contract, finetune() and predict()."""

import json

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, pipeline

import hf_metaopt
from hf_metaopt import ICLAnalysisReport, ICLAnalyzer

TEMPLATE = "Review: {text} Sentiment:"
WORDS = [" Negative", " Positive"]
DEMOS = [{"text": "a gripping film", "label": 1}, {"text": "dull and overlong", "label": 0}, {"text": "great", "label": 1}]
QUERIES = [{"text": "beautifully acted", "label": 1}, {"text": "badly written", "label": 0}, {"text": "clever", "label": 1}]
CONTRACT = {
    "accuracy": {"zsl", "icl", "ft"},
    "predictions": {"zsl", "icl", "ft"},
    "simaou": {"per_layer", "mean", "random_mean", "unnormalized_mean"},
    "simam": {"per_layer_before", "per_layer_after", "before", "after", "delta"},
    "kendall": {"per_layer", "mean", "random_mean"},
    "config": {"model", "model_revision", "template", "label_words", "separator", "position", "method",
               "learning_rate", "seed", "n_demonstrations", "versions"},
}


@pytest.fixture
def analyzer(tiny_tokenizer):
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
        vocab_size=400, max_position_embeddings=2048, bos_token_id=0, eos_token_id=0,
    ))
    return pipeline("icl-analysis", model=model, tokenizer=tiny_tokenizer)


def test_pipeline_returns_analyzer_and_contract_report(analyzer):
    assert isinstance(analyzer, ICLAnalyzer) and "ICLAnalyzer" in hf_metaopt.__all__
    report = analyzer(DEMOS, QUERIES, template=TEMPLATE, label_words=WORDS, learning_rate=0.1, n_bootstrap=20)
    assert isinstance(report, ICLAnalysisReport)
    data = json.loads(json.dumps(report.to_dict()))
    for key, fields in CONTRACT.items():
        assert fields <= set(data[key]), key
    assert {"labels", "rec2ftp", "accuracy_ci95", "rec2ftp_ci95", "controls", "notes"} <= set(data)
    assert data["labels"] == [1, 0, 1] and data["controls"] == {}
    assert all(0 <= data["accuracy"][k] <= 1 for k in ("zsl", "icl", "ft"))
    assert data["config"]["method"] == "kv" and data["config"]["n_demonstrations"] == 3
    # the analysis's finetuned model is the one finetune() returns (same seed, same steps)
    tuned = analyzer.finetune(DEMOS, template=TEMPLATE, label_words=WORDS, learning_rate=0.1)
    assert analyzer.predict(QUERIES, template=TEMPLATE, label_words=WORDS, model=tuned) == data["predictions"]["ft"]
    assert analyzer.predict(QUERIES, template=TEMPLATE, label_words=WORDS) == data["predictions"]["zsl"]
    assert analyzer.predict(QUERIES, DEMOS, template=TEMPLATE, label_words=WORDS) == data["predictions"]["icl"]


def test_finetune_returns_a_copy(analyzer):
    before = analyzer.model.model.layers[0].self_attn.k_proj.weight.clone()
    tuned = analyzer.finetune(DEMOS, template=TEMPLATE, label_words=WORDS, learning_rate=0.5, method="full")
    assert torch.equal(analyzer.model.model.layers[0].self_attn.k_proj.weight, before)
    assert tuned is not analyzer.model
    assert not torch.equal(tuned.model.layers[0].self_attn.k_proj.weight, before)


def test_task_route_reads_the_registered_task(analyzer):
    report = analyzer(task="rt_sentiment", n_demonstrations=2, n_queries=4, seed=1, n_bootstrap=20, learning_rate=0.1)
    config = report["config"]
    assert config["task"] == "rt_sentiment" and config["template"] == TEMPLATE
    assert len(report["labels"]) == 4 and len(config["demonstrations_used"]) == 2


def test_bad_calls(analyzer, tiny_tokenizer):
    with pytest.raises(TypeError, match="unknown analysis option"):
        analyzer(DEMOS, QUERIES, template=TEMPLATE, label_words=WORDS, learnig_rate=0.1)
    with pytest.raises(ValueError, match="label_words` is required"):
        analyzer(DEMOS, QUERIES, template=TEMPLATE)
    with pytest.raises(ValueError, match="learning_rate"):
        analyzer.finetune(DEMOS, template=TEMPLATE, label_words=WORDS, learning_rate=-1.0)
    with pytest.raises(TypeError, match="causal LM"):
        from transformers import GPT2Model

        pipeline("icl-analysis", model=GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=400)),
                 tokenizer=tiny_tokenizer)
