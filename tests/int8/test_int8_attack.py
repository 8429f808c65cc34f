"""Falsifiers for the int8 model against its float model (paramverify.quantized.attack).

A ball that straddles the float model's decision boundary holds inputs where
the int8 and float labels differ: the float-margin descent finds one and it
replays on onnxruntime on both files.  The lower end of an eps bracket is a
concrete input whose gap onnxruntime reproduces on both files.
"""

from __future__ import annotations

import numpy as np
import pytest
from int8_models import SHAPE, VARIANTS, export_float, ort_outputs, quantize, sample_ball

from paramverify import api
from paramverify.options import Deadline, Options
from paramverify.properties import label_kept
from paramverify.quantized.attack import label_disagreement
from paramverify.results import Falsified


@pytest.fixture(scope="module")
def qdq(tmp_path_factory):
    d = tmp_path_factory.mktemp("int8attack")
    f = export_float(d / "float.onnx", seed=3)
    return f, quantize(f, d / "qdq.onnx", *VARIANTS[0])


def _boundary_point(f) -> np.ndarray:
    """A point of [0, 1]^d on the float model's decision boundary (bisection between two labels)."""
    rng = np.random.default_rng(5)
    xs = rng.uniform(0, 1, (400, int(np.prod(SHAPE))))
    y = ort_outputs(f, xs, optimize=False)
    lab = np.argmax(y, axis=1)
    a = xs[0]
    b = xs[int(np.flatnonzero(lab != lab[0])[0])]
    for _ in range(40):
        m = (a + b) / 2
        if np.argmax(ort_outputs(f, m[None], optimize=False)[0]) == lab[0]:
            a = m
        else:
            b = m
    return (a + b) / 2


def test_disagreement_across_the_float_boundary_replays_on_both_files(qdq):
    f, q = qdq
    x0 = _boundary_point(f)
    problem = api.make_problem(str(f), quantized_model=str(q), x0=x0, radius=0.05)
    ce = label_disagreement(problem, Deadline(None)).counterexample
    assert ce is not None and ce.replayed
    assert np.all(np.abs(ce.input - x0) <= 0.05 * (1 + 1e-6))
    y_f, y_q = ort_outputs(f, ce.input[None], optimize=False), ort_outputs(q, ce.input[None])
    assert not label_kept(y_f, y_q, 0.5)[0]  # the int8 model does not keep the float label there
    verdict = api.verify(problem, "label", options=Options(timeout_s=20))
    assert isinstance(verdict, Falsified) and verdict.counterexample.replayed


def test_eps_lower_end_is_reached_on_onnxruntime(qdq):
    f, q = qdq
    x0 = np.random.default_rng(3).uniform(0.2, 0.8, 36)
    problem = api.make_problem(str(f), quantized_model=str(q), x0=x0, radius=0.05)
    b = api.bound(problem, "eps", options=Options(timeout_s=4, tolerance=1e-3))
    w = b.witness
    assert w is not None and w.replayed
    y_f = ort_outputs(f, w.input[None], optimize=False)
    gap = np.max(np.abs(ort_outputs(q, w.input[None]) - y_f))
    # the witness's value is the real-arithmetic gap; onnxruntime's float model is float32
    assert b.lower <= gap + 1e-6 * (1 + np.max(np.abs(y_f))) and gap <= b.upper
    xs = sample_ball(x0, 0.05, 300, seed=7)
    sampled = np.max(np.abs(ort_outputs(q, xs) - ort_outputs(f, xs, optimize=False)))
    assert sampled <= b.upper
    assert b.lower >= 0.9 * sampled  # corners and straight-through moves do at least about as well as sampling


