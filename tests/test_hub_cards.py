"""Cards and eval results, rendered locally (no Hub needed)."""

from __future__ import annotations

import pytest
from huggingface_hub import EvalResult, ModelCard
from hub_server import make_report
from transformers import GPT2Config, GPT2LMHeadModel

from hf_metaopt.hub import eval_results_from_report, merge_eval_results, render_analysis_card, write_model_card
from hf_metaopt.hub.cards import template_path


@pytest.fixture
def gpt2_dir(tmp_path):
    config = GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=400, n_positions=64, bos_token_id=0, eos_token_id=0)
    folder = tmp_path / "tiny-gpt2"
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def test_templates_ship_inside_the_package():
    for name in ("momentum_gpt.md", "icl_analysis.md"):
        path = template_path(name)
        assert path.parent.name == "model_cards"
        assert "{{ card_data }}" in path.read_text()


def test_checkpoint_card_metadata_and_body(gpt2_dir):
    readme = write_model_card(
        gpt2_dir,
        repo_id="alice/tiny-gpt2",
        base_model="openai-community/gpt2",
        datasets=["wikitext"],
        training_data="WikiText-103, 1M tokens.",
        training_settings={"optimizer": "Adam (0.9, 0.98)", "peak learning rate": 3e-4},
        perplexities={"valid@256": 19.37},
        baseline_perplexities={"valid@256": 19.5},
        license="mit",
    )
    assert readme == gpt2_dir / "README.md"
    assert not [p for p in gpt2_dir.iterdir() if p.name.startswith(".")]  # no temporary file left
    card = ModelCard.load(readme)
    assert card.data.library_name == "transformers"
    assert card.data.tags == ["hf-metaopt"]  # a plain GPT-2 is not a momentum model
    assert card.data.base_model == "openai-community/gpt2"
    assert card.data.datasets == ["wikitext"]
    assert card.data.license == "mit"
    assert "| valid@256 | 19.37 | 19.50 |" in card.text
    assert "| layers | 2 |" in card.text and "| hidden size | 32 |" in card.text
    assert 'from_pretrained("alice/tiny-gpt2")' in card.text
    assert "| optimizer | Adam (0.9, 0.98) |" in card.text
    assert "2212.10559" in card.text  # citation


def test_checkpoint_card_marks_momentum_models(gpt2_dir):
    import json

    config = json.loads((gpt2_dir / "config.json").read_text())
    config.update(model_type="momentum_gpt", momentum=0.5, auto_map={"AutoModelForCausalLM": "modeling_momentum_gpt.MomentumGPTForCausalLM"})
    (gpt2_dir / "config.json").write_text(json.dumps(config))
    (gpt2_dir / "modeling_momentum_gpt.py").write_text("# remote code\n")
    card = ModelCard.load(write_model_card(gpt2_dir, repo_id="alice/mgpt"))
    assert card.data.tags == ["hf-metaopt", "momentum-attention"]
    assert "eta = 0.5" in card.text
    assert 'from_pretrained("alice/mgpt", trust_remote_code=True)' in card.text
    assert "import hf_metaopt" in card.text


def test_checkpoint_card_rejects_bad_fields(gpt2_dir, tmp_path):
    with pytest.raises(TypeError, match="perplexitys"):
        write_model_card(gpt2_dir, perplexitys={"a": 1.0})
    with pytest.raises(ValueError, match=r"perplexities\['valid'\]"):
        write_model_card(gpt2_dir, perplexities={"valid": float("nan")})
    with pytest.raises(ValueError, match="base_model"):
        write_model_card(gpt2_dir, base_model=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="config.json"):
        write_model_card(tmp_path / "empty")
    assert not (gpt2_dir / "README.md").exists()


