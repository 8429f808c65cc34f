"""The int8 margin rows bounded on the input grid (paramverify.bounds.margins).

``int8(x) = N(fq(x))`` with ``fq`` the input quantization: the lowering without
that node, evaluated at ``fq(x)``, is the int8 model at ``x``; bounding it on the
grid box ``[fq(lo), fq(hi)]`` drops the input rounding error, and certifies
balls the plain margin rows leave open.  Every certified ball is checked on
onnxruntime on both files.
"""

from __future__ import annotations

import numpy as np
import pytest
from int8_models import VARIANTS, export_float, ort_outputs, quantize, sample_ball

from paramverify import api
from paramverify.bounds import margins
from paramverify.bounds.interval import Interval
from paramverify.bounds.quantround import fq_value
from paramverify.properties import label_kept

RADIUS = 0.05


@pytest.fixture(scope="module", params=[VARIANTS[0], VARIANTS[3]], ids=lambda v: f"{v[0]}-{'channel' if v[1] else 'tensor'}")
def models(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("gridview")
    f = export_float(d / "float.onnx", seed=3)  # a model whose decision boundary crosses [0, 1]^36
    return f, quantize(f, d / "q.onnx", *request.param)


def test_the_lowering_without_input_rounding_at_fq_x_is_the_int8_model_at_x(models) -> None:
    f, q = models
    x0 = np.full(36, 0.5)
    problem = api.make_problem(str(f), quantized_model=str(q), x0=x0, radius=0.4)
    grid = margins.int8_input_grid(problem)
    assert grid is not None
    g, g_in = problem.graph, margins.without_input_rounding(problem.graph)
    params = {n: problem.box.hi[n] for n in problem.box.names}
    assert all(np.array_equal(problem.box.lo[n], problem.box.hi[n]) for n in problem.box.names)  # a concrete int8 copy
    xs = sample_ball(x0, 0.4, 500, seed=1)
    fq = fq_value(Interval(xs, xs), grid)
    exact = np.all(fq.lo == fq.hi, axis=1)  # points not at a rounding tie
    assert exact.sum() > 400
    np.testing.assert_allclose(g_in.evaluate(fq.lo[exact], params), g.evaluate(xs[exact], params), rtol=0, atol=1e-9)
    np.testing.assert_allclose(g.evaluate(xs[exact], params), ort_outputs(q, xs[exact]), atol=1e-4)


def test_the_grid_view_certifies_more_balls_and_every_certificate_holds(models, monkeypatch) -> None:
    f, q = models
    rng = np.random.default_rng(1)
    with_grid, plain = [], []
    balls = [rng.uniform(0.0, 1.0, 36) for _ in range(24)]
    for x0 in balls:
        problem = api.make_problem(str(f), quantized_model=str(q), x0=x0, radius=RADIUS)
        with_grid.append(margins.box_label_certified(problem))
    monkeypatch.setattr(margins, "int8_input_grid", lambda problem: None)
    for x0 in balls:
        plain.append(margins.box_label_certified(api.make_problem(str(f), quantized_model=str(q), x0=x0, radius=RADIUS)))
    assert not any(p and not g for p, g in zip(plain, with_grid))
    assert sum(with_grid) > sum(plain), (with_grid, plain)
    for x0, ok in zip(balls, with_grid):
        if ok:
            xs = sample_ball(x0, RADIUS, 2000, seed=2)
            assert np.all(label_kept(ort_outputs(f, xs, optimize=False), ort_outputs(q, xs), 0.5))
