"""Bad inputs of ``hf-metaopt sweep``, ``pretrain`` and ``push`` (issue 20), through the real CLI entry point.

:data:`CASES` is the second table README.md shows under "What a bad input gets" and
:data:`PUSH_CASES` the list under "The Hub" (print both with ``python
tests/test_cli_reliability_more.py``). Each case runs ``cli.main`` in a folder holding the
files it names and checks the exit code, that stderr holds the message on one line without a
traceback, that no model was loaded, and what was left on disk or sent to the loopback Hub.
The valid inputs that used to be refused or misread (JSON Lines with U+2028, numeric label
words, odd model folder names in a sweep) are checked after the table.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hub_server import HUB_TOKEN, hub, make_run_dir  # noqa: F401  (hub is a fixture)

from hf_metaopt import cli

ROOT = Path(__file__).resolve().parents[1]
TINY_SWEEP = ROOT / "tests" / "configs" / "sweep_tiny.yaml"


@dataclass(frozen=True)
class Case:
    """One row: what was tried, the command after ``hf-metaopt``, the exit code and a fragment of the error line."""

    name: str
    what: str
    argv: tuple[str, ...]
    code: int
    message: str


CASES = [
    Case("sweep-empty", "an empty sweep config (reported: it ran the whole default grid)", ("sweep", "--config", "empty.yaml"), 2,
         "--config: 'empty.yaml' is empty; a sweep config names its grid"),
    Case("sweep-gridless", "a sweep config that names no grid list", ("sweep", "--config", "gridless.yaml"), 2,
         "sets none of the grid's lists (models, tasks, seeds, learning_rates, methods, controls, balanced, permutations)"),
    Case("sweep-lr-inf", "an infinite learning rate in a sweep (reported: it failed after the weights loaded)",
         ("sweep", "--config", "lr-inf.yaml"), 2, "`learning_rates`: `learning_rate` must be a number > 0 and <= 10000, finite"),
    Case("pretrain-lr-inf", "an infinite learning rate for pretraining", ("pretrain", "--output_dir", "out", "--learning_rate", "inf"), 2,
         "`learning_rate` must be a number > 0 and <= 10000, finite (e.g. 1e-3); got inf."),
    Case("pretrain-lr-huge", "a learning rate that overflows the optimizer", ("pretrain", "--output_dir", "out", "--learning_rate", "1e308"), 2,
         "`learning_rate` must be a number > 0 and <= 10000, finite (e.g. 1e-3); got 1e+308."),
    Case("sweep-yaml-broken", "a sweep config that is not valid YAML (reported: a yaml.parser traceback)",
         ("sweep", "--config", "unclosed.yaml"), 2, "--config: 'unclosed.yaml' is not valid YAML at line 3, column 1: expected ',' or ']'"),
    Case("sweep-yaml-tag", "a sweep config with a !!python/object/apply tag (reported: a ConstructorError traceback)",
         ("sweep", "--config", "tag.yaml"), 2, "--config: 'tag.yaml' at line 1, column 9 uses a YAML tag that is not a plain value"),
    Case("sweep-dtype-float64", "a sweep dtype outside the flag's choices (reported: it ran in float64)",
         ("sweep", "--config", "float64.yaml"), 2,
         "--config 'float64.yaml': `dtype` is 'float64', not one of its choices (float32, bfloat16, float16, auto)."),
    Case("sweep-dtype-banana", "a sweep dtype that is no dtype (reported: an AttributeError from torch)",
         ("sweep", "--config", "banana.yaml"), 2, "`dtype` is 'banana', not one of its choices (float32, bfloat16, float16, auto)."),
    Case("sweep-seeds-scalar", "a grid list given as one value (reported: 'int' object is not iterable)",
         ("sweep", "--config", "seeds-scalar.yaml"), 2, "--config 'seeds-scalar.yaml': `seeds` must be a list of integers (e.g. seeds: [1]); got 1."),
    Case("sweep-output-int", "a number where a folder name belongs (reported: expected str, bytes or os.PathLike)",
         ("sweep", "--config", "output-int.yaml"), 2,
         "`output_dir` must be a string; got 5 (int); quote it to make it a string (output_dir: '5')."),
    Case("sweep-report-list", "a finished run's report.json replaced by [1,2] (reported: an AttributeError)",
         ("sweep", "--config", "done.yaml", "--output_dir", "sw-list"), 2,
         "sw-list/ck/rt_sentiment/kv-lr0.01-none/seed-1/report.json holds a JSON list, not a run report; "
         "delete the folder sw-list/ck/rt_sentiment/kv-lr0.01-none/seed-1 to rerun that job."),
    Case("sweep-report-empty", "a finished run's report.json emptied (reported: a JSON error naming no file)",
         ("sweep", "--config", "done.yaml", "--output_dir", "sw-empty"), 2,
         "sw-empty/ck/rt_sentiment/kv-lr0.01-none/seed-1/report.json is empty; "
         "delete the folder sw-empty/ck/rt_sentiment/kv-lr0.01-none/seed-1 to rerun that job."),
    Case("sweep-settings-changed", "a changed option on a sweep folder that holds finished runs (reported: the message named no setting)",
         ("sweep", "--config", "done.yaml", "--output_dir", "sw-done", "--n_queries", "5"), 2,
         "sw-done/ck/rt_sentiment/kv-lr0.01-none/seed-1 holds a run with other settings than this sweep's grid point "
         "(n_queries 4 in the folder, 5 now); choose another output_dir (or move that folder away)."),
    Case("pretrain-heads-0", "no attention heads (reported: ZeroDivisionError)", ("pretrain", "--output_dir", "runs/pt", "--num_attention_heads", "0"), 2,
         "num_attention_heads: must be a positive integer; got 0. Pass --num_attention_heads with a value >= 1"),
    Case("pretrain-width-0", "a model of width 0 (reported: StrictDataclassFieldValidationError, runs/pt/tokenizer left behind)",
         ("pretrain", "--output_dir", "runs/pt", "--hidden_size", "0"), 2, "hidden_size: must be a positive integer; got 0."),
    Case("pretrain-layers-0", "a model of no layers (reported: as above)", ("pretrain", "--output_dir", "runs/pt", "--num_hidden_layers", "0"), 2,
         "num_hidden_layers: must be a positive integer; got 0."),
    Case("pretrain-warmup", "as many warm-up steps as steps, polynomial decay (reported: ZeroDivisionError from transformers)",
         ("pretrain", "--output_dir", "runs/pt", "--max_steps", "6", "--warmup_steps", "6", "--lr_scheduler_type", "polynomial"), 2,
         "warmup_steps: 6 warm-up steps leave none of max_steps=6 for the polynomial schedule's decay; lower --warmup_steps or raise --max_steps"),
    Case("pretrain-batch-0", "a batch size of 0 (reported: a tokenizer and an empty arm folder left behind)",
         ("pretrain", "--output_dir", "runs/pt", "--per_device_train_batch_size", "0"), 2,
         "per_device_train_batch_size: must be a positive integer; got 0."),
    Case("pretrain-seeds-empty", "an empty list of seeds (reported: it silently ran seed 42)", ("pretrain", "--config", "seeds-empty.yaml"), 2,
         "--config 'seeds-empty.yaml': `seeds` is an empty list; give at least one value or leave the key out for its default."),
    Case("pretrain-momentum-scalar", "one momentum value where a list belongs", ("pretrain", "--config", "momentum-scalar.yaml"), 2,
         "--config 'momentum-scalar.yaml': `momentum` must be a list of numbers (e.g. momentum: [0.5]); got 0.5."),
    Case("pretrain-settings-changed", "a rerun into a pretraining folder made with other settings (reported: it reused the old arms and tokenizer)",
         ("pretrain", "--output_dir", "pt-done", "--hidden_size", "64", "--tokenizer_vocab_size", "400", "--max_steps", "5"), 2,
         "pt-done holds runs made with other settings (hidden_size 32 -> 64, tokenizer_vocab_size 300 -> 400, max_steps 3 -> 5); "
         "its finished arms and tokenizer would be reused as they are: choose another --output_dir, or delete the folder pt-done to start over."),
]

PUSH_CASES = [
    Case("push-link-checkpoint", "a checkpoint holding a link to a file outside it (reported: /etc/passwd was uploaded)",
         ("push", "ck", "--repo-id", "alice/ck"), 2,
         "ck/passwd is a link to /etc/passwd, outside ck; nothing was pushed (files outside the pushed folder are never uploaded)"),
    Case("push-link-plot", "a run folder whose plot is a link outside it", ("push", "run-png", "--repo-id", "alice/reports"), 2,
         "run-png/extra.png is a link to /etc/passwd, outside run-png; nothing was pushed"),
    Case("push-link-report", "a run folder whose report.md is a link outside it", ("push", "run-md", "--repo-id", "alice/reports"), 2,
         "run-md/report.md is a link to /etc/hostname, outside run-md; nothing was pushed"),
    Case("push-link-folder", "a checkpoint holding a link through a linked folder outside it", ("push", "ck-dir", "--repo-id", "alice/ck"), 2,
         "ck-dir/shadow.json is a link to /etc/hostname, outside ck-dir; nothing was pushed"),
]


def _code(text: str) -> str:
    text = text.replace("|", "\\|")
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def render_table(cases: list[Case] = CASES) -> str:
    """The Markdown table of ``cases`` that README.md shows under "What a bad input gets"."""
    lines = ["| What was tried | Command | Exit | stderr says (one line) |", "|---|---|---|---|"]
    lines += [f"| {c.what} | {_code('hf-metaopt ' + shlex.join(c.argv))} | {c.code} | {_code(c.message)} |" for c in cases]
    return "\n".join(lines) + "\n"


def render_list(cases: list[Case] = PUSH_CASES) -> str:
    """The list of ``cases`` that README.md shows under "The Hub"."""
    return "".join(f"- {c.what}: {_code('hf-metaopt ' + shlex.join(c.argv))} exits {c.code} with {_code(c.message)}\n" for c in cases)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny GPT-2 checkpoint folder (safetensors)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("ckpt") / "ck"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64, n_positions=32)).save_pretrained(folder)
    return folder


@pytest.fixture
def workdir(tmp_path, monkeypatch, checkpoint):
    """The folder a case runs in: the configs, checkpoints and run folders the cases name."""
    import shutil

    from hf_metaopt.sweep import runner

    work = tmp_path / "work"
    work.mkdir()
    (work / "empty.yaml").write_text("")
    (work / "gridless.yaml").write_text("n_queries: 4\n")
    (work / "lr-inf.yaml").write_text("models: [gemma3]\ntasks: [rt_sentiment]\nlearning_rates: [.inf]\n")
    grid = "models: [gemma3]\ntasks: [rt_sentiment]\n"
    (work / "unclosed.yaml").write_text("models: [gemma3]\nkey: [unclosed\n")
    (work / "tag.yaml").write_text('models: !!python/object/apply:os.system ["echo hi"]\n')
    (work / "float64.yaml").write_text(grid + "dtype: float64\n")
    (work / "banana.yaml").write_text(grid + "dtype: banana\n")
    (work / "seeds-scalar.yaml").write_text(grid + "seeds: 1\n")
    (work / "output-int.yaml").write_text(grid + "output_dir: 5\n")
    (work / "seeds-empty.yaml").write_text("output_dir: runs/pt\nseeds: []\n")
    (work / "momentum-scalar.yaml").write_text("output_dir: runs/pt\nmomentum: 0.5\n")
    from hf_metaopt.fileio import atomic_write_json
    from hf_metaopt.pretraining import arguments as pretraining_arguments
    from hf_metaopt.pretraining import experiment

    made = pretraining_arguments.parse_args(["--output_dir", "pt-done", "--hidden_size", "32", "--tokenizer_vocab_size", "300",
                                             "--max_steps", "3"])
    atomic_write_json(work / "pt-done" / experiment.SETTINGS_FILE, experiment.run_settings(*made))
    (work / "done.yaml").write_text("models: [ck]\ntasks: [rt_sentiment]\nseeds: [1]\nn_demonstrations: 2\nn_queries: 4\n")
    from hf_metaopt.analysis.options import AnalysisOptions
    from hf_metaopt.sweep import SweepArguments
    from hf_metaopt.sweep.grid import Job

    record = Job("ck", "ck", "rt_sentiment", AnalysisOptions(n_demonstrations=2, n_queries=4, seed=1)).record(SweepArguments().dtype)
    for name, text in (("sw-list", "[1,2]"), ("sw-empty", ""), ("sw-done", json.dumps({"sweep": record}))):
        finished = work / name / "ck" / "rt_sentiment" / "kv-lr0.01-none" / "seed-1"
        finished.mkdir(parents=True)
        (finished / "report.json").write_text(text)
    shutil.copytree(checkpoint, work / "ck")
    (work / "ck" / "passwd").symlink_to("/etc/passwd")
    shutil.copytree(checkpoint, work / "ck-dir")
    (work / "ck-dir" / "extra").symlink_to("/etc", target_is_directory=True)
    (work / "ck-dir" / "shadow.json").symlink_to("extra/hostname")  # a link inside, through a linked folder outside
    (make_run_dir(work / "run-png") / "extra.png").symlink_to("/etc/passwd")
    run_md = make_run_dir(work / "run-md")
    (run_md / "report.md").unlink()
    (run_md / "report.md").symlink_to("/etc/hostname")
    monkeypatch.setattr(runner, "load_model", lambda *a, **k: pytest.fail("a model loaded before validation"))
    monkeypatch.chdir(work)
    return work


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("case", CASES + PUSH_CASES, ids=[c.name for c in CASES + PUSH_CASES])
def test_bad_input(case, workdir, hub, capsys):
    before = _listing(workdir)
    code = cli.main(list(case.argv))
    err = capsys.readouterr().err
    assert code == case.code, err
    assert case.message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert _listing(workdir) == before, "nothing written: no run folder, no output_dir"
    assert hub.count("create") == 0 and hub.count("commit") == 0 and not hub.state.repos.get(case.argv[-1])


def test_readme_shows_the_tables():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### What a bad input gets\n", 1)[1].split("\n#", 1)[0]
    assert render_table() in section
    hub_section = readme.split("### The Hub\n", 1)[1].split("\n#", 1)[0]
    assert render_list() in hub_section


# --------------------------------------------------------------------------- what is uploaded


def test_a_link_inside_the_folder_is_followed_and_nothing_else_leaves(hub, checkpoint, tmp_path, capsys):
    folder = tmp_path / "ck"
    import shutil

    shutil.copytree(checkpoint, folder)
    (folder / "sub").mkdir()
    (folder / "sub" / "alias.json").symlink_to("../config.json")
    assert cli.main(["push", str(folder), "--repo-id", "alice/inside"]) == 0, capsys.readouterr().err
    assert hub.file("alice/inside", "sub/alias.json") == (folder / "config.json").read_bytes()
    system = {Path(p).read_bytes() for p in ("/etc/passwd", "/etc/hostname") if Path(p).is_file()}
    stored = [p.read_bytes() for p in hub.state.root.rglob("*") if p.is_file()]
    assert not system & set(stored)


# --------------------------------------------------------------------------- the Hub token of pretraining


def test_the_hub_token_is_in_no_file_pretraining_writes(hub, tmp_path, tiny_tokenizer_dir, capsys):
    from test_pretrain import tiny_argv, word_corpus

    corpus = word_corpus(tmp_path / "corpus")
    out = tmp_path / "run"
    argv = tiny_argv(out, corpus, tiny_tokenizer_dir, "--max_steps", "2", "--save_steps", "1", "--eval_steps", "1",
                     "--push_to_hub", "--hub_repo_prefix", "alice/tok", "--hub_token", HUB_TOKEN)
    assert cli.main(["pretrain", *argv]) == 0
    written = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "training_args.bin" for p in written)  # Trainer's pickle of its arguments
    assert {"README.md", "model.safetensors"} <= set(hub.files("alice/tok-gpt"))
    secret = HUB_TOKEN.encode()
    leaked = [p for p in written + [p for p in hub.state.root.rglob("*") if p.is_file()] if secret in p.read_bytes()]
    assert not leaked
    seen = capsys.readouterr()
    assert HUB_TOKEN not in seen.out + seen.err


# --------------------------------------------------------------------------- a pretraining folder keeps its settings


def test_a_pretraining_rerun_reuses_its_arms_only_with_the_same_settings(tmp_path, tiny_tokenizer_dir, capsys):
    from test_pretrain import tiny_argv, word_corpus

    corpus = word_corpus(tmp_path / "corpus")
    out = tmp_path / "run"
    steps = ("--save_steps", "1", "--eval_steps", "1")
    assert cli.main(["pretrain", *tiny_argv(out, corpus, tiny_tokenizer_dir, "--max_steps", "2", *steps)]) == 0
    results = sorted(out.glob("*/results.json"))
    before = [p.read_bytes() for p in results]
    capsys.readouterr()
    changed = tiny_argv(out, corpus, tiny_tokenizer_dir, "--max_steps", "3", *steps, "--hidden_size", "64")
    assert cli.main(["pretrain", *changed]) == 2
    err = capsys.readouterr().err
    assert f"{out} holds runs made with other settings (hidden_size 32 -> 64, max_steps 2 -> 3)" in err
    assert len(err.strip().splitlines()) == 1
    # The same settings (and a new eta, which only adds an arm) reuse the finished arms.
    again = tiny_argv(out, corpus, tiny_tokenizer_dir, "--max_steps", "2", *steps)
    assert cli.main(["pretrain", *again]) == 0
    assert [p.read_bytes() for p in results] == before


# --------------------------------------------------------------------------- sweep run folders stay below output_dir


@pytest.mark.parametrize("how", ["dotdot", "dot"])
def test_sweep_run_folders_stay_below_output_dir(how, tmp_path, monkeypatch, checkpoint, tiny_tokenizer_dir):
    import shutil

    from transformers import AutoTokenizer

    from hf_metaopt.sweep import parse_args, plan_sweep

    model = tmp_path / "models" / "tiny-model"
    shutil.copytree(checkpoint, model)
    AutoTokenizer.from_pretrained(tiny_tokenizer_dir).save_pretrained(model)
    (model / "sub").mkdir()
    monkeypatch.chdir(model if how == "dot" else tmp_path)
    name = "." if how == "dot" else str(model / "sub" / "..")
    args, shared = parse_args(["--config", str(TINY_SWEEP), "--models", name, "--output_dir", str(tmp_path / "runs" / "sw")])
    plan = plan_sweep(args, shared)  # before any model loads
    out = (tmp_path / "runs" / "sw").resolve()
    for job in plan.jobs:
        assert job.relative_path.parts[0] == "tiny-model"
        assert plan.path(job).resolve().is_relative_to(out) and plan.path(job).resolve().parent.parent.parent.parent == out


def test_a_model_label_is_never_empty_or_dots(monkeypatch):
    from hf_metaopt.loading import ModelArguments, model_label

    monkeypatch.chdir("/")
    assert model_label(ModelArguments(model="/")) == "model"
    assert model_label(ModelArguments(model=".")) == "model"


# --------------------------------------------------------------------------- valid data that was refused or misread


def _reviews() -> list[tuple[str, int]]:
    good = ["a gripping film", "beautifully acted", "clever plot", "a joy"]
    bad = ["dull and overlong", "badly written", "a tedious mess", "boring"]
    return [(f"{t} {i}", y) for i in range(3) for t, y in [(g, 1) for g in good] + [(b, 0) for b in bad]]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tiny_tokenizer_dir):
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model") / "tiny-model"
    LlamaForCausalLM(LlamaConfig(vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=2, max_position_embeddings=1024, bos_token_id=0, eos_token_id=0,
                                 pad_token_id=0)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_tokenizer_dir).save_pretrained(folder)
    return folder


def _analyze(model, data, words, *flags) -> list[str]:
    return ["analyze", "--model", str(model), "--data-file", str(data), "--template", "Review: {text} Sentiment:",
            "--label-words", words, "--n-demonstrations", "2", "--n-queries", "3", "--output-dir", "runs/x", "--no-progress",
            "--no-stability-check", *flags]


def test_json_lines_with_a_raw_line_separator_inside_a_string(tiny_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = [json.dumps({"text": f"{t}\u2028second line\u0085\x1c\x0c", "label": y}, ensure_ascii=False) for t, y in _reviews()]
    (tmp_path / "reviews.jsonl").write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    assert cli.main(_analyze(tiny_model, "reviews.jsonl", "Negative,Positive")) == 0
    report = json.loads((tmp_path / "runs" / "x" / "report.json").read_text())
    assert report["config"]["task"] == "reviews"


def test_numeric_label_words_mean_the_words_when_told(tmp_path):
    """(The tests' tokenizer splits " 1" into a space and "1", so the CLI refuses these words; tasks.from_files reads them.)"""
    from hf_metaopt import tasks

    (tmp_path / "stars.csv").write_text("text,label\n" + "".join(f"{t},{y + 1}\n" for t, y in _reviews()))
    with pytest.raises(ValueError, match="are both label words and 0-based indices"):
        tasks.from_files(tmp_path / "stars.csv", template="{text}", label_words="1,2,3")
    spec = tasks.from_files(tmp_path / "stars.csv", template="{text}", label_words="1,2,3", label_values="words")
    data = spec.load()
    rows = data["train"].to_list() + data["dev"].to_list() + data["test"].to_list()
    by_text = {t: y for t, y in _reviews()}
    assert all(spec.label_words[r["label"]] == f" {by_text[r['text']] + 1}" for r in rows)  # "1" is " 1", not " 2"
    # Label 5 exists only as a word: read as words without being asked.
    (tmp_path / "five.csv").write_text("text,label\n" + "".join(f"{t},{5 if y else 1}\n" for t, y in _reviews()))
    spec = tasks.from_files(tmp_path / "five.csv", template="{text}", label_words="1,2,3,4,5")
    assert sorted({r["label"] for r in spec.load()["train"].to_list()}) == [0, 4]


# --------------------------------------------------------------------------- the sweep's implied null control


def test_a_sweep_with_null_and_untrained_controls_runs_the_pretrained_analysis_once(tiny_model, tmp_path, capsys):
    """(Reported: ``controls: [null, untrained]`` ran the pretrained analysis twice, with identical reports.)"""
    out = tmp_path / "sw"
    argv = ["sweep", "--config", str(TINY_SWEEP), "--models", str(tiny_model), "--seeds", "1", "--output_dir", str(out)]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "note: controls: [null, untrained] runs the pretrained analysis once" in err
    assert [p.parent.parent.name for p in out.rglob("report.json")] == ["kv-lr0.01-untrained"]
    summary = json.loads((out / "summary.json").read_text())
    assert [g["control"] for g in summary["groups"]] == ["untrained"]


# --------------------------------------------------------------------------- how a single data file is split


def _eight_rows(folder: Path) -> Path:
    (folder / "eight.csv").write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in _reviews()[:8]))
    return folder / "eight.csv"


