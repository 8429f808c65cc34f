"""An undecided int8-vs-float label agreement says how far it got: a bracket on the int8 margin.

The model is torch.onnx.export's TinyCNN with its weights scaled by 4 (so
that the int8 rounding matters) and quantized by onnxruntime (QDQ); on the
ball below the float label is proved constant at once while the int8 rows are
not.  The proved floor of the int8 margin must never be beaten by 10,000
sampled points on onnxruntime, must only rise with more pieces, and the
falsifier's lowest margin must be what onnxruntime gives at its input.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
from int8_models import SHAPE, VARIANTS, TinyCNN, ort_outputs, quantize, sample_ball

from paramverify import api
from paramverify.bounds import engine, margins
from paramverify.options import Deadline, Options
from paramverify.quantized.attack import label_disagreement
from paramverify.results import Unknown

torch = pytest.importorskip("torch")

RADIUS = 0.08
X0 = np.random.default_rng(9).uniform(0.2, 0.8, 36)


@pytest.fixture(scope="module")
def ball(tmp_path_factory):
    d = tmp_path_factory.mktemp("bracket")
    torch.manual_seed(0)
    model = TinyCNN(3).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0)
    f = d / "float.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros((1,) + SHAPE), str(f), input_names=["x"], output_names=["y"],
                          opset_version=17, dynamo=False, dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    q = quantize(f, d / "qdq.onnx", *VARIANTS[0])
    problem = api.make_problem(str(f), quantized_model=str(q), x0=X0, radius=RADIUS)
    xs = sample_ball(X0, RADIUS, 10_000)
    y_q = ort_outputs(q, xs)
    return f, q, problem, y_q


def _margin(y: np.ndarray, c: int) -> np.ndarray:
    others = np.delete(y, c, axis=1)
    return y[:, c] - others.max(axis=1)


def test_root_state_of_this_ball(ball):
    _, _, problem, _ = ball
    _, float_ok, int8_ok, _ = margins._rows_bounded(problem, problem.region.lo[None], problem.region.hi[None])
    assert float_ok[0] and not int8_ok[0]  # what the tests below rely on


def test_margin_floor_is_sound_and_rises_with_pieces(ball):
    _, _, problem, y_q = ball
    first = margins.certify_by_splits(problem, Deadline(None), max_boxes=1)
    more = margins.certify_by_splits(problem, Deadline(None), max_boxes=64)
    assert not first.certified and first.cls is not None and first.floor is not None
    assert first.floor <= 0
    sampled = _margin(y_q, first.cls).min()
    assert sampled > 0  # no disagreement on the samples
    assert first.floor <= sampled
    if not more.certified:
        assert more.cls == first.cls and first.floor <= more.floor <= sampled


def test_lowest_margin_is_onnxruntimes_at_an_input_of_the_ball(ball):
    _, q, problem, _ = ball
    found = label_disagreement(problem, Deadline(time.monotonic() + 5))
    assert found.counterexample is None and found.lowest_input is not None
    x = found.lowest_input
    assert np.all((x >= problem.region.lo) & (x <= problem.region.hi))
    assert _margin(ort_outputs(q, x[None]), found.cls)[0] == pytest.approx(found.lowest_margin, abs=1e-9)


def test_unknown_verdict_carries_the_bracket(ball, monkeypatch):
    _, _, problem, y_q = ball
    # stop the piece search after the first piece, as a time limit would on a harder ball
    monkeypatch.setattr(engine, "certify_by_splits", lambda p, d, progress=None: margins.certify_by_splits(p, d, max_boxes=1))
    monkeypatch.setattr(engine, "search_flips", _no_search)
    verdict = api.verify(problem, "label", options=Options(timeout_s=6))
    assert isinstance(verdict, Unknown), verdict
    m = verdict.margin
    assert m is not None and m.pieces == 1
    assert m.lower <= _margin(y_q, m.cls).min()
    assert m.upper is not None and m.lower <= m.upper
    assert "int8 model's margin for the float label" in verdict.reason
    out = verdict.to_json()["int8_margin"]
    assert out["class"] == m.cls and out["proved_at_least"] == m.lower and out["lowest_found"] == m.upper


def _no_search(problem, classes, options, deadline, verify_sigma=0.0):
    from paramverify.bounds.branch import SearchResult

    return SearchResult(lower=-np.inf, upper=np.inf, witness=None, boxes=0, complete=False, reason="deadline")


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def update(self, message: str, lower: float | None = None, upper: float | None = None) -> None:
        self.lines.append(message)


def test_progress_shows_pieces_and_the_falsifiers_lowest_margin(ball):
    _, _, problem, _ = ball
    root = margins.certify_by_splits(problem, Deadline(None), max_boxes=1)
    sink = _Lines()
    margins.certify_by_splits(problem, Deadline(None), max_boxes=2, progress=sink)
    assert sink.lines[0] == f"int8 pieces: 1 bounded, 2 open; margin >= {root.floor:.4g}"
    sink = _Lines()
    label_disagreement(problem, Deadline(time.monotonic() + 3), progress=sink)
    assert sink.lines and all(line.startswith("int8 falsifier, ") and "lowest margin" in line for line in sink.lines)
