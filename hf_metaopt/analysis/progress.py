"""One progress bar per analysis, over its finetuning steps and query batches."""

from __future__ import annotations

from tqdm.auto import tqdm
from transformers import TrainerCallback

__all__ = ["AnalysisProgress"]


class _StepCallback(TrainerCallback):
    """Advances the analysis bar at every optimizer step of the finetuning ``Trainer``."""

    def __init__(self, progress: "AnalysisProgress"):
        self.progress = progress

    def on_step_end(self, args, state, control, **kwargs):
        self.progress.update()


class AnalysisProgress:
    """A context manager holding a ``tqdm`` bar (or nothing when disabled).

    Each model run adds its work with :meth:`add_phase` (finetuning steps + query batches),
    so the bar's total grows when an untrained control follows the main run.
    """

    def __init__(self, enabled: bool, description: str = "analysis (finetuning steps + query batches)"):
        self.enabled = enabled
        self.description = description
        self.bar = None

    def __enter__(self) -> "AnalysisProgress":
        if self.enabled:
            self.bar = tqdm(total=0, desc=self.description, unit="step", leave=False)
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def add_phase(self, steps: int) -> None:
        if self.bar is not None:
            self.bar.total += steps
            self.bar.refresh()

    def update(self, steps: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(steps)

    def trainer_callback(self) -> TrainerCallback:
        return _StepCallback(self)
