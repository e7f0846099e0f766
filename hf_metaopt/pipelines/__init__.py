"""Pipelines registered with transformers on import: ``"icl-analysis"`` -> :class:`ICLAnalyzer`."""

from .icl_analysis import ICLAnalyzer

__all__ = ["ICLAnalyzer"]
