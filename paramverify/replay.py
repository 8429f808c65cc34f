"""Concrete witnesses: snapping to the model's dtype and replay on onnxruntime.

Every counterexample is evaluated twice before it is reported: in float64 on
the exact (float32-representable) values, which is the real-number semantics
the proofs are about, and by onnxruntime on a copy of the ONNX model whose
initializers are replaced by the counterexample's parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from paramverify.errors import ModelError, check
from paramverify.ir import Graph
from paramverify.properties import Problem, Property, violates
from paramverify.results import Counterexample


def snap(value: np.ndarray, lo: np.ndarray, hi: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round ``value`` to ``dtype`` while staying inside ``[lo, hi]``.

    Returns float64 values exactly representable in ``dtype``.  If no such
    value lies inside a degenerate interval, the nearest one is returned
    (the caller's float64 re-evaluation decides whether it still counts).
    """
    v = np.clip(np.asarray(value, dtype=np.float64), lo, hi)
    r = v.astype(dtype)
    below = r.astype(np.float64) < lo
    above = r.astype(np.float64) > hi
    r = np.where(below, np.nextafter(r, np.asarray(np.inf, dtype)), r)
    r = np.where(above, np.nextafter(r, np.asarray(-np.inf, dtype)), r)
    ok = (r.astype(np.float64) >= lo) & (r.astype(np.float64) <= hi)
    return np.where(ok, r.astype(np.float64), v.astype(dtype).astype(np.float64))


def input_dtype(graph: Graph) -> np.dtype:
    elem = graph.model.graph.input[[i.name for i in graph.model.graph.input].index(graph.input_name)].type.tensor_type.elem_type
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem))


def snap_witness(problem: Problem, x: np.ndarray, params: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    g = problem.graph
    xs = snap(np.asarray(x, dtype=np.float64).reshape(-1), problem.region.lo, problem.region.hi, input_dtype(g))
    ps = {n: snap(params[n], problem.box.lo[n], problem.box.hi[n], g.dtypes[n]) for n in problem.box.names}
    return xs, ps


def run_onnxruntime(graph: Graph, x: np.ndarray, params: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """Outputs of onnxruntime on ``x`` (flat or batch) with initializers replaced by ``params``."""
    model = onnx.ModelProto()
    model.CopyFrom(graph.model)
    if params:
        for init in model.graph.initializer:
            if init.name in params:
                arr = np.asarray(params[init.name]).astype(graph.dtypes[init.name]).reshape(graph.initializers[init.name].shape)
                init.CopyFrom(numpy_helper.from_array(arr, init.name))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    batch = graph.as_batch(x).astype(input_dtype(graph))
    if fixed_batch_of_one(graph.model, graph.input_name) and batch.shape[0] != 1:  # onnxruntime takes one input at a time
        y = np.concatenate([sess.run([graph.output_name], {graph.input_name: batch[i : i + 1]})[0]
                            for i in range(batch.shape[0])])
    else:
        y = sess.run([graph.output_name], {graph.input_name: batch})[0]
    return np.asarray(y, dtype=np.float64).reshape(batch.shape[0], -1)


def fixed_batch_of_one(model: onnx.ModelProto, input_name: str) -> bool:
    """Whether the model file fixes the batch dimension of its input ``input_name`` to 1 (dynamo
    exports, and torch.onnx.export without ``dynamic_axes``): onnxruntime then takes one row per run."""
    inp = next(i for i in model.graph.input if i.name == input_name)
    dims = inp.type.tensor_type.shape.dim
    return bool(dims) and dims[0].HasField("dim_value") and dims[0].dim_value == 1


def run_session(model: onnx.ModelProto, input_name: str, batch: np.ndarray, optimize: bool = False) -> np.ndarray:
    """Outputs of onnxruntime on an unmodified model, one sample at a time.

    ``optimize`` keeps onnxruntime's default graph optimizations (an int8
    model runs on its fused integer kernels, as deployed).  One sample per
    run: dynamic quantization picks its grid from the whole tensor.
    """
    opts = ort.SessionOptions()
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    out = model.graph.output[0].name
    rows = [np.asarray(sess.run([out], {input_name: batch[i : i + 1]})[0], dtype=np.float64).reshape(1, -1) for i in range(batch.shape[0])]
    return np.concatenate(rows, axis=0)


def run_pair(graph: Graph, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float, int8) outputs on onnxruntime for an int8 lowering (``graph.replay_models``)."""
    check(graph.replay_models is not None, "run_pair needs an int8 lowering")
    fm, qm = graph.replay_models  # type: ignore[misc]
    batch = graph.as_batch(x).astype(input_dtype(graph))
    q_in = next(i.name for i in qm.graph.input if i.name not in {t.name for t in qm.graph.initializer})
    return run_session(fm, graph.input_name, batch), run_session(qm, q_in, batch, optimize=True)


def confirm(problem: Problem, prop: Property, x: np.ndarray, params: Mapping[str, np.ndarray]) -> Counterexample | None:
    """A replayed counterexample, or None when it does not reproduce.

    The witness is snapped to representable values inside the boxes; it must
    violate ``prop`` both in float64 and on onnxruntime.
    """
    xs, ps = snap_witness(problem, x, params)
    g = problem.graph
    y0 = g.evaluate(xs)
    yp = g.evaluate(xs, ps)
    if not violates(prop, y0, yp, problem.level)[0]:
        return None
    if g.replay_models is not None:
        r0, rp = run_pair(g, xs)
    else:
        r0 = run_onnxruntime(g, xs)
        rp = run_onnxruntime(g, xs, ps)
    if not violates(prop, r0, rp, problem.level)[0]:
        return None
    return Counterexample(xs, ps, y0[0], yp[0], replayed=True, onnxruntime_outputs=(r0[0], rp[0]))


def replay_witness(problem: Problem, w: Counterexample) -> Counterexample:
    """``w`` with onnxruntime's nominal and perturbed outputs at its point (``replayed`` True).

    A bracket's witness is a concrete end, not a violation: its value comes from
    the float64 evaluation; the replay shows what the deployed float model gives
    there.  Raises ModelError when onnxruntime's outputs are not finite (a float32
    overflow or NaN: no number about such outputs can be trusted).
    """
    if w.replayed and w.onnxruntime_outputs is not None:
        return w
    g = problem.graph
    if g.replay_models is not None:  # an int8 lowering: the float file and the int8 file themselves
        f, q = run_pair(g, w.input)
        r0, rp = f[0], q[0]
    else:
        r0 = run_onnxruntime(g, w.input)[0]
        rp = run_onnxruntime(g, w.input, w.parameters)[0]
    if not (np.all(np.isfinite(r0)) and np.all(np.isfinite(rp))):
        raise ModelError(
            f"onnxruntime's output at the witness is not finite (nominal {r0.tolist()}, perturbed {rp.tolist()}): "
            "the model overflows float32 (or yields NaN) in this region; use a smaller input region or rescale the model"
        )
    return replace(w, replayed=True, onnxruntime_outputs=(r0, rp))


def witness(problem: Problem, x: np.ndarray, params: Mapping[str, np.ndarray], note: str = "") -> Counterexample:
    """A snapped witness with its float64 outputs (not a violation: a bracket's concrete end)."""
    xs, ps = snap_witness(problem, x, params)
    g = problem.graph
    return Counterexample(xs, ps, g.evaluate(xs)[0], g.evaluate(xs, ps)[0], replayed=False, note=note)