def test_eval_results_from_report():
    results = eval_results_from_report(make_report())
    by_name = {r.metric_name: r for r in results}
    assert set(by_name) == {
        "Accuracy (ZSL)", "Accuracy (ICL)", "Accuracy (FT)", "Rec2FTP", "SimAOU", "SimAOU, random-vector baseline",
        "SimAM before finetuning", "SimAM after finetuning", "SimAM delta (of the updates)", "Kendall",
        "Kendall, random-score baseline",
    }
    assert by_name["SimAM delta (of the updates)"].metric_value == 0.11
    assert by_name["SimAOU, random-vector baseline"].metric_value == 0.001
    assert by_name["Accuracy (ICL)"].metric_value == 0.75 and by_name["Accuracy (ICL)"].metric_config == "icl"
    assert by_name["SimAM after finetuning"].metric_value == 0.425
    assert by_name["Kendall"].metric_type == "kendall_tau"
    for r in results:  # the paper's sst2 is nyu-mll/glue (config sst2), validation split
        assert (r.dataset_type, r.dataset_config, r.dataset_split, r.dataset_name) == ("nyu-mll/glue", "sst2", "validation", "sst2")
        assert r.metric_args["seed"] == 1 and r.metric_args["method"] == "kv"


def test_eval_results_hold_the_untrained_control_and_example_level_kendall():
    """(Reported: the model-index held only the headline numbers.)"""
    report = make_report()
    report["kendall"]["example_level"] = {"mean": -0.2, "random_mean": 0.001}
    report["controls"] = {"untrained": {"accuracy": {"zsl": 0.5, "icl": 0.375, "ft": 0.5}, "rec2ftp": None,
                                        "simaou": {"mean": 0.3}, "simam": {"after": 0.1, "delta": 0.37}, "kendall": {"mean": 0.01}}}
    values = {(r.metric_type, r.metric_config): r.metric_value for r in eval_results_from_report(report)}
    assert values[("kendall_tau", "example_level")] == -0.2
    assert values[("kendall_tau", "example_level_random_baseline")] == 0.001
    assert values[("accuracy", "untrained_control_icl")] == 0.375
    assert values[("simaou", "untrained_control")] == 0.3
    assert values[("simam", "untrained_control_delta")] == 0.37
    assert values[("kendall_tau", "untrained_control")] == 0.01
    assert ("rec2ftp", "untrained_control") not in values  # undefined: left out
    names = [r.metric_name for r in eval_results_from_report(report)]
    assert "Accuracy (ICL), untrained control" in names and len(names) == len(set(names))
    parsed = ModelCard(str(render_analysis_card(report)))  # the Hub's model-index round-trips them
    assert parsed.data.eval_results == eval_results_from_report(report)


