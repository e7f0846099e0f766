"""The six tasks of Dai et al. (2023), template 0 of the reference code.

The reference code named the data sets by their old un-namespaced Hub ids (``glue``,
``super_glue``, ``ag_news``, ``rotten_tomatoes``), which ran loading scripts that
``datasets`` 4+ no longer runs. Each task here names the current script-free repository
(for GLUE and SuperGLUE the ids lm-evaluation-harness 0.4 uses) and pins its commit; the
columns and label orders are the old ids'.

``test_split`` is the split the paper reports on. None of these datasets has a labelled
split left over for model selection (GLUE and SuperGLUE test labels are hidden), so the
dev split is carved from train (10%, at most 1000 examples, fixed seed): hyperparameters
are chosen there, never on the reported split as the paper did.
"""

from __future__ import annotations

from .spec import TaskSpec

SENTIMENT2 = (" Negative", " Positive")

PAPER_TASKS = (
    TaskSpec(
        name="sst2",
        dataset_path="nyu-mll/glue",
        dataset_name="sst2",
        revision="bcdcba79d07bc864c1c254ccfcedcce55bcc9a8c",
        test_split="validation",
        template="Sentence: {text} Label:",
        fields={"text": "sentence"},
        label_words=SENTIMENT2,
        description="SST-2 binary sentiment (GLUE); reports on validation (872).",
    ),
    TaskSpec(
        name="sst5",
        dataset_path="SetFit/sst5",
        revision="e51bdcd8cd3a30da231967c1a249ba59361279a3",
        test_split="validation",
        template="Sentence: {text} Label:",
        label_words=(" terrible", " bad", " neutral", " good", " great"),
        description="SST-5 five-way sentiment; reports on validation (1101).",
    ),
    TaskSpec(
        name="mr",
        dataset_path="cornell-movie-review-data/rotten_tomatoes",
        revision="aa13bc287fa6fcab6daf52f0dfb9994269ffea28",
        test_split="validation",
        template="Review: {text} Sentiment:",
        label_words=SENTIMENT2,
        description="MR movie-review sentiment (rotten_tomatoes); reports on validation (1066).",
    ),
    TaskSpec(
        name="subj",
        dataset_path="SetFit/subj",
        revision="f3c1162e678417f664d76b21864fdb87b0615fcf",
        test_split="test",
        template="Input: {text} Type:",
        label_words=(" objective", " subjective"),
        description="SUBJ subjectivity; reports on test (2000).",
    ),
    TaskSpec(
        name="agnews",
        dataset_path="fancyzhx/ag_news",
        revision="eb185aade064a813bc0b7f42de02595523103ca4",
        test_split="test",
        template=(
            "Classify the news articles into the categories of World, Sports, Business, "
            "and Technology. Article: {text} Answer:"
        ),
        label_words=(" World", " Sports", " Business", " Technology"),
        description="AG News 4-way topic; reports on test (7600, capped at 2000).",
    ),
    TaskSpec(
        name="cb",
        dataset_path="aps/super_glue",
        dataset_name="cb",
        revision="3de24cf8022e94f4ee4b9d55a6f539891524d646",
        test_split="validation",
        template="{premise} Question: {hypothesis}. True, False, or Neither? Answer:",
        label_words=(" True", " False", " Neither"),
        description="CommitmentBank 3-way inference (SuperGLUE); reports on validation (56).",
    ),
)