def test_confirm_int8_refuses_an_agreeing_point_and_accepts_the_falsifiers(qdq):
    from paramverify.quantized.attack import confirm_int8

    f, q = qdq
    x0 = _boundary_point(f)
    problem = api.make_problem(str(f), quantized_model=str(q), x0=x0, radius=0.05)
    # a point deep inside one class: both files agree there, nothing to confirm
    deep = x0 + 0.05 * np.sign(x0 - 0.5)
    y_f, y_q = ort_outputs(f, deep[None], optimize=False), ort_outputs(q, deep[None])
    if label_kept(y_f, y_q, 0.5)[0]:
        assert confirm_int8(problem, deep) is None
    ce = label_disagreement(problem, Deadline(None)).counterexample
    assert ce is not None
    again = confirm_int8(problem, ce.input)
    assert again is not None and again.replayed
    r_f, r_q = again.onnxruntime_outputs
    assert not label_kept(r_f[None], r_q[None], 0.5)[0]


def test_split_certificate_does_not_start_a_batch_past_its_deadline(qdq, monkeypatch):
    import time

    import paramverify.bounds.margins as margins

    f, q = qdq
    problem = api.make_problem(str(f), quantized_model=str(q), x0=_boundary_point(f), radius=0.05)

    def slow(problem, lo, hi):  # every piece takes 0.3 s and is never certified
        time.sleep(0.3)
        no = np.zeros(len(lo), dtype=bool)
        return np.zeros(len(lo), dtype=int), no, no, np.full(len(lo), -np.inf)

    monkeypatch.setattr(margins, "_rows_bounded", slow)
    t = time.monotonic()
    outcome = margins.certify_by_splits(problem, Deadline(time.monotonic() + 0.5))
    assert not outcome.certified and outcome.floor is None  # the float rows never held: no int8 margin floor
    assert time.monotonic() - t < 0.5  # the second batch (0.3 s) would end past the deadline: not started


@pytest.mark.parametrize("variant", [VARIANTS[0], VARIANTS[3]], ids=lambda v: v[0])
def test_int8_input_clip_is_exact_on_onnxruntime_and_the_certificate_sound(variant, tmp_path):
    """The margin certificate bounds the int8 rows on the box clipped to the input grid's range:
    onnxruntime gives the same int8 outputs on x and on clip(x, L, H), and a certified ball
    crossing 0 shows no label change on 10,000 samples."""
    from paramverify.bounds.margins import box_label_certified, int8_input_grid

    f = export_float(tmp_path / "robust.onnx", seed=0)  # one class on the whole ball
    q = quantize(f, tmp_path / "q.onnx", *variant)
    rng = np.random.default_rng(3)
    x0 = rng.uniform(0.2, 0.8, 36)
    x0[rng.random(36) < 0.5] = 0.0
    problem = api.make_problem(str(f), quantized_model=str(q), x0=x0, radius=0.3)
    grid = int8_input_grid(problem)
    rng_in = None if grid is None else (float(grid.low), float(grid.high))
    assert rng_in is not None and rng_in[0] <= 0.0 < rng_in[1]
    xs = sample_ball(x0, 0.3, 10_000, seed=4)
    y_q = ort_outputs(q, xs)
    assert np.array_equal(y_q, ort_outputs(q, np.clip(xs, *rng_in).astype(np.float32).astype(np.float64)))
    assert box_label_certified(problem)
    assert np.all(label_kept(ort_outputs(f, xs, optimize=False), y_q, 0.5))


def test_dynamic_models_get_no_input_clip(qdq, tmp_path):
    from paramverify.bounds.margins import int8_input_grid

    f, _ = qdq
    q = quantize(f, tmp_path / "d.onnx", *VARIANTS[4])
    assert int8_input_grid(api.make_problem(str(f), quantized_model=str(q), x0=np.full(36, 0.5), radius=0.1)) is None


