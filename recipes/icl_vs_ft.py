"""Reproduce Tables 1-5 of Dai et al. (2023): ICL vs finetuning, as a sweep with the paper's settings.

A thin layer over :mod:`hf_metaopt.sweep`: the defaults come from icl_vs_ft.yaml beside
this script (the six paper tasks, 32 demonstrations, up to 2000 queries, position
``label``, K/V finetuning at learning rate 1e-3); every flag of ``hf-metaopt sweep``
overrides them. Each (model, task, method, learning rate, control, seed) writes its run
folder ``<output_dir>/<model>/<task>/<method>-lr<lr>-<control>/seed-<s>/``; finished runs
are reused, so an interrupted recipe resumes where it stopped. At the end
``<output_dir>/summary.md`` (+ ``.json``, ``.png``) holds Tables 1-5 with mean ± std over
seeds and the paper's 1.3B / 2.7B numbers beside them.

The paper's model and six tasks (needs the Hub):

    python recipes/icl_vs_ft.py --dtype float16

Its two models, seven seeds, the untrained control, on 4 GPUs (jobs split over the processes):

    accelerate launch --num_processes 4 recipes/icl_vs_ft.py \\
        --models KoboldAI/fairseq-dense-1.3B KoboldAI/fairseq-dense-2.7B --seeds 1 2 3 4 5 6 7 --controls null untrained

Offline (the embedded models, the three offline tasks; a 2-core CPU):

    python recipes/icl_vs_ft.py --models smollm2 --tasks rt_sentiment rt_subjectivity bbc_news \\
        --n_demonstrations 16 --n_queries 100 --output_dir runs/icl_vs_ft_offline

The paper chose the learning rate on the split it reports. To choose it on the dev split
instead, sweep the rates there first, read the FT accuracies in that summary.md, then run
the chosen rate on the test split:

    python recipes/icl_vs_ft.py --split dev --n_queries 200 --learning_rates 1e-4 1e-3 1e-2 1e-1 --output_dir runs/icl_vs_ft_dev

Local copies of the Hub datasets (one ``save_to_disk`` folder per task name):

    python recipes/icl_vs_ft.py --data_dir /data/icl_tasks ...
"""

from __future__ import annotations

from pathlib import Path

from hf_metaopt import offline, sweep  # noqa: F401  offline: registers the offline models and tasks

DEFAULT_CONFIG = Path(__file__).with_suffix(".yaml")


def parse_args(argv: list[str] | None = None) -> tuple[sweep.SweepArguments, sweep.SharedOptions]:
    """YAML defaults (``--config``, default icl_vs_ft.yaml beside this script), then flags."""
    return sweep.parse_args(argv, default_config=DEFAULT_CONFIG)


def main(argv: list[str] | None = None) -> dict | None:
    """Run the sweep; returns its summary on the main process (also written to ``output_dir``)."""
    args, shared = parse_args(argv)
    return sweep.run_sweep(args, shared)


if __name__ == "__main__":
    main()
