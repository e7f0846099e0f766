"""One behaviour from Python and the command line: each case runs through the pipeline and through `hf-metaopt analyze`.

Each row of CASES gives the same request twice: as pipeline keywords (the tiny model loaded from its
folder, as a user's local checkpoint) and as CLI flags over a data file holding the same kind of
rows. One check is then applied to both outcomes, so the two entry points cannot drift apart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hf_metaopt import cli

TEMPLATE = "Review: {text} Sentiment:"
GOOD = ["a gripping film", "beautifully acted", "the cast is great", "clever plot", "I loved it", "a joy"]
BAD = ["dull and overlong", "badly written", "a tedious mess", "nothing to say", "boring", "a waste"]
ROWS = [{"text": f"{t} {i}", "label": label} for i in range(3) for texts, label in ((GOOD, 1), (BAD, 0)) for t in texts]
FAST = {"n_bootstrap": 20, "stability_check": False, "learning_rate": 0.01}


def _tiny_llama(path: Path, tokenizer_dir: Path, context: int) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=context, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    LlamaForCausalLM(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_tokenizer_dir) -> dict[str, Path]:
    """Local checkpoints: one with room for the examples, one whose context holds a few, one that holds none."""
    root = tmp_path_factory.mktemp("behaviour_models")
    return {name: _tiny_llama(root / f"tiny_{name}", tiny_tokenizer_dir, context)
            for name, context in (("roomy", 1024), ("short", 48), ("tiny", 12))}


@pytest.fixture(scope="module")
def reviews_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("behaviour_data") / "reviews.csv"
    words = {0: "Negative", 1: "Positive"}
    path.write_text("text,label\n" + "".join(f"{r['text']},{words[r['label']]}\n" for r in ROWS))
    return path


@dataclass
class Outcome:
    """What an entry point did: refused (with its one-line message) or produced a report (and its card and markdown)."""

    entry: str
    error: str | None = None
    report: dict | None = None
    markdown: str = ""
    card: str = ""
    stderr: str = ""


@dataclass
class Case:
    name: str
    python: dict
    cli: list[str]
    check: Callable[[Outcome], None]
    model: str = "roomy"
    extra: dict = field(default_factory=dict)


def _card(report: dict) -> str:
    from hf_metaopt.analysis.report_card import render_analysis_card

    return str(render_analysis_card(report))


def run_python(case: Case, model_dir: Path, capsys) -> Outcome:
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    model = AutoModelForCausalLM.from_pretrained(model_dir)  # config._name_or_path is the local folder
    analyzer = pipeline("icl-analysis", model=model, tokenizer=AutoTokenizer.from_pretrained(model_dir))
    kwargs = {"template": TEMPLATE, "label_words": [" Negative", " Positive"], "progress": False, "n_queries": 4, **FAST,
              **case.python}
    demos, queries = kwargs.pop("demonstrations", ROWS[:6]), ROWS[-4:]
    capsys.readouterr()
    try:
        report = analyzer(demos, queries, **kwargs)
    except (ValueError, TypeError) as err:
        return Outcome("python", error=str(err), stderr=capsys.readouterr().err)
    data = json.loads(json.dumps(report.to_dict()))
    return Outcome("python", report=data, markdown=report.to_markdown(), card=_card(data), stderr=capsys.readouterr().err)


def run_cli(case: Case, model_dir: Path, data_file: Path, out: Path, capsys) -> Outcome:
    flags = {"--template": TEMPLATE, "--label-words": "Negative,Positive", "--n-queries": "4", "--n-bootstrap": "20",
             "--learning-rate": "0.01", "--n-demonstrations": "6"}
    argv = ["analyze", "--model", str(model_dir), "--data-file", str(data_file), "--output-dir", str(out),
            "--no-stability-check", *[x for k, v in flags.items() if k not in case.cli for x in (k, v)], *case.cli]
    if "--progress" not in case.cli:
        argv.append("--no-progress")
    capsys.readouterr()
    try:
        code = cli.main(argv)
    except SystemExit as stop:  # argparse refuses a malformed flag itself
        code = stop.code
    err = capsys.readouterr().err
    if code != 0:
        return Outcome("cli", error=err.strip().splitlines()[-1] if err.strip() else f"exit {code}", stderr=err)
    data = json.loads((out / "report.json").read_text())
    return Outcome("cli", report=data, markdown=(out / "report.md").read_text(), card=_card(data), stderr=err)


# ----------------------------------------------------------------------------- the checks


def refused(*phrases: str) -> Callable[[Outcome], None]:
    def check(outcome: Outcome) -> None:
        assert outcome.error is not None, f"{outcome.entry}: ran, but should have refused"
        for phrase in phrases:
            assert re.search(phrase, outcome.error), f"{outcome.entry}: {outcome.error!r} lacks {phrase!r}"
    return check


def label_words_spaced(outcome: Outcome) -> None:
    assert outcome.error is None, outcome.error
    assert outcome.report["config"]["label_words"] == [" Negative", " Positive"], outcome.entry


def context_note(outcome: Outcome) -> None:
    assert outcome.error is None, outcome.error
    notes = outcome.report["notes"]
    assert any("exceeded the model's context of 48 tokens: kept the first" in n for n in notes), (outcome.entry, notes)
    assert 0 < outcome.report["config"]["n_demonstrations"] < 6


def local_model_named_not_pathed(outcome: Outcome) -> None:
    assert outcome.error is None, outcome.error
    config = outcome.report["config"]
    assert config["model"] == "tiny_roomy" and config["model_id"] is None, (outcome.entry, config["model"])
    assert outcome.markdown.splitlines()[0].startswith("# ICL vs finetuning: tiny_roomy (local) on "), outcome.entry
    for text in (outcome.markdown, outcome.card, json.dumps(config)):
        assert "behaviour_models" not in text and "huggingface.co//" not in text, outcome.entry
    assert "https://huggingface.co/tiny_roomy" not in outcome.card and "base_model" not in outcome.card


def hub_id_given(outcome: Outcome) -> None:
    assert outcome.error is None, outcome.error
    assert outcome.report["config"]["model"] == outcome.report["config"]["model_id"] == "someone/tiny-llama"
    assert "[`someone/tiny-llama`](https://huggingface.co/someone/tiny-llama)" in outcome.card, outcome.entry
    assert "behaviour_models" not in outcome.markdown + outcome.card


def progress_shown(outcome: Outcome) -> None:
    assert outcome.error is None, outcome.error
    assert "analysis (finetuning steps + query batches)" in outcome.stderr, outcome.entry


def progress_hidden(outcome: Outcome) -> None:
    assert outcome.error is None, outcome.error
    assert "analysis (finetuning steps + query batches)" not in outcome.stderr, outcome.entry


CASES = [
    Case("label words without a leading space get one",
         {"label_words": ["Negative", "Positive"]}, ["--label-words", "Negative,Positive"], label_words_spaced),
    Case("more demonstrations asked for than exist: the same refusal",
         {"n_demonstrations": 50, "demonstrations": ROWS[:6]}, ["--n-demonstrations", "50"],
         refused(r"fewer than the 50 demonstrations asked for", r"n_demonstrations=\d+")),
    Case("more demonstrations than fit the context: the same note", {"demonstrations": ROWS[:6]}, [], context_note, model="short"),
    Case("not one demonstration fits: the same refusal", {}, [], refused(r"not even one demonstration fits the model's context of 12"),
         model="tiny"),
    Case("a local model is named by its folder, never its path", {}, [], local_model_named_not_pathed),
    Case("a Hub id given for a local model names it and links it",
         {"model_id": "someone/tiny-llama"}, ["--model-id", "someone/tiny-llama"], hub_id_given),
    Case("progress bars on", {"progress": True}, ["--progress"], progress_shown),
    Case("progress bars off", {"progress": False}, ["--no-progress"], progress_hidden),
    Case("a template field the examples lack", {"template": "Review: {txt} Sentiment:"}, ["--template", "Review: {txt} Sentiment:"],
         refused(r"lacks the (template field\(s\)|columns) \['txt'\]")),
    Case("a learning rate out of range", {"learning_rate": -1.0}, ["--learning-rate", "-1"],
         refused(r"(`learning_rate`|--learning-rate) must be a number > 0")),
    Case("a seed that is not an integer", {"seed": 1.5}, ["--seed", "1.5"], refused(r"(`seed` must be an integer|invalid int value)")),
    Case("an unknown option", {"learnig_rate": 0.1}, ["--learnig-rate", "0.1"],
         refused(r"(unknown analysis option|unrecognized arguments)")),
    Case("a malformed Hub id for model_id", {"model_id": "not a repo"}, ["--model-id", "not a repo"], refused(r"Hub id")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_python_and_cli_behave_the_same(case: Case, models, reviews_csv, tmp_path, capsys):
    outcomes = [run_python(case, models[case.model], capsys), run_cli(case, models[case.model], reviews_csv, tmp_path / "run", capsys)]
    for outcome in outcomes:
        case.check(outcome)
    assert (outcomes[0].error is None) == (outcomes[1].error is None)
