"""`paramverify reproduce` end to end: every Table 1 cell is a proved bracket within its target."""

from __future__ import annotations

import json

import pytest

from paramverify.cli import main
from paramverify.results import SCHEMA_VERSION

# dReal bisection brackets of the true CAT optimum (shared/ANCHORS.md)
DREAL_CAT = {0.005: (0.0285251, 0.0285263), 0.01: (0.0575256, 0.0575266)}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    assert main(["reproduce", "--out", str(out), "--points", "200", "--quiet"]) == 0
    return json.loads((out / "results.json").read_text()), out


def test_every_cell_meets_its_gap_target(result):
    data, _ = result
    assert len(data["cells"]) == 18  # 3 studies x 2 deltas x (epsilon + 2 sigmas)
    for cell in data["cells"]:
        assert cell["lower"] <= cell["upper"]
        assert cell["meets_gap_target"], cell
        assert cell["gap"] <= 1e-5, cell
    assert data["all_gap_targets_met"]


def test_results_carry_the_schema_and_replayed_witnesses(result):
    data, _ = result
    assert data["schema"] == SCHEMA_VERSION
    for cell in data["cells"]:
        if cell.get("witness") is not None:
            assert cell["witness"]["replayed_on_onnxruntime"] is True, cell
            assert len(cell["witness"]["onnxruntime_perturbed_output"]) == len(cell["witness"]["perturbed_output"])


def test_cat_epsilon_agrees_with_dreal(result):
    data, _ = result
    for cell in data["cells"]:
        if cell["study"] == "cat" and cell["quantity"] == "max_epsilon":
            lo, hi = DREAL_CAT[cell["delta"]]
            assert cell["lower"] <= hi and cell["upper"] >= lo  # the brackets overlap
            w = cell["witness"]
            assert w["input"] == pytest.approx([20.5, 2.0], abs=1e-4)  # the corner the optimum sits at


def test_sigma_never_exceeds_epsilon(result):
    """An input whose label flips moved by at least its margin, so sigma <= epsilon."""
    data, _ = result
    eps = {(c["study"], c["delta"]): c["upper"] for c in data["cells"] if c["quantity"] == "max_epsilon"}
    for c in data["cells"]:
        if c["quantity"] == "min_sigma":
            assert c["lower"] <= eps[(c["study"], c["delta"])]


def test_figures_written(result):
    data, out = result
    assert len(data["figures"]) == 6
    for f in data["figures"]:
        with open(f, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
