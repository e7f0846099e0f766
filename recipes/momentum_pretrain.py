"""Pretrain a vanilla GPT and a MomentumGPT of the same size and compare them (Dai et al. 2023, section 5).

Both arms share the tokenizer, data order, seed, initial weights, size and schedule
(AdamW betas (0.9, 0.98), eps 1e-6, warmup then polynomial or cosine decay, grad clip);
they differ only in ``momentum`` (0 for GPT; several values run a sweep). After training:
validation perplexity at contexts 256/512/1024 (capped at the model's positions) and
in-context accuracy on the offline tasks with 0..32 demonstrations. Output:
``<output_dir>/comparison.{md,json}``, ``loss_curves.png``, one folder per arm and seed
with its model, tokenizer, ``results.json`` and model card.

Offline tiny run (BBC News + Rotten Tomatoes from registry packages; 2-core CPU, < 15 min for both arms):

    python recipes/momentum_pretrain.py --config recipes/configs/momentum_tiny.yaml

    # three seeds, a sweep over eta, a different output folder:
    python recipes/momentum_pretrain.py --config recipes/configs/momentum_tiny.yaml \\
        --seeds 0 1 2 --momentum 0.5 0.9 --output_dir runs/tiny_sweep

The paper's 350M run on an OpenWebText-style Hub corpus, streamed (needs network):

    # one GPU
    python recipes/momentum_pretrain.py --config recipes/configs/momentum_350m.yaml
    # several GPUs on one machine, data-parallel (no code change)
    accelerate launch --num_processes 8 recipes/momentum_pretrain.py --config recipes/configs/momentum_350m.yaml
    # several machines (run on each, with its --machine_rank)
    accelerate launch --num_machines 2 --machine_rank 0 --main_process_ip 10.0.0.1 --main_process_port 29500 \\
        --num_processes 16 recipes/momentum_pretrain.py --config recipes/configs/momentum_350m.yaml
    # CPU only, two processes (gloo)
    torchrun --nproc_per_node 2 recipes/momentum_pretrain.py --config recipes/configs/momentum_tiny.yaml

Keep the global batch (per_device_train_batch_size x gradient_accumulation_steps x processes)
fixed when changing the number of processes. Resume an interrupted run (each arm from its
last checkpoint; finished arms are reused):

    python recipes/momentum_pretrain.py --config recipes/configs/momentum_tiny.yaml --resume_from_checkpoint last

Push both arms with their model cards (repos ``<prefix>-gpt`` and ``<prefix>-momentum0.5``):

    python recipes/momentum_pretrain.py --config recipes/configs/momentum_tiny.yaml \\
        --push_to_hub --hub_repo_prefix my-user/momentum-tiny

Every flag can also be set in the YAML file (flags override it); see ``--help``.
"""

from __future__ import annotations

import sys

import hf_metaopt.offline  # noqa: F401  registers the offline corpus and tasks
from hf_metaopt.pretraining import main, make_parser

__all__ = ["main", "make_parser"]

if __name__ == "__main__":
    main()
    sys.exit(0)
