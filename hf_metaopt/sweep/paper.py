"""Dai et al. (2023)'s headline numbers, printed beside a sweep's: fairseq dense GPT 1.3B and 2.7B.

Accuracies are per task (%, ZSL / FT / ICL); the other metrics are the paper's averages
over its six tasks. The offline tasks are built like three of the paper's tasks, whose
numbers are shown beside them for orientation only.
"""

from __future__ import annotations

__all__ = ["PAPER", "PAPER_ANALOGUE", "paper_task"]

PAPER = {
    "1.3B": {
        "model": "KoboldAI/fairseq-dense-1.3B",
        "accuracy": {
            "sst2": (70.5, 73.9, 92.7), "sst5": (39.3, 39.5, 45.0), "mr": (65.9, 73.0, 89.0),
            "subj": (72.6, 77.8, 90.0), "agnews": (46.3, 65.3, 79.2), "cb": (37.5, 55.4, 57.1),
        },
        "average": {
            "rec2ftp": 0.8556, "simaou": 0.186, "simaou_random": 0.002, "simam_before": 0.338, "simam_after": 0.442,
            "kendall": 0.193, "kendall_random": 0.000,
        },
    },
    "2.7B": {
        "model": "KoboldAI/fairseq-dense-2.7B",
        "accuracy": {
            "sst2": (71.4, 76.9, 95.0), "sst5": (35.9, 39.1, 46.5), "mr": (60.9, 80.0, 91.3),
            "subj": (75.2, 86.1, 90.3), "agnews": (39.8, 65.7, 80.3), "cb": (42.9, 57.1, 55.4),
        },
        "average": {
            "rec2ftp": 0.8939, "simaou": 0.225, "simaou_random": -0.001, "simam_before": 0.355, "simam_after": 0.434,
            "kendall": 0.214, "kendall_random": 0.000,
        },
    },
}
PAPER_ANALOGUE = {"rt_sentiment": "mr", "rt_subjectivity": "subj", "bbc_news": "agnews"}


def paper_task(task: str) -> str | None:
    """The paper task whose numbers stand beside ``task`` (itself, or the one it is built like), if any."""
    name = PAPER_ANALOGUE.get(task, task)
    return name if name in PAPER["1.3B"]["accuracy"] else None
