"""At a point input, an MLP's first layer under a parameter box is exactly a box of activations.

For ``h = relu(x @ W' + b)`` with ``x`` fixed (the point input, or a
parameter-free function of it), every pre-activation ``z_j = sum_i x_i W'_ij + b_j``
depends on its own parameters only (column ``j`` of ``W'`` and ``b_j``, read by no
other node).  Over the box, ``z_j`` takes every value of its interval
``[L_j, U_j]`` (a linear function of independent box coordinates), independently of
the other neurons, so the set of first-layer outputs is exactly the box
``prod_j [relu(L_j), relu(U_j)]``.

:func:`cut_first_layer` therefore replaces the layer by a parameter ``H`` with that
box.  The cut problem has exactly the same set of outputs as the original, so a
bound proved on it holds for the original; the bound search never spends work on
the first layer (its relaxations, its splits, the big matrix product per domain).
:meth:`FirstLayerCut.lift` maps a value of ``H`` back to first-layer parameters that
produce it (the relaxation's maximisers seed the falsifier, which runs on the
original problem).

Only ``Gemm`` (``transA = 0``) and ``MatMul`` followed by an ``Add`` of a bias are
cut, and only when the ``Relu`` reads nothing else; convolutions share their
weights across positions, so their outputs are not a box (no cut).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

import numpy as np

from paramverify.bounds.interval import Interval, IntervalKernel, as_interval, down, up
from paramverify.ir import Graph, Node
from paramverify.kernels import NumericKernel
from paramverify.ops.activation import Relu
from paramverify.ops.linear import Add, Gemm, MatMul
from paramverify.properties import Problem
from paramverify.specs import ParamBox


@dataclass(frozen=True)
class FirstLayerCut:
    """The cut problem and what is needed to map its ``H`` back to first-layer parameters."""

    problem: Problem
    name: str  # the Relu's output, a parameter of the cut problem
    x: np.ndarray  # the layer's (fixed) data operand, [1, n]
    weight: str | None  # perturbed weight (None: not perturbed)
    bias: str | None
    transB: bool  # the weight is [out, in] (Gemm transB = 1)
    alpha: float
    beta: float
    z_lo: np.ndarray  # [out] ends of the pre-activation interval (outward rounded)
    z_hi: np.ndarray

    def lift(self, params: Mapping[str, np.ndarray], box: ParamBox) -> dict[str, np.ndarray]:
        """Parameters of the original problem: the cut problem's, with the first layer set so
        that its output is (close to) ``params[name]`` (a falsifier start: not a proof of anything)."""
        h = np.asarray(params[self.name], dtype=np.float64).reshape(-1)
        out = {n: np.asarray(v) for n, v in params.items() if n != self.name}
        span = self.z_hi - self.z_lo
        t = np.where(span > 0, (np.maximum(h, 0.0) - self.z_lo) / np.where(span > 0, span, 1.0), 0.0)
        t = np.clip(np.where(h <= 0, 0.0, t), 0.0, 1.0)  # h = 0: the lowest z (<= 0 there)
        if self.weight is not None:
            lo, hi = box.lo[self.weight], box.hi[self.weight]
            w_lo, w_hi = (lo, hi) if self.transB else (lo.T, hi.T)  # [out, in]
            up_is_hi = (self.alpha * self.x.reshape(1, -1)) >= 0  # the end that raises z_j
            w_min = np.where(up_is_hi, w_lo, w_hi)
            w_max = np.where(up_is_hi, w_hi, w_lo)
            w = np.clip(w_min + t[:, None] * (w_max - w_min), w_lo, w_hi)
            out[self.weight] = w if self.transB else w.T
        if self.bias is not None:
            lo, hi = box.lo[self.bias], box.hi[self.bias]
            b_min, b_max = (lo, hi) if self.beta >= 0 else (hi, lo)
            b = b_min + t.reshape(np.shape(b_min)) * (b_max - b_min) if np.size(b_min) == t.size else b_min
            out[self.bias] = np.clip(b, lo, hi)
        return out


def _readers(graph: Graph) -> dict[str, list[Node]]:
    readers: dict[str, list[Node]] = {}
    for node in graph.nodes:
        for i in node.inputs:
            readers.setdefault(i, []).append(node)
    return readers


def cut_first_layer(problem: Problem) -> FirstLayerCut | None:
    """The cut problem (see the module docstring), or None where the first layer is not of that form."""
    g, box = problem.graph, problem.box
    if not problem.region.is_point:
        return None
    perturbed = set(box.names)
    readers = _readers(g)
    # the parameter-free prefix is evaluated at x0
    env: dict[str, np.ndarray] = {g.input_name: g.as_batch(problem.region.lo)}
    known = set(env) | set(g.constants) | {n for n in g.initializers if n not in perturbed} | {""}
    kernel = NumericKernel()
    values: dict[str, object] = {**g.initializers, **g.constants, **env, "": None}
    k = 0
    while k < len(g.nodes) and all(i in known for i in g.nodes[k].inputs):
        node = g.nodes[k]
        ins = [values[i] for i in node.inputs if i != ""]
        values[node.output] = node.op.apply(kernel, ins)
        known.add(node.output)
        k += 1
    if k + 1 >= len(g.nodes):
        return None
    first = g.nodes[k]
    op = first.op
    bias_node: Node | None = None
    if isinstance(op, Gemm) and not op.transA and first.inputs[0] in known and first.inputs[0] not in perturbed:
        x_name, w_name = first.inputs[0], first.inputs[1]
        b_name = first.inputs[2] if len(first.inputs) > 2 and first.inputs[2] != "" else None
        trans_b, alpha, beta, pre = bool(op.transB), float(op.alpha), float(op.beta), first.output
        last = k
    elif isinstance(op, MatMul) and first.inputs[0] in known and first.inputs[0] not in perturbed:
        x_name, w_name = first.inputs[0], first.inputs[1]
        nxt = g.nodes[k + 1]
        if not (isinstance(nxt.op, Add) and nxt.inputs[0] == first.output and readers.get(first.output) == [nxt]):
            return None
        bias_node, b_name = nxt, nxt.inputs[1]
        trans_b, alpha, beta, pre = False, 1.0, 1.0, nxt.output
        last = k + 1
    else:
        return None
    relu = g.nodes[last + 1] if last + 1 < len(g.nodes) else None
    if relu is None or not isinstance(relu.op, Relu) or readers.get(pre) != [relu] or relu.output == g.output_name:
        return None
    x = np.asarray(values[x_name], dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != 1:
        return None
    layer = {first.name} | ({bias_node.name} if bias_node is not None else set())
    w_val = g.initializers.get(w_name)
    if w_val is None or w_val.ndim != 2:
        return None
    n_out = w_val.shape[0] if trans_b else w_val.shape[1]
    if b_name is not None:
        b_val = g.initializers.get(b_name)
        if b_val is None or b_val.size not in (1, n_out) or (b_val.size == 1 and n_out > 1 and b_name in perturbed):
            return None  # a perturbed scalar bias is shared by every neuron: not a box
    for name in (w_name, b_name):
        if name is not None and any(nd.name not in layer for nd in readers.get(name, [])):
            return None  # the layer's parameters are read elsewhere too: not independent
    # the exact pre-activation interval, outward rounded
    ik = IntervalKernel()
    ivals: dict[str, object] = {x_name: x, "": None}
    for name in (w_name, b_name):
        if name is not None:
            ivals[name] = (Interval(np.asarray(box.lo[name], np.float64), np.asarray(box.hi[name], np.float64))
                           if name in perturbed else g.initializers[name])
    for node in g.nodes[k:last + 1]:
        ins = [ivals[i] if i in ivals else values[i] for i in node.inputs if i != ""]
        ivals[node.output] = node.op.apply(ik, ins)
    z = as_interval(ivals[pre])
    z_lo, z_hi = np.asarray(down(z.lo), dtype=np.float64).reshape(-1), np.asarray(up(z.hi), dtype=np.float64).reshape(-1)
    h_lo, h_hi = np.maximum(z_lo, 0.0), np.maximum(z_hi, 0.0)
    for node in g.nodes[k:last + 1]:
        values[node.output] = node.op.apply(kernel, [values[i] for i in node.inputs if i != ""])
    z0 = np.asarray(values[pre], dtype=np.float64).reshape(-1)
    h0 = np.clip(np.maximum(z0, 0.0), h_lo, h_hi)
    shape = (1, h0.size)
    name = relu.output
    available = set(g.initializers) | set(g.constants) | {g.input_name, name, ""}
    for node in g.nodes[last + 2:]:
        if any(i not in available for i in node.inputs):
            return None  # a later node reads the cut prefix (a skip connection)
        available.add(node.output)
    drop = {w_name, b_name} - {None}
    inits = {n: v for n, v in g.initializers.items() if n not in drop}
    inits[name] = h0.reshape(shape)
    cut_graph = replace(g, nodes=g.nodes[last + 2:], initializers=MappingProxyType(inits),
                        dtypes=MappingProxyType({**g.dtypes, name: np.dtype(np.float32)}),
                        roles=MappingProxyType({**g.roles, name: "stat"}))
    keep = [n for n in box.names if n not in drop]
    cut_box = ParamBox(MappingProxyType({**{n: box.nominal[n] for n in keep}, name: h0.reshape(shape)}),
                       MappingProxyType({**{n: box.lo[n] for n in keep}, name: h_lo.reshape(shape)}),
                       MappingProxyType({**{n: box.hi[n] for n in keep}, name: h_hi.reshape(shape)}),
                       f"{box.description} (first layer cut to its exact activation box)")
    cut = Problem(cut_graph, cut_box, problem.region, problem.level)
    return FirstLayerCut(cut, name, x, w_name if w_name in perturbed else None, b_name if b_name in perturbed else None,
                         trans_b, alpha, beta, z_lo, z_hi)
