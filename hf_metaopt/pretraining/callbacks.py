"""Trainer callbacks of the pretraining run: throughput and model cards at each checkpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

__all__ = ["ThroughputCallback", "ModelCardCallback"]


class ThroughputCallback(TrainerCallback):
    """Measures training tokens per second over the steps run in this call of ``train()``.

    A resumed run counts only the steps it ran itself, not those restored from the checkpoint.
    """

    def __init__(self, tokens_per_step: int):
        self.tokens_per_step = tokens_per_step
        self.tokens_per_second: float | None = None
        self._start = None
        self._start_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = None

    def on_step_begin(self, args, state, control, **kwargs):
        # Not on_train_begin: a resumed run restores global_step after that event.
        if self._start is None:
            self._start = time.perf_counter()
            self._start_step = state.global_step

    def on_train_end(self, args, state, control, **kwargs):
        steps = state.global_step - self._start_step
        elapsed = time.perf_counter() - self._start if self._start is not None else 0.0
        self.tokens_per_second = steps * self.tokens_per_step / elapsed if steps and elapsed > 0 else 0.0


class ModelCardCallback(TrainerCallback):
    """Writes the model card (``README.md``) into each checkpoint folder when it is saved.

    ``write_card(folder, state)`` renders the card; only the main process writes.
    """

    def __init__(self, write_card: Callable[[Path, object], None]):
        self.write_card = write_card

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            if folder.is_dir():
                self.write_card(folder, state)