def test_eval_results_hold_change_recall_label_shift_and_top_k_recall_with_the_control():
    shift = lambda kl: {f"{m}_{pair}": {"mean": v * f, "ci95": [0.0, 1.0]} for pair, f in (("icl_ft", 1), ("icl_zsl", 2), ("ft_zsl", 3))  # noqa: E731
                        for m, v in (("kl", kl), ("tv", kl / 2))}
    recall = {"token_level": {"k": 100, "mean": 0.31, "random_mean": 0.19}, "example_level": {"k": 5, "mean": 0.6, "random_mean": 0.4}}
    report = make_report()
    report.update(change_recall=0.4, change_recall_counts={"changed": 5, "same_change": 2}, rec2ftp_counts={"ft_fixed": 5, "both_fixed": 4},
                  label_shift=shift(0.2), topk_recall=recall)
    report["controls"] = {"untrained": {"accuracy": {"zsl": 0.5, "icl": 0.5, "ft": 0.5}, "rec2ftp": 0.5,
                                        "rec2ftp_counts": {"ft_fixed": 2, "both_fixed": 1}, "change_recall": None,
                                        "label_shift": shift(0.02), "topk_recall": recall}}
    results = eval_results_from_report(report)
    values = {(r.metric_type, r.metric_config): r.metric_value for r in results}
    assert values[("change_recall", None)] == 0.4
    assert values[("kl_divergence", "icl_ft")] == 0.2 and values[("kl_divergence", "ft_zsl")] == pytest.approx(0.6)
    assert values[("total_variation", "icl_zsl")] == 0.2
    assert values[("kl_divergence", "untrained_control_icl_ft")] == 0.02
    assert values[("topk_recall", "token_level")] == 0.31 and values[("topk_recall", "example_level_random_baseline")] == 0.4
    assert values[("topk_recall", "untrained_control_example_level")] == 0.6
    assert ("change_recall", "untrained_control") not in values  # undefined: left out
    names = [r.metric_name for r in results]
    assert "KL(ICL ‖ FT) of the label distributions, untrained control" in names and len(names) == len(set(names))
    card = render_analysis_card(report)
    assert ModelCard(str(card)).data.eval_results == results
    text = card.text
    assert "| Rec2FTP | 0.800 (4 of 5) | [0.500, 1.000] |  |" in text  # the counts beside the ratio
    assert "| ChangeRecall (Deutch et al.) | 0.400 (2 of 5) |" in text
    assert "| KL(ICL ‖ FT) of the label distributions | 0.200 | [0.000, 1.000] | shift from ZSL: ICL 0.400, FT 0.600 |" in text
    assert "| Rec2FTP | 0.500 (1 of 2) |" in text and "| ChangeRecall | n/a |" in text  # the control's table


def test_eval_results_skip_missing_rec2ftp_and_use_config_dataset():
    report = make_report(task="rt-offline", rec2ftp=None)
    report["config"].update(dataset="cornell-movie-review-data/rotten_tomatoes", dataset_split="test")
    results = eval_results_from_report(report)
    assert "Rec2FTP" not in {r.metric_name for r in results}
    assert {(r.dataset_type, r.dataset_split) for r in results} == {("cornell-movie-review-data/rotten_tomatoes", "test")}
    with pytest.raises(ValueError, match="'config'"):
        eval_results_from_report({"accuracy": {}})
    with pytest.raises(TypeError, match="ICLAnalysisReport"):
        eval_results_from_report([1, 2])


def test_analysis_card_round_trips_eval_results_and_embeds_plots():
    report = make_report()
    card = render_analysis_card(report, plots=["simaou_per_layer.png"])
    parsed = ModelCard(str(card))
    assert parsed.data.eval_results == eval_results_from_report(report)
    assert parsed.data.tags == ["hf-metaopt", "icl-analysis"]
    assert parsed.data.base_model == "alice/tiny-gpt2"
    assert parsed.data.model_name == "alice/tiny-gpt2"
    text = parsed.text
    assert "| Accuracy (ICL) | 75.0% | [62.5%, 87.5%] | 50.0% (chance) |" in text
    assert "| SimAOU | 0.150 | [0.100, 0.200] | random vector 0.001 |" in text
    assert "| Kendall (token level) | 0.190 | [0.150, 0.230] | random scores 0.000 |" in text
    assert "![simaou per layer](simaou_per_layer.png)" in text
    assert "| template | `\"Sentence: {text} Label:\"` |" in text
    assert "synthetic report for the Hub tests" in text


def test_analysis_card_of_a_local_model_has_no_base_model():
    # A 0.1 report recorded the local path as the model: the card names the folder, marked local, and links nothing.
    text = str(render_analysis_card(make_report(model="/tmp")))
    card = ModelCard(text)
    assert card.data.base_model is None and card.data.model_name == "tmp (local)"
    assert "/tmp" not in text.replace("tmp (local)", "") and "huggingface.co//" not in text


