"""The deployed int8 model against its float model: every onnxruntime.quantization format end to end.

Soundness is checked against onnxruntime on both models: a VERIFIED label
agreement is never contradicted on 10,000 sampled points of the ball, a
proved bound on max |int8(x) - float(x)| is never beaten by a sample, and
every counterexample replays on both models.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from int8_models import VARIANTS, export_float, ort_outputs, quantize, sample_ball

from paramverify import api
from paramverify.options import Options
from paramverify.results import Falsified, Verified

RADIUS = 0.02
X0 = np.random.default_rng(3).uniform(0.2, 0.8, 36)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("int8")
    f = export_float(d / "float.onnx")
    qs = {v: quantize(f, d / f"{v[0]}_{v[1]}_{v[2]}_{v[3]}.onnx", *v) for v in VARIANTS}
    return f, qs


def _problem(f, q, radius=RADIUS):
    return api.make_problem(str(f), quantized_model=str(q), x0=X0, radius=radius)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(str(x) for x in v))
def test_label_agreement_and_bound_hold_on_onnxruntime(models, variant):
    f, qs = models
    q = qs[variant]
    problem = _problem(f, q)
    assert "int8 model" in problem.box.description
    xs = sample_ball(X0, RADIUS, 10_000)
    y_float, y_int8 = ort_outputs(f, xs, optimize=False), ort_outputs(q, xs)
    # the lowering reproduces onnxruntime's int8 function (dynamic: up to its own grid choice)
    values = {n: problem.box.lo[n] for n in problem.box.names}
    ours = problem.graph.evaluate(xs[:200], values)
    assert np.max(np.abs(ours - y_int8[:200])) < (1e-5 if variant[0] != "dynamic" else 5e-3)
    bracket = api.bound(problem, "eps", options=Options(timeout_s=4, tolerance=1e-3))
    assert bracket.lower <= bracket.upper
    assert np.max(np.abs(y_int8 - y_float)) <= bracket.upper
    verdict = api.verify(problem, "label", options=Options(timeout_s=8))
    assert isinstance(verdict, Verified), verdict
    assert np.all(np.argmax(y_int8, axis=1) == np.argmax(y_float, axis=1))


@pytest.mark.parametrize("variant", [VARIANTS[0], VARIANTS[3]], ids=lambda v: v[0])
def test_counterexample_replays_on_both_models(models, variant):
    f, qs = models
    q = qs[variant]
    verdict = api.verify(_problem(f, q), "eps", epsilon=1e-7, options=Options(timeout_s=8))
    assert isinstance(verdict, Falsified)
    cex = verdict.counterexample
    assert cex.replayed
    assert np.all(np.abs(cex.input - X0) <= RADIUS * (1 + 1e-6))
    y0, yq = ort_outputs(f, cex.input[None], optimize=False), ort_outputs(q, cex.input[None])
    assert np.max(np.abs(yq - y0)) > 1e-7


def test_rounding_enclosures_contain_onnx_semantics():
    from paramverify.bounds.interval import Interval
    from paramverify.bounds.quantround import dyn_value, fq_error, fq_value
    from paramverify.ops.quant import Grid, dynamic_fake_quant, fake_quant

    rng = np.random.default_rng(0)
    for grid in (Grid(0.05, 0, -128, 127), Grid(0.013, 0, 0, 255), Grid(0.1, 30, 0, 255)):
        ties = (np.arange(-300, 300) + 0.5) * grid.scale
        x = np.concatenate([rng.uniform(-20, 20, 4000), ties])
        lo, hi = x - rng.uniform(0, 0.3, x.size), x + rng.uniform(0, 0.3, x.size)
        iv = Interval(lo, hi)
        v, e = fq_value(iv, grid), fq_error(iv, grid)
        for t in (lo, hi, x):
            fq = fake_quant(t, grid)
            assert np.all((v.lo <= fq) & (fq <= v.hi))
            assert np.all((e.lo <= fq - t) & (fq - t <= e.hi))
    x = rng.uniform(-3, 5, (50, 40))
    v = dyn_value(Interval(x - 0.1, x + 0.1), 0, 255)
    fq = dynamic_fake_quant(x, 0, 255)
    assert np.all((v.lo <= fq) & (fq <= v.hi))


def test_rounded_bits_is_a_concrete_copy(models):
    f, _ = models
    p = api.make_problem(str(f), bits=4, rounded=True, x0=X0, radius=0.01)
    assert "round-to-nearest 4-bit" in p.box.description
    assert all(np.array_equal(p.box.lo[n], p.box.hi[n]) for n in p.box.names)
    box = api.make_problem(str(f), bits=4, x0=X0, radius=0.01).box
    assert all(np.all((box.lo[n] <= p.box.lo[n]) & (p.box.lo[n] <= box.hi[n])) for n in p.box.names)


def test_radius_needs_x0(models):
    from paramverify.errors import SpecError

    f, _ = models
    with pytest.raises(SpecError, match="radius"):
        api.make_problem(str(f), delta=0.01, domain=[(0, 1)], radius=0.1)
    p = api.make_problem(str(f), delta=0.01, x0=X0, radius=0.1)
    assert np.all(p.region.lo < X0 - 0.1 + 1e-12) and np.all(p.region.hi > X0 + 0.1 - 1e-12)


def test_model_that_does_not_correspond_is_one_line(models, tmp_path):
    f, _ = models
    other = export_float(tmp_path / "other.onnx", seed=1, channels=4)
    q = quantize(other, tmp_path / "other_q.onnx", "QDQ", False, "QInt8", "QInt8")
    proc = subprocess.run(
        [sys.executable, "-m", "paramverify", "verify", str(f), "--quantized", str(q), "--property", "label",
         "--x0", ",".join(f"{v:.4f}" for v in X0), "--radius", "0.01", "--quiet"],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "no counterpart" in lines[0] and "Conv" in lines[0]


def test_quantized_cli_end_to_end(models):
    f, qs = models
    q = qs[VARIANTS[2]]
    proc = subprocess.run(
        [sys.executable, "-m", "paramverify", "bound", str(f), "--quantized", str(q), "--property", "eps",
         "--x0", ",".join(f"{v:.6f}" for v in X0), "--radius", "0.01", "--timeout", "4", "--tolerance", "1e-3", "--quiet", "--json"],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode in (0, 3), proc.stderr
    import json

    out = json.loads(proc.stdout)
    assert out["box"]["description"].startswith("int8 model")
    assert out["lower"] <= out["upper"]


def test_hinted_enclosures_contain_both_models(models):
    from paramverify.bounds.sound import hinted_box_outputs

    f, qs = models
    problem = _problem(f, qs[VARIANTS[1]], radius=0.05)
    out = hinted_box_outputs(problem.graph, problem.box, problem.region.lo[None], problem.region.hi[None])
    xs = sample_ball(X0, 0.05, 2000)
    values = {n: problem.box.lo[n] for n in problem.box.names}
    y0, yq = problem.graph.evaluate(xs), problem.graph.evaluate(xs, values)
    assert np.all((out.n.lo <= y0) & (y0 <= out.n.hi))
    assert np.all((out.p.lo <= yq) & (yq <= out.p.hi))
    assert np.all((out.d.lo <= yq - y0) & (yq - y0 <= out.d.hi))


def test_margin_certificate_is_sound_and_refuses_flips(tmp_path):
    from paramverify.bounds.margins import box_label_certified

    f = export_float(tmp_path / "m.onnx", seed=4)
    rng = np.random.default_rng(1)
    for radius, delta in ((0.01, 1e-3), (0.5, 0.2)):
        p = api.make_problem(str(f), delta=delta, x0=X0, radius=radius)
        ok = box_label_certified(p)
        xs = sample_ball(X0, radius, 3000, seed=2)
        y0 = p.graph.evaluate(xs)
        params = p.box.sample(rng)
        yp = p.graph.evaluate(xs, params)
        same = np.argmax(y0, 1) == np.argmax(yp, 1)
        if ok:
            assert same.all() and len(set(np.argmax(y0, 1))) == 1
        if radius == 0.5:
            assert not ok


def test_z3_refuses_int8_rounding_and_rounded_needs_bits(models, tmp_path):
    f, qs = models
    proc = subprocess.run(
        [sys.executable, "-m", "paramverify", "verify", str(f), "--quantized", str(qs[VARIANTS[0]]), "--property", "label",
         "--x0", ",".join(f"{v:.4f}" for v in X0), "--radius", "0.01", "--backend", "z3", "--quiet", "--timeout", "20"],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "int8 activation rounding" in proc.stderr
    from paramverify.errors import SpecError

    with pytest.raises(SpecError, match="rounded: needs --bits"):
        api.make_problem(str(f), delta=0.1, rounded=True, x0=X0)
