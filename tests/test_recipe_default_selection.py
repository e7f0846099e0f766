"""recipes/default_selection.py: the learning rate is chosen among the stable ones, with at least 3 seeds."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "default_selection.py"


@pytest.fixture(scope="module")
def recipe():
    spec = importlib.util.spec_from_file_location("default_selection_recipe", RECIPE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def row(lr, seed, ft, agreement=1.0, diverged=False):
    return {"learning_rate": lr, "seed": seed, "ft": ft, "agreement": agreement, "diverged": diverged}


def test_a_rate_is_stable_only_if_every_seed_is(recipe):
    grid = recipe.SelectionGrid(learning_rates=[1e-3, 1e-2, 1e-1], seeds=[1, 2, 3])
    rows = [row(1e-3, s, 0.5) for s in (1, 2, 3)]
    rows += [row(1e-2, 1, 0.7), row(1e-2, 2, 0.7, agreement=0.9), row(1e-2, 3, 0.7)]  # one seed flips 10%
    rows += [row(1e-1, 1, 0.9), row(1e-1, 2, 0.9, diverged=True), row(1e-1, 3, 0.9)]
    assert recipe.stable_rates(rows, grid) == [1e-3]
    assert recipe.stable_rates(rows, recipe.SelectionGrid(learning_rates=[1e-3, 1e-2, 1e-1], min_agreement=0.9)) == [1e-3, 1e-2]


def test_fewer_than_three_seeds_are_refused(recipe):
    with pytest.raises(SystemExit, match="at least 3 demonstration draws"):
        recipe.main(["--seeds", "1", "2", "--model", "smollm2"])
