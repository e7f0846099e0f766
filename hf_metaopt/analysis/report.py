"""ICLAnalysisReport: the result of one ICL-vs-finetuning analysis.

The dictionary schema (every float is a plain float, every list a JSON list;
"ci95" entries are ``[low, high]`` bootstrap 95% intervals over queries)::

    accuracy:       {zsl, icl, ft}                 floats in [0, 1]
    accuracy_ci95:  {zsl, icl, ft}                 [low, high]
    predictions:    {zsl, icl, ft}                 label indices per query
    labels:         [int]                          gold label per query
    rec2ftp:        float | None                   None when FT fixes nothing
    rec2ftp_ci95:   [low, high] | None
    rec2ftp_counts: {ft_fixed, both_fixed}         #(FT correct & ZSL wrong), and of those #(ICL correct)
    change_recall:  float | None                   Deutch et al.: of the queries ICL or FT changes from
                                                   ZSL, the share both change to the same label;
                                                   None when neither changes any
    change_recall_ci95:   [low, high] | None
    change_recall_counts: {changed, same_change, icl_changed, ft_changed}
    simaou:   {per_layer, mean, ci95, random_mean, random_per_layer,
               unnormalized_per_layer, unnormalized_mean, unnormalized_ci95}
    simam:    {per_layer_before, per_layer_after, per_layer_delta,
               before, after, delta, before_ci95, after_ci95, delta_ci95}
    kendall:  {per_layer, mean, ci95, random_mean, random_per_layer, n_queries,
               example_level: {per_layer, mean, ci95, random_mean, random_per_layer}}
               (example level: tau over each demonstration's softmax attention mass;
               reports of version 0.1 summed raw scores there)
    topk_recall: {token_level: {k, per_layer, mean, ci95, random_mean, random_per_layer},
                  example_level: {same}, n_queries}     absent in 0.1 reports
    label_shift: {kl_icl_ft, tv_icl_ft, kl_icl_zsl, tv_icl_zsl, kl_ft_zsl, tv_ft_zsl}, each {mean, ci95}:
                 per query the label distribution of a route is the softmax of its label-word scores;
                 kl_a_b = KL(p_a || p_b), tv_a_b = TV(p_a, p_b) (Shen et al. 2024), mean over queries.
                 Per query, not per layer, as are Rec2FTP and ChangeRecall.
    label_counts: {demonstrations, gold, predictions: {zsl, icl, ft}}   counts per label index
                   (lists indexed like label_words) over the demonstrations used, the
                   gold labels and each route's predictions
    finetuning: {loss_per_step: [float | None],   the FT route's training loss per SGD step (one per
                                                   demonstration, in order; None where inf/NaN)
                 loss_before, loss_after,          mean loss on the demonstrations with the weights
                                                   before / after finetuning (None where inf/NaN)
                 learning_rate, diverged: bool, divergence: [reason],
                 objective: "causal_lm" | "layer_causal",  the loss of these figures (the layer-causal
                                                   methods': the sum over layers); absent before it
                 stability: {checked: true, perturbation: "float64 training", agreement, n_queries,
                             accuracy, update_relative_difference}
                            or {checked: false, reason}}
    controls: {"untrained": {accuracy, rec2ftp, rec2ftp_counts, change_recall, change_recall_ci95,
               change_recall_counts, simaou, simam, kendall, topk_recall, label_shift,
               label_counts: {predictions: {zsl, icl, ft}}, finetuning},
               "shuffled_labels": {the same keys; label_counts also with demonstrations;
                                   shuffle: {labels, changed, n_demonstrations}}}
              holding the controls asked for (config.control), or {}
    verdict:  {alpha: 0.05, test: str, controls: [names],      absent in reports before it
               rows: [{metric, name, alike: "higher" | "lower", value, ci95, n_queries, counts?,
                       comparisons: {<control name> | "baseline": {name?, value, ci95, counts?,
                                     difference, difference_ci95, p_value, exact, beyond}},
                       beyond_all}]}
               per metric (Rec2FTP, ChangeRecall, SimAOU, SimAOU unnormalised, SimAM after,
               SimAM delta, Kendall token / example, top-k recall token / example, KL and TV
               of ICL and FT): is the pretrained value beyond each control and baseline, by a
               one-sided paired test over queries (docs/analysis.md, "Verdict")
    permutations: only with permutations > 1: {n, orders: [[demonstration index]] (order 0 the
               main body's), per_order: [{order, values: {accuracy_zsl, accuracy_icl, accuracy_ft,
               rec2ftp, change_recall, simaou, simaou_unnormalized, simam_before, simam_after,
               simam_delta, kendall_token, kendall_example, recall_token, recall_example, kl_icl_ft,
               tv_icl_ft, kl_icl_zsl, tv_icl_zsl, kl_ft_zsl, tv_ft_zsl}, rec2ftp_counts,
               change_recall_counts, predictions: {icl, ft}, loss_per_step}],
               spread: {<value name>: {mean, std, min, max, n}},
               agreement: {icl: {all_orders, pairwise}, ft: {all_orders, pairwise},
                           icl_ft: {per_order, mean}}}
    config:   every AnalysisOptions field (n_demonstrations and n_queries replaced by the
               numbers used), template, label_words, separator, start_token_used,
               model, model_revision, task, split, demonstrations_used (ids), query_ids,
               dtype, versions: {hf_metaopt, transformers, torch, peft},
               environment: {cpu_capability, num_threads, device, cuda_device,
               deterministic_algorithms, platform, python}
    notes:    [str]                                warnings the run raised
    selection: optional, the dev-split grid-search table ({"rows": [...], "chosen": {...}})
    sweep:     optional, the sweep's grid point (hf_metaopt.sweep)

The report is typed (:class:`ICLAnalysisReport` and the parts in ``report_parts.py``): a
read-only mapping with these keys, read as ``report["simaou"]["mean"]`` or
``report.simaou.mean``. Keys absent from a report are absent as keys and ``None`` as
attributes: reports of version 0.1 have no ``topk_recall``, ``label_counts``, ``finetuning``,
``kendall.n_queries`` or ``config.environment``, and older reports none of ``rec2ftp_counts``,
``change_recall*``, ``label_shift`` or ``verdict``. Keys not listed here are kept as given, so
``report.json`` files of any version load and save unchanged.

The per-query scores behind the means are not a key: ``report.scores`` (a
:class:`~.query_scores.QueryScores`, or ``None``) is written beside ``report.json`` as
``scores.safetensors`` and read back by :meth:`ICLAnalysisReport.from_pretrained`; it is not part of
``to_dict`` nor of equality.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..fileio import atomic_write_json, atomic_write_text, folder_mode
from ..hub.upload import HubPushError, check_repo_id
from .query_scores import SCORES_FILE, QueryScores
from .report_base import ReportPart, report_part
from .report_html import report_html
from .report_markdown import PLOT_FILES, markdown, metric_rows
from .report_parts import (
    AnalysisConfig, ChangeRecallCounts, ControlReport, Finetuning, KendallSummary, LabelCounts, LabelShift, Permutations,
    Rec2FTPCounts, RouteValues, SimAMSummary, SimAOUSummary, TopKRecall, Verdict,
)
from .report_plots import plots
from .report_push import HTML_FILE, push_analysis, stage_report

if TYPE_CHECKING:
    from huggingface_hub import CommitInfo

logger = logging.getLogger(__name__)

__all__ = ["HTML_FILE", "ICLAnalysisReport", "PLOT_FILES", "REQUIRED_KEYS", "metric_rows"]

# Keys every report holds (the pipeline's documented contract).
REQUIRED_KEYS = ("accuracy", "predictions", "labels", "rec2ftp", "simaou", "simam", "kendall", "config")
REPORT_FILE = "report.json"


@report_part
class ICLAnalysisReport(ReportPart):
    """Accuracies, predictions and the similarity metrics of one analysis (schema: this module's docstring).

    A read-only :class:`~collections.abc.Mapping` in the spirit of transformers' ``ModelOutput``:
    ``report["simaou"]["mean"] == report.simaou.mean``, ``"topk_recall" in report``,
    ``report.get(...)``, ``dict(report)``; nested parts are typed too (``report_parts.py``).
    ``to_dict()`` gives plain JSON types and ``to_json()`` / ``from_json()`` round-trip
    (``ICLAnalysisReport.from_json(report.to_json()) == report``). Two reports are equal when
    their keys and values are. Build one from a mapping, ``ICLAnalysisReport(data)``, or from
    keyword arguments; the keys of :data:`REQUIRED_KEYS` must be there.

    Files: :meth:`save_pretrained` writes a run folder (``report.json``, ``report.md``, plots, and
    ``scores.safetensors`` when the report has :attr:`scores`) that :meth:`from_pretrained` reads
    back; :meth:`push_to_hub` pushes one to a Hub repo.
    """

    required = REQUIRED_KEYS

    accuracy: RouteValues
    accuracy_ci95: RouteValues | None
    predictions: RouteValues
    labels: list[int]
    rec2ftp: float | None
    rec2ftp_ci95: list[float] | None
    rec2ftp_counts: Rec2FTPCounts | None
    change_recall: float | None
    change_recall_ci95: list[float] | None
    change_recall_counts: ChangeRecallCounts | None
    simaou: SimAOUSummary
    simam: SimAMSummary
    kendall: KendallSummary
    topk_recall: TopKRecall | None
    label_shift: LabelShift | None
    label_counts: LabelCounts | None
    finetuning: Finetuning | None
    controls: dict[str, ControlReport] | None
    verdict: Verdict | None
    permutations: Permutations | None
    config: AnalysisConfig
    notes: list[str] | None
    selection: dict[str, Any] | None
    sweep: dict[str, Any] | None

    def __repr__(self) -> str:
        return f"ICLAnalysisReport(accuracy={dict(self.accuracy)}, rec2ftp={self.rec2ftp})"

    # -- per-query scores: an attribute, not a key

    @property
    def scores(self) -> QueryScores | None:
        """The per-query scores behind the report's means (``docs/analysis.md``, "Per-query scores"), or ``None``.

        Set by the analysis (the pipeline with ``return_scores=True``) and by :meth:`from_pretrained`
        of a run folder that holds ``scores.safetensors`` (read on first access). Not a mapping key:
        ``to_dict``, ``report.json`` and equality leave it out.
        """
        value = self.__dict__.get("_scores")
        if callable(value):  # a loader from from_pretrained: read once, when first asked for
            value = value()
            object.__setattr__(self, "_scores", value)
        return value

    def with_scores(self, scores: QueryScores | Callable[[], QueryScores | None] | None) -> "ICLAnalysisReport":
        """This report with :attr:`scores` set to ``scores`` (``None``: without); its keys and values are shared.

        ``scores`` may be a function returning them, called on the first access of :attr:`scores`.
        """
        report = type(self)(self)
        object.__setattr__(report, "_scores", scores)
        return report

    # -- JSON

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The report as JSON text (strict: NaN and infinities refused); with ``path``, also written there atomically."""
        data = self.to_dict()
        text = json.dumps(data, indent=2, allow_nan=False)
        if path is not None:
            atomic_write_json(Path(path), data)
        return text

    @classmethod
    def from_json(cls, path_or_text: str | os.PathLike) -> "ICLAnalysisReport":
        """Load a report from a ``report.json`` path (or a run folder holding one) or from JSON text."""
        if isinstance(path_or_text, str) and path_or_text.lstrip().startswith("{"):
            return cls(json.loads(path_or_text))
        path = Path(path_or_text)
        if path.is_dir():
            path = path / REPORT_FILE
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, Mapping):
            raise ValueError(f"{path} holds JSON {type(data).__name__}, not a report object; pass the report.json of an analysis run.")
        return cls(data)

    # -- files

    def to_markdown(self, plots_dir: str | None = ".") -> str:
        """A readable summary: accuracy table, the four metrics with baselines and 95%
        intervals, the untrained control, the dev-split selection, per-layer values, the
        settings and the run's notes. ``plots_dir`` (relative link target) embeds the PNGs;
        ``None`` leaves them out."""
        return markdown(self.to_dict(), plots_dir)

    def to_html(self) -> str:
        """report.html: one self-contained page (no network at view time, opens from ``file://``) with the
        headline, the per-layer curves (plotly, hover values), the per-query explorer when the report holds
        its per-query scores, and the settings and notes (``hf_metaopt/analysis/report_html.py``)."""
        return report_html(self.to_dict(), getattr(self, "scores", None))

    def plot(self, directory: str | os.PathLike) -> list[Path]:
        """Write the PNG plots into ``directory`` (matplotlib, Agg backend) and return their paths:
        accuracy bars (ZSL / ICL / FT with 95% error bars, each control) and per-layer SimAOU, SimAM
        (before / after / delta), Kendall and top-k recall curves with their controls and baselines,
        and 95% interval bands when the report holds its per-query scores."""
        return plots(self.to_dict(), Path(directory), getattr(self, "scores", None))

    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write ``report.json``, ``report.md``, ``report.html``, the PNGs and, when the report has :attr:`scores`,
        ``scores.safetensors`` into the new folder ``save_directory``; return it.

        The files are written into a temporary sibling folder that is renamed to ``save_directory``
        once complete, so a crash never leaves a half-written run and an existing run is never
        touched: if ``save_directory`` exists, :class:`FileExistsError` (pick another name).
        Read it back with :meth:`from_pretrained`.
        """
        run_dir = Path(save_directory)
        if run_dir.exists():
            raise FileExistsError(f"run folder {str(run_dir)!r} already exists; choose another output dir (runs are never overwritten).")
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.", suffix=".tmp", dir=run_dir.parent))
        try:
            atomic_write_json(tmp / REPORT_FILE, self.to_dict())
            atomic_write_text(tmp / "report.md", self.to_markdown())
            atomic_write_text(tmp / HTML_FILE, self.to_html())
            self.plot(tmp)
            if self.scores is not None:
                self.scores.save(tmp / SCORES_FILE)
            os.chmod(tmp, folder_mode())  # mkdtemp makes it private; a run folder is an ordinary folder
            os.rename(tmp, run_dir)  # atomic; fails rather than replace a folder made meanwhile
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return run_dir

    def save(self, run_dir: str | os.PathLike) -> Path:
        """Alias of :meth:`save_pretrained` (the name of version 0.1)."""
        return self.save_pretrained(run_dir)

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | os.PathLike,
        *,
        subfolder: str | None = None,
        revision: str | None = None,
        token: str | bool | None = None,
    ) -> "ICLAnalysisReport":
        """Load the report of a run folder (or its ``report.json``), or of a Hub repo.

        A path that does not exist and reads ``namespace/name`` is a Hub repo: its
        ``report.json`` (under ``subfolder``, e.g. ``icl_analysis/<run name>`` where
        :meth:`push_to_hub` puts it) is downloaded with ``huggingface_hub`` at ``revision``.
        ``scores.safetensors`` beside it, where there is one, becomes :attr:`scores`, read (or
        downloaded) on first access; a run without it (version 0.1) has ``scores`` ``None``.
        """
        local = Path(path_or_repo_id, subfolder or "")
        if local.exists():
            folder = local if local.is_dir() else local.parent
            scores = folder / SCORES_FILE
            return cls.from_json(local).with_scores(functools.partial(QueryScores.load, scores) if scores.is_file() else None)
        repo_id = str(path_or_repo_id)
        if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", repo_id):
            raise FileNotFoundError(f"{local} does not exist; pass an analysis run folder, its report.json, or a Hub repo id 'namespace/name'.")
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, OfflineModeIsEnabled

        try:
            path = hf_hub_download(repo_id, REPORT_FILE, subfolder=subfolder, revision=revision, token=token)
        except (HfHubHTTPError, EntryNotFoundError, OfflineModeIsEnabled) as err:
            where = f"{repo_id}/{subfolder + '/' if subfolder else ''}{REPORT_FILE}"
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise FileNotFoundError(f"{local} is not a local folder and {where} could not be read from the Hub ({reason}); "
                                    "pass an analysis run folder, or a repo id with the subfolder push_to_hub used.") from err
        hub = dict(subfolder=subfolder, revision=revision, token=token)
        return cls.from_json(path).with_scores(functools.partial(_hub_scores, repo_id, hub))

    def push_to_hub(
        self,
        repo_id: str,
        *,
        token: str | bool | None = None,
        private: bool | None = None,
        create_pr: bool | None = False,
        commit_message: str | None = None,
        revision: str | None = None,
    ) -> CommitInfo:
        """Push the report (card, ``report.json``, ``report.md``, plots) to ``repo_id`` in one commit.

        The report is saved into a temporary folder and pushed as :func:`hf_metaopt.hub.push_report`
        pushes it (both end in :func:`~hf_metaopt.analysis.report_push.push_analysis`, the one
        implementation of a report push; the command line's ``hf-metaopt push`` uses it too):
        the files go under ``icl_analysis/<run name>/``, the eval results into the repo's root card,
        transient failures are retried and the token never shows in a message. ``create_pr=None``
        opens a pull request exactly when ``repo_id`` is the analysed model's repo; ``private=None``
        makes a new repo public. Returns the ``huggingface_hub.CommitInfo``. If the push fails, the
        folder is kept and the :class:`~hf_metaopt.hub.HubPushError` says where and how to push it later.
        """
        staging = Path(tempfile.mkdtemp(prefix="hf-metaopt-push-"))
        try:
            check_repo_id(repo_id)
            folder, data, name = stage_report(self, None, staging / "report")
            info = push_analysis(folder, data, name, repo_id, token=token, private=bool(private), create_pr=create_pr,
                                 revision=revision, commit_message=commit_message)
        except HubPushError:
            raise  # the folder stays: the error names it and the command that pushes it later
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        shutil.rmtree(staging, ignore_errors=True)
        return info


def _hub_scores(repo_id: str, hub: dict) -> QueryScores | None:
    """The ``scores.safetensors`` beside a Hub report, or ``None`` where it has none (or it cannot be fetched)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, OfflineModeIsEnabled

    try:
        return QueryScores.load(hf_hub_download(repo_id, SCORES_FILE, **hub))
    except EntryNotFoundError:  # pushed by a version without per-query scores
        return None
    except (HfHubHTTPError, OfflineModeIsEnabled) as err:
        logger.warning("hf-metaopt: the per-query scores of %s could not be downloaded (%s); report.scores is None.",
                       repo_id, str(err).splitlines()[0] if str(err) else type(err).__name__)
        return None