def test_merge_eval_results_keeps_the_body_and_other_metadata():
    body = "\n# Owner's model\n\nHand-written text | with pipes\n---\nand a rule.\n"
    original = "---\nlicense: mit\ntags:\n- owner-tag\n---\n" + body
    old = EvalResult(task_type="text-classification", dataset_type="nyu-mll/glue", dataset_name="sst2",
                     metric_type="accuracy", metric_value=0.1, metric_config="icl", metric_name="Accuracy (ICL)",
                     task_name="In-context learning vs finetuning (sst2)", dataset_config="sst2", dataset_split="validation",
                     metric_args={"method": "kv", "position": "prediction", "learning_rate": 0.001, "seed": 1, "n_demonstrations": 4})
    other = EvalResult(task_type="text-generation", dataset_type="wikitext", dataset_name="wikitext",
                       metric_type="perplexity", metric_value=20.0)
    seeded = merge_eval_results(original, [old, other], "alice/owner-model")
    merged = merge_eval_results(seeded, eval_results_from_report(make_report()), "ignored")
    card = ModelCard(merged)
    assert card.text == body
    assert merged.endswith(body)
    assert card.data.license == "mit" and card.data.tags == ["owner-tag"]
    assert card.data.model_name == "alice/owner-model"
    values = {(r.metric_type, r.metric_config): r.metric_value for r in card.data.eval_results}
    assert values[("accuracy", "icl")] == 0.75  # replaced, not duplicated
    assert values[("perplexity", None)] == 20.0  # the owner's own result is kept
    assert len(card.data.eval_results) == 1 + len(eval_results_from_report(make_report()))


def test_checkpoint_card_takes_a_description_and_eval_results(gpt2_dir):
    perplexity = {"task_type": "text-generation", "dataset_name": "wikitext", "dataset_type": "validation",
                  "metric_type": "perplexity", "metric_name": "perplexity@64", "metric_value": 42.5}
    card = ModelCard.load(write_model_card(gpt2_dir, model_name="gpt-seed1", description="## Run\n\n- 10 steps",
                                           tags=["hf-metaopt", "causal-lm"], eval_results=[perplexity]))
    assert "## Run\n\n- 10 steps" in card.text
    assert card.data.tags == ["hf-metaopt", "causal-lm"]
    assert card.data.model_name == "gpt-seed1"
    assert [(r.metric_name, r.metric_value) for r in card.data.eval_results] == [("perplexity@64", 42.5)]
    with pytest.raises(TypeError, match=r"eval_results\[0\]"):
        write_model_card(gpt2_dir, eval_results=[{"metric_value": 1.0}])


@pytest.mark.parametrize("corpus, config, dataset_type, datasets", [
    ("Skylion007/openwebtext", None, "Skylion007/openwebtext", ["Skylion007/openwebtext"]),
    ("wikitext", "wikitext-103-raw-v1", "wikitext", ["wikitext"]),
    ("offline", None, "hf-metaopt-offline", None),
])
def test_pretraining_card_names_the_corpus_and_puts_perplexity_in_the_model_index(corpus, config, dataset_type, datasets, gpt2_dir):
    """(Reported: the pretraining card listed ``validation`` as the dataset type.)"""
    from transformers import TrainingArguments

    from hf_metaopt.pretraining.cards import card_fields

    context = {"arm": "gpt", "momentum": 0.0, "seed": 0, "corpus": f"{corpus} described", "corpus_id": corpus,
               "corpus_config": config, "model_args": {"dropout": 0.0}, "block_size": 32}
    results = {"perplexity": [{"requested_context": 32, "context": 32, "capped": False, "perplexity": 41.5}],
               "icl": [], "tokens_per_second": 1.0}
    fields = card_fields(context, TrainingArguments(output_dir="unused", report_to="none"), [], results)
    card = ModelCard.load(write_model_card(gpt2_dir, **fields))
    (result,) = card.data.eval_results
    assert (result.dataset_type, result.dataset_config, result.dataset_split) == (dataset_type, config, "validation")
    assert (result.metric_type, result.metric_name, result.metric_value) == ("perplexity", "perplexity@32", 41.5)
    assert card.data.datasets == datasets
