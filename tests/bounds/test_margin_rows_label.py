"""Label invariance over an input box is first tried on CROWN margin rows, for every model.

Before, only int8 lowerings used the margin rows; a float model with a parameter box went
straight to the per-output search, whose intervals of ``f_0`` and ``f_1`` overlap on any
wide box even when ``f_0 - f_1`` is constant.  Hand-computed case: ``h = relu(x + 100)``
is ``x + 100`` on the box (stable), and ``y = [h_0 + h_1 + 1, h_0 + h_1]`` has margin 1
everywhere; with every parameter moved by at most 1e-4, the margin moves by at most
``2 * 1e-4 * (2 * 199 + 2 * 1 + 1) < 0.1``.
"""

from __future__ import annotations

import numpy as np
from netgen import dense_net

from paramverify import api
from paramverify.options import Options
from paramverify.results import Verified


def _model(tmp_path):
    layers = [(np.eye(2), np.array([100.0, 100.0])), (np.ones((2, 2)), np.array([1.0, 0.0]))]
    path = tmp_path / "margin.onnx"
    path.write_bytes(dense_net(layers).SerializeToString())
    return path


def test_constant_margin_on_a_wide_box_is_verified_by_margin_rows(tmp_path) -> None:
    problem = api.make_problem(str(_model(tmp_path)), delta=1e-4, domain=[(-99.0, 99.0)] * 2)
    v = api.verify(problem, "label", options=Options(timeout_s=3.0))
    assert isinstance(v, Verified), v
    assert "margin rows" in v.method


def test_a_margin_that_can_flip_is_not_verified(tmp_path) -> None:
    """The same rows with a delta that lets the margin reach 0 must not verify."""
    problem = api.make_problem(str(_model(tmp_path)), delta=2e-2, domain=[(-99.0, 99.0)] * 2)
    v = api.verify(problem, "label", options=Options(timeout_s=3.0))
    assert not isinstance(v, Verified), v
