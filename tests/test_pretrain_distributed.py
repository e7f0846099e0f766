"""Data-parallel pretraining: 2 CPU processes (gloo) match 1 process with the same global batch."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

# Runs one arm with the recipe's parser and training code; every rank saves its own weights
# at the end, so the test can check that the replicas stayed in sync.
DRIVER = textwrap.dedent(
    """
    import sys, torch
    from transformers import TrainerCallback
    from hf_metaopt.pretraining import parse_args
    from hf_metaopt.pretraining import experiment

    class SaveReplica(TrainerCallback):
        def on_train_end(self, args, state, control, model=None, **kwargs):
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
            torch.save({k: v.detach().clone() for k, v in model.state_dict().items()},
                       f"{args.output_dir}/replica{rank}.pt")

    model_args, data_args, exp_args, training_args = parse_args(sys.argv[1:])
    data = experiment.prepare_data(data_args, exp_args, training_args)
    experiment.train_arm(model_args, data_args, exp_args, training_args, 0.5, 7, data, [SaveReplica()])
    """
)

WORDS = "the film a story of love and loss in a town where the river meets the sea critics loved it".split()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path, tiny_tokenizer_dir):
    if shutil.which("torchrun") is None and not os.path.exists(os.path.join(os.path.dirname(sys.executable), "torchrun")):
        pytest.fail("torchrun is missing from the environment (it ships with torch)")
    rng = random.Random(0)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(40):
        (corpus / f"d{i}.txt").write_text(" ".join(rng.choice(WORDS) for _ in range(60)))
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)

    def argv(out, per_device):
        return [
            "--output_dir", str(out), "--corpus", str(corpus), "--tokenizer_name", str(tiny_tokenizer_dir),
            "--validation_documents", "6", "--block_size", "32", "--max_position_embeddings", "32",
            "--hidden_size", "32", "--num_hidden_layers", "2", "--num_attention_heads", "4", "--dropout", "0",
            "--max_steps", "4", "--per_device_train_batch_size", str(per_device), "--learning_rate", "3e-3",
            "--warmup_steps", "1", "--logging_steps", "1", "--save_strategy", "no", "--eval_strategy", "no",
            "--report_to", "none", "--use_cpu", "--disable_tqdm", "true",
            "--eval_context_lengths", "32", "--icl_tasks", "none",
        ]

    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    single, double = tmp_path / "single", tmp_path / "double"
    subprocess.run([sys.executable, str(driver), *argv(single, 4)], check=True, env=env, timeout=600)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    subprocess.run([*torchrun, str(driver), *argv(double, 2)], check=True, env=env, timeout=600)

    arm = "momentum0.5-seed7"
    one = json.loads((single / arm / "results.json").read_text())
    two = json.loads((double / arm / "results.json").read_text())
    assert one["global_step"] == two["global_step"] == 4
    losses_one = [loss for _, loss in one["train_curve"]]
    losses_two = [loss for _, loss in two["train_curve"]]
    assert len(losses_one) == len(losses_two) == 4
    assert losses_one == pytest.approx(losses_two, abs=1e-4)

    r0 = torch.load(double / arm / "replica0.pt")
    r1 = torch.load(double / arm / "replica1.pt")
    ref = torch.load(single / arm / "replica0.pt")
    for name in ref:
        torch.testing.assert_close(r0[name], r1[name], rtol=0, atol=0)  # replicas in sync
        torch.testing.assert_close(r0[name], ref[name], rtol=1e-4, atol=1e-5)  # same as one process
