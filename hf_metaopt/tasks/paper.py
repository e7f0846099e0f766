"""The six tasks of Dai et al. (2023), template 0 of the reference code (PAPER.md section 4).

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
        dataset_path="glue",
        dataset_name="sst2",
        test_split="validation",
        template="Sentence: {text} Label:",
        fields={"text": "sentence"},
        label_words=SENTIMENT2,
        description="SST-2 binary sentiment (GLUE); reports on validation (872).",
    ),
    TaskSpec(
        name="sst5",
        dataset_path="SetFit/sst5",
        test_split="validation",
        template="Sentence: {text} Label:",
        label_words=(" terrible", " bad", " neutral", " good", " great"),
        description="SST-5 five-way sentiment; reports on validation (1101).",
    ),
    TaskSpec(
        name="mr",
        dataset_path="rotten_tomatoes",
        test_split="validation",
        template="Review: {text} Sentiment:",
        label_words=SENTIMENT2,
        description="MR movie-review sentiment (rotten_tomatoes); reports on validation (1066).",
    ),
    TaskSpec(
        name="subj",
        dataset_path="SetFit/subj",
        test_split="test",
        template="Input: {text} Type:",
        label_words=(" objective", " subjective"),
        description="SUBJ subjectivity; reports on test (2000).",
    ),
    TaskSpec(
        name="agnews",
        dataset_path="ag_news",
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
        dataset_path="super_glue",
        dataset_name="cb",
        test_split="validation",
        template="{premise} Question: {hypothesis}. True, False, or Neither? Answer:",
        label_words=(" True", " False", " Neither"),
        description="CommitmentBank 3-way inference (SuperGLUE); reports on validation (56).",
    ),
)
