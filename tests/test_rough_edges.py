"""Issue 20, item 13: what ``--help``, ``tasks list``, report.md and the Hub card show.

Each case renders the text a user reads and checks it says one thing, once, in one way.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hub_server import make_report
from test_report import synthetic_report

from hf_metaopt import cli

ROOT = Path(__file__).resolve().parents[1]
TITLE = "Why Can {GPT} Learn In-Context? Language Models Implicitly Perform Gradient Descent as Meta-Optimizers"


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit):
        cli.main([*argv, "--help"])
    return capsys.readouterr().out


def _entry(text: str, flag: str) -> str:
    """The help of ``flag``: its lines up to the next flag's, joined (argparse wraps at the terminal's width)."""
    after = text.split(f"\n  {flag}", 1)[1]
    return " ".join(re.split(r"\n  -", after, maxsplit=1)[0].split())


@pytest.mark.parametrize(
    "flag, says, never",
    [
        # (reported: "default gemma3). (default: None)")
        ("--model MODEL", "(gemma3, smollm2; default google/gemma-3-270m,", "(default: None)"),
        # (reported: --no-fast repeated --fast's help, with "(default: False)")
        ("--no_fast, --no-fast", "the per-query reference route (turns --fast off).", "reuse the demonstration"),
        ("--no_progress, --no-progress", "do not show progress bars (turns --progress off).", "hides them"),
        ("--no_stability_check, --no-stability-check", "skip the rerun (turns --stability-check off).", "rerun the finetuning"),
    ],
)
def test_analyze_help_says_each_flag_once(flag, says, never, capsys):
    entry = _entry(_help(capsys, "analyze"), flag)
    assert says in entry, entry
    assert never not in entry, entry


def test_analyze_help_still_shows_plain_defaults(capsys):
    assert "(default: 32)" in _entry(_help(capsys, "analyze"), "--n_demonstrations")


@pytest.mark.parametrize(
    "command, flag, says",
    [
        # (reported: sweep --help showed no default at all: the YAML-overridable flags' defaults are suppressed)
        ("sweep", "--output_dir OUTPUT_DIR, --output-dir OUTPUT_DIR", "(default: runs/sweep)"),
        ("sweep", "--n_demonstrations N_DEMONSTRATIONS, --n-demonstrations N_DEMONSTRATIONS", "(default: 32)"),
        ("sweep", "--controls CONTROLS [CONTROLS ...]", "(default: null)"),
        ("sweep", "--no_progress, --no-progress", "no bars (turns --progress off)."),
        ("pretrain", "--hidden_size HIDDEN_SIZE, --hidden-size HIDDEN_SIZE", "(default: 128)"),
        ("pretrain", "--momentum MOMENTUM [MOMENTUM ...]", "(default: 0.5)"),
    ],
)
def test_config_commands_help_shows_the_defaults(command, flag, says, capsys):
    entry = _entry(_help(capsys, command), flag)
    assert says in entry, entry
    assert entry.count("(default") <= 1, entry


def test_tasks_export_help_says_what_dir_is(capsys):
    """(Reported: ``tasks export --help`` did not say what DIR is.)"""
    text = " ".join(_help(capsys, "tasks", "export").split())
    assert "DIR the folder to write into (created if missing); lm_eval reads it with --include_path." in text
    assert "referenced relative to DIR: run lm_eval from DIR" in text


def test_tasks_list_columns_line_up(capsys):
    """(Reported: the source and labels columns were misaligned.)"""
    assert cli.main(["tasks", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= 9
    for column in (" test=", " labels="):
        assert len({line.index(column) for line in lines}) == 1, column
    names = [line.split()[0] for line in lines]
    assert len({line.index(line.split()[1], len(name)) for line, name in zip(lines, names)}) == 1  # the source column


def test_report_md_settings_are_plain_values_and_notes_round_intervals():
    """(Reported: ``'kv'``, ``null`` in the settings and ``[0.375, 0.9718749999999998]`` in the notes.)"""
    from hf_metaopt.analysis.notes import accuracy_notes
    from hf_metaopt.analysis.report import ICLAnalysisReport

    data = synthetic_report()
    data["notes"] = accuracy_notes({"accuracy": {"icl": 0.6, "zsl": 0.7},
                                    "accuracy_ci95": {"icl": [0.375, 0.9718749999999998], "zsl": [0.5, 0.85]}}, 20)
    md = ICLAnalysisReport(data).to_markdown()
    settings = md.split("## Settings", 1)[1]
    for row in ("| method | kv |", "| model_revision | - |", "| label_words | \" Negative\", \" Positive\" |",
                "| demonstrations_used | 3, 1, 4, 0 |", "| separator | \"\\n\" |", "| learning_rate | 0.001 |"):
        assert row in settings, row
    assert "'kv'" not in settings and "null" not in settings
    assert "their 95% intervals overlap (ICL [0.375, 0.972], ZSL [0.500, 0.850])" in md


def test_model_cards_cite_the_paper_by_its_title():
    """(Reported: the cards said "Secretly Perform", README says "Implicitly Perform".)"""
    assert f"title     = {{{TITLE}}}," in (ROOT / "README.md").read_text()
    for folder in (ROOT / "model_cards", ROOT / "hf_metaopt" / "hub" / "model_cards"):
        for card in folder.glob("*.md"):
            assert TITLE in card.read_text() and "Secretly" not in card.read_text(), card


def test_card_shows_rec2ftp_as_a_fraction_in_every_table():
    """(Reported: 0.750 in the results table, 75.0% in the control's.)"""
    from hf_metaopt.hub import render_analysis_card

    report = make_report()
    report["controls"] = {"untrained": {"accuracy": {"zsl": 0.5, "icl": 0.5, "ft": 0.5}, "rec2ftp": 0.25}}
    text = str(render_analysis_card(report))
    rows = [line for line in text.splitlines() if line.startswith("| Rec2FTP |")]
    assert len(rows) == 2, rows
    assert all(re.fullmatch(r"\| Rec2FTP \| (\d\.\d{3}|n/a[^|]*) \|.*", row) for row in rows), rows
    assert "| Rec2FTP | 0.250 |" in rows
