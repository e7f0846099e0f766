"""The ICL-vs-finetuning analysis (Dai et al., 2023): options, prompts, capture, routes, metrics, report.

    from hf_metaopt.analysis import AnalysisOptions, analyze_task
    result = analyze_task(model, tokenizer, "rt_sentiment", AnalysisOptions(n_demonstrations=16))
    result.report.save_pretrained("runs/my-run")      # report.json, report.md, report.html, plots, scores.safetensors
    scores = load_scores("runs/my-run")               # the per-query scores (QueryScores)

Definitions of the metrics and the prompt protocol: ``docs/analysis.md``.
"""

from .engine import AnalysisResult, run_analysis
from .options import AnalysisOptions
from .prompts import PromptFormat
from .query_scores import QueryScores, load_scores
from .run import analyze_task, prompt_format

__all__ = [
    "AnalysisOptions", "AnalysisResult", "PromptFormat", "QueryScores", "analyze_task", "load_scores", "prompt_format", "run_analysis",
]