def test_every_point_the_falsifiers_score_reads_as_itself_in_the_file(qdq, monkeypatch):
    """The searches score points with the int8 file, which reads float32: a float64 box end
    (like 0.605) can be read as its float32 neighbour outside the region, and no witness could
    use that score (the search used to drift onto such ends and stay there).  The searches now
    run on the region's ends rounded inwards, so every point they score is read inside it."""
    import time

    from paramverify.quantized import attack

    f, q = qdq
    x0 = np.random.default_rng(11).uniform(0.2, 0.8, int(np.prod(SHAPE)))
    problem = api.make_problem(str(f), quantized_model=str(q), x0=x0, radius=0.05)
    lo, hi = problem.region.lo, problem.region.hi
    assert np.any(lo.astype(np.float32).astype(np.float64) != lo)  # the region's ends are not all float32
    seen = []
    real = attack.int8_runner

    def recording(p):
        run = real(p)

        def rec(xs):
            seen.append(np.array(xs, dtype=np.float64).reshape(len(xs), -1))
            return run(xs)

        return rec

    monkeypatch.setattr(attack, "int8_runner", recording)
    found = label_disagreement(problem, Deadline(time.monotonic() + 3))
    attack.gap_points(problem, Deadline(time.monotonic() + 3))
    xs = np.concatenate(seen)
    assert len(xs) > 1000
    read = xs.astype(np.float32).astype(np.float64)  # what the file computes with
    assert np.all((read >= lo) & (read <= hi))
    if found.lowest_input is not None:
        assert np.all((found.lowest_input >= lo) & (found.lowest_input <= hi))


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
def test_files_with_a_batch_fixed_to_one_run_row_by_row(fmt, tmp_path):
    """torch.onnx.export without dynamic_axes fixes the batch to 1; onnxruntime refuses a
    batch of more rows, so the int8 runner (and the falsifiers and eps bound over it) runs
    such a file one row at a time and gets the file's own outputs."""
    from paramverify.quantized.attack import float_runner, int8_runner

    f = export_float(tmp_path / "float.onnx", seed=3, dynamic_batch=False)
    variant = next(v for v in VARIANTS if v[0] == fmt)
    q = quantize(f, tmp_path / "q.onnx", *variant)
    x0 = np.full(int(np.prod(SHAPE)), 0.5)
    problem = api.make_problem(str(f), quantized_model=str(q), x0=x0, radius=0.05)
    xs = sample_ball(x0, 0.05, 7, seed=1)
    got = int8_runner(problem)(xs)
    assert np.allclose(got, ort_outputs(q, xs), rtol=0, atol=1e-6)
    # the float file scores the searches' candidates too (float32, several times faster than float64)
    assert np.allclose(float_runner(problem)(xs), ort_outputs(f, xs, optimize=False), rtol=1e-5, atol=1e-5)
    b = api.bound(problem, "eps", options=Options(timeout_s=20))  # the falsifiers score batches of points
    assert 0.0 <= b.lower <= b.upper
    assert float(np.max(np.abs(ort_outputs(q, xs) - ort_outputs(f, xs, optimize=False)))) <= b.upper


def test_coordinate_moves_change_one_to_seven_distinct_coordinates_inside_the_box():
    """Each candidate of the coordinate search moves 1-7 coordinates of x: even rows to a box end,
    odd rows to a value inside the box; the rest stay x's."""
    from paramverify.quantized.attack import _coordinate_moves

    rng = np.random.default_rng(0)
    d = 20
    lo, hi = -np.arange(1, d + 1, dtype=float), np.arange(1, d + 1, dtype=float)
    x = np.full(d, 0.25)
    cand = _coordinate_moves(x, lo, hi, rng, 400)
    assert cand.shape == (400, d)
    moved = cand != x
    assert np.all((moved.sum(axis=1) >= 1) & (moved.sum(axis=1) <= 7))
    assert set(moved.sum(axis=1)) == set(range(1, 8))
    assert np.all((cand >= lo) & (cand <= hi))
    even = cand[::2][moved[::2]]
    ends = np.concatenate([np.broadcast_to(lo, cand.shape)[::2][moved[::2]], np.broadcast_to(hi, cand.shape)[::2][moved[::2]]])
    assert np.all(np.isin(even, ends))
    assert not np.any(np.isin(cand[1::2][moved[1::2]], np.concatenate([lo, hi])))
    assert np.unique(np.flatnonzero(moved.any(axis=0))).size == d  # every coordinate gets moved somewhere
    tiny = _coordinate_moves(np.zeros(3), -np.ones(3), np.ones(3), rng, 50)  # fewer coordinates than 7
    assert np.all(((tiny != 0).sum(axis=1) >= 1) & ((tiny != 0).sum(axis=1) <= 3))
