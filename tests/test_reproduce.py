"""`paramverify reproduce` end to end: every Table 1 cell is a proved bracket within its target."""

from __future__ import annotations

import json

import pytest

from encoders.dreal_backend import DRealEngine
from paramverify.casestudies import get_case_study
from paramverify.cli import main
from paramverify.engines import get_engine
from paramverify.options import Options
from paramverify.properties import MaxEpsilon
from paramverify.reproduce import problem_for
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


@pytest.mark.skipif(not DRealEngine.available(), reason=f"dReal not importable: {DRealEngine.unavailable_reason()}")
def test_cat_epsilon_agrees_with_dreal(result):
    """dReal's own bisection (run here) and the table's brackets both contain the CAT optimum."""
    data, _ = result
    cells = [c for c in data["cells"] if c["study"] == "cat" and c["quantity"] == "max_epsilon"]
    assert {c["delta"] for c in cells} == set(DREAL_CAT)
    for cell in cells:
        b = get_engine("dreal").optimise(problem_for(get_case_study("cat"), cell["delta"]), MaxEpsilon(),
                                         Options(timeout_s=60, tolerance=1e-6))
        assert b.complete and b.upper - b.lower <= 1e-6, b
        assert cell["lower"] <= b.upper and b.lower <= cell["upper"], (cell, b)  # the brackets overlap
        assert b.witness is not None and list(b.witness.input) == pytest.approx([20.5, 2.0], abs=0.05)
        lo, hi = DREAL_CAT[cell["delta"]]
        assert b.lower <= hi and lo <= b.upper  # and agree with the recorded dReal anchors


def test_cat_epsilon_agrees_with_recorded_dreal_anchors(result):
    """Where dReal does not import: the table against dReal brackets recorded earlier."""
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
