"""Project wiring: the README's commands, CI, exports and the command line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text(), flags=re.S)


def test_ci_runs_the_readme_test_command_verbatim():
    setup, test = _readme_commands()[:2]
    assert "pytest" in test and "\n" not in test
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test in ci_lines, f"README's test command {test!r} is not a line of .ci/run"
    # CI installs torch before the project, as the README's set-up does.
    ci = "\n".join(ci_lines)
    assert ci.index("torch==2.13.0") < ci.index('-e ".[dev]"')
    assert setup.index("torch==2.13.0") < setup.index('-e ".[dev]"') < setup.index("hf-metaopt analyze")


def test_public_names_are_exported():
    import hf_metaopt

    for name in ("MomentumGPTConfig", "MomentumGPTModel", "MomentumGPTForCausalLM",
                 "MomentumGPTForSequenceClassification", "ICLAnalyzer", "ICLAnalysisReport"):
        assert name in hf_metaopt.__all__ and getattr(hf_metaopt, name) is not None
    # README's quick start reaches the offline model through the offline package.
    import hf_metaopt.offline

    assert callable(hf_metaopt.offline.model_path) and callable(hf_metaopt.offline.smollm2_dir)


def test_cli_lists_every_command(capsys):
    from hf_metaopt.cli import COMMANDS, main

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_cli_without_a_command_prints_help_and_fails(capsys):
    from hf_metaopt.cli import main

    assert main([]) == 2
    assert "usage: hf-metaopt" in capsys.readouterr().out
