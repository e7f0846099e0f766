"""Reproducibility: the report records the machine's facts, and the same analysis gives the same report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from hf_metaopt import ICLAnalysisReport
from tiny_analysis import analyze

ROOT = Path(__file__).resolve().parents[1]


def test_environment_names_what_tells_machines_apart():
    from hf_metaopt.analysis.environment import environment

    env = environment(torch.nn.Linear(2, 2))
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and env["num_threads"] == torch.get_num_threads()
    assert env["device"] == "cpu" and env["cuda_device"] is None
    assert env["deterministic_algorithms"] == torch.are_deterministic_algorithms_enabled()
    assert set(env) == {"cpu_capability", "num_threads", "device", "cuda_device", "deterministic_algorithms", "platform", "python"}


def test_the_same_analysis_twice_and_in_a_subprocess_gives_the_same_report(tiny_tokenizer_dir, tmp_path):
    first, second = analyze(str(tiny_tokenizer_dir)), analyze(str(tiny_tokenizer_dir))
    assert first == second
    assert first["config"]["environment"]["num_threads"] == torch.get_num_threads()
    assert "Environment: cpu_capability" in ICLAnalysisReport(first).to_markdown(None)

    out = tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "tiny_analysis.py"), str(tiny_tokenizer_dir), str(torch.get_num_threads()), str(out)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(out.read_text()) == first