def test_a_data_file_split_is_printed_and_set_by_test_size(tiny_model, tmp_path, monkeypatch, capsys):
    """(Reported: an 8-row CSV silently kept 20% of its rows, one query.)"""
    monkeypatch.chdir(tmp_path)
    _eight_rows(tmp_path)
    assert cli.main(_analyze(tiny_model, "eight.csv", "Negative,Positive", "--n-queries", "4", "--test-size", "4")) == 0
    err = capsys.readouterr().err
    assert "data eight.csv: 3 train rows (the 2 demonstrations are drawn from them), 1 dev, 4 test; 4 test rows are the queries" in err
    report = json.loads((tmp_path / "runs" / "x" / "report.json").read_text())
    assert len(report["labels"]) == 4
    assert cli.main(_analyze(tiny_model, "eight.csv", "Negative,Positive", "--output-dir", "runs/y", "--test-size", "0.5")) == 0
    assert "3 test rows are the queries" in capsys.readouterr().err  # 4 test rows, --n-queries 3


@pytest.mark.parametrize("size,message", [
    ("0", "--test-size 0 of the 8 labelled rows of 'eight.csv' leaves no query; pass a larger fraction or a count of rows"),
    ("0.1", "--test-size 0.1 of the 8 labelled rows of 'eight.csv' leaves no query"),
    ("2.5", "--test-size must be a fraction below 1 (e.g. 0.25) or a whole count of rows (e.g. 4); got 2.5."),
])
def test_a_data_file_split_that_leaves_no_query_is_refused(size, message, tiny_model, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _eight_rows(tmp_path)
    assert cli.main(_analyze(tiny_model, "eight.csv", "Negative,Positive", "--test-size", size)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------- an interrupted sweep keeps its finished runs


def test_a_sweep_stopped_by_sigterm_says_how_many_finished_runs_it_keeps(tiny_model, tmp_path, monkeypatch, capsys):
    import os
    import signal

    from hf_metaopt.sweep import runner

    real, calls = runner.analyze_task, []

    def second_job_terminated(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # a scheduler's time limit, during the second job
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "analyze_task", second_job_terminated)
    out = tmp_path / "sw"
    argv = ["sweep", "--config", str(TINY_SWEEP), "--models", str(tiny_model), "--controls", "none", "--output_dir", str(out)]
    assert cli.main(argv) == 143
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"hf-metaopt sweep: terminated (SIGTERM); 1 of 2 runs are finished and kept in {out} "
                   "(the unfinished one left nothing); rerun the same command to resume with the others.")
    assert [p.parent.name for p in out.rglob("report.json")] == ["seed-1"]
    assert not [p for p in out.rglob(".*")], "no lock or temporary folder of the stopped job"


# --------------------------------------------------------------------------- the pipeline's examples and label words

PIPELINE_CASES = [
    ("none-text", "a demonstration whose text is None (reported: the word 'None' in the prompt)",
     {"demonstrations": [{"text": None, "label": 0}, {"text": "a joy", "label": 1}]},
     "`demonstrations[0]['text']` is None, a missing value the template would print as the word 'None'; "
     "give that example a text or leave it out."),
    ("nan-query", "a query whose text is NaN (a missing value read by pandas)",
     {"queries": [{"text": "fine", "label": 1}, {"text": float("nan"), "label": 0}]},
     "`queries[1]['text']` is nan, a missing value the template would print as the word 'nan'"),
]


def _pipeline(model_dir):
    from transformers import pipeline

    import hf_metaopt  # noqa: F401  (registers icl-analysis)

    return pipeline("icl-analysis", model=str(model_dir), device="cpu")


def _pipeline_call(**changes) -> dict:
    reviews = [{"text": t, "label": y} for t, y in _reviews()]
    call = {"demonstrations": reviews[:4], "queries": reviews[4:7], "template": "Review: {text} Sentiment:",
            "label_words": [" Negative", " Positive"], "n_bootstrap": 10, "stability_check": False}
    return {**call, **changes}


@pytest.mark.parametrize("name,what,changes,message", PIPELINE_CASES, ids=[c[0] for c in PIPELINE_CASES])
def test_pipeline_refuses_missing_texts(name, what, changes, message, tiny_model):
    with pytest.raises(ValueError) as caught:
        _pipeline(tiny_model)(**_pipeline_call(**changes))
    assert message in str(caught.value)


def test_pipeline_reads_a_comma_separated_label_words_string_as_the_cli_does(tiny_model):
    """(Reported: ``label_words="Negative,Positive"`` was split into its characters.)"""
    report = _pipeline(tiny_model)(**_pipeline_call(label_words="Negative,Positive"))
    assert report["config"]["label_words"] == [" Negative", " Positive"]


if __name__ == "__main__":
    sys.stdout.write(render_table() + "\n" + render_list())
