"""Step 2 of the int8 lowering: line the normalized int8 graph up with the float model.

The float model's nodes are walked in order; each finds its counterpart
among the normalized int8 nodes reading the same values (up to rounding
nodes in between), with equal attributes and initializers of equal shape.
Names do not matter.  Three rewrites onnxruntime's quantizer makes are
accepted:

* a ``Relu`` folded into the rounding after it (the grid's low end is 0, so
  ``fq(relu(x)) == fq(x)``);
* ``Gemm(x, W, b)`` written as ``MatMul(x, W')`` then ``Add(b)``
  (``quantize_dynamic``), and ``Conv(x, W, b)`` as ``Conv(x, W)`` then
  ``Add(b)``;
* a requantization to the same grid after a grid-preserving op (dropped
  by the normalizer).

The merged graph is the float model with the int8 rounding nodes inserted
where the int8 model rounds; the int8 copy's parameter values are the
dequantized weights.  The first thing that does not correspond raises
:class:`SpecError` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from paramverify.errors import ModelError, SpecError
from paramverify.ops import default_registry
from paramverify.ops.quant import ENABLE_NAME
from paramverify.quantized.normalize import FIELD, FQ_OPS, Normalized

_PASS = ("Identity", "Dropout")
_FIX = "quantize the same float model (onnxruntime.quantization.quantize_static / quantize_dynamic on this .onnx file)"


@dataclass
class Merged:
    model: onnx.ModelProto
    values: dict[str, np.ndarray]
    n_rounding: int


def _name(n: onnx.NodeProto, i: int) -> str:
    return f"'{n.name or n.output[0] or f'#{i}'}' ({n.op_type})"


class Matcher:
    def __init__(self, float_model: onnx.ModelProto, norm: Normalized) -> None:
        self.fm = float_model
        self.nm = norm
        g = float_model.graph
        self.fconst: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        self.producer = {n.output[0]: n for n in norm.nodes}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in norm.nodes:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.used: set[int] = set()
        self.f2i: dict[str, str] = {}
        self.f2m: dict[str, str] = {}
        self.memo: dict[tuple[str, int], str] = {}
        self.nodes: list[onnx.NodeProto] = []
        self.values: dict[str, np.ndarray] = {}
        self.count = 0
        self.registry = default_registry()

    # ---------------------------------------------------------------- helpers
    def nconst(self, name: str) -> np.ndarray | None:
        return self.nm.inits.get(name)

    def is_fq(self, n: onnx.NodeProto) -> bool:
        return n.op_type in FQ_OPS

    def chain(self, target: str, start: str) -> list[onnx.NodeProto] | None:
        """The rounding nodes from ``start`` to ``target`` (forward order), or None if ``target`` is not reached."""
        out: list[onnx.NodeProto] = []
        cur = target
        while cur != start:
            p = self.producer.get(cur)
            if p is None or not self.is_fq(p):
                return None
            out.append(p)
            cur = p.input[0]
        return out[::-1]

    def closure(self, start: str) -> list[str]:
        """``start`` and every tensor reached from it through rounding nodes."""
        seen, todo = [start], [start]
        while todo:
            t = todo.pop()
            for c in self.consumers.get(t, []):
                if self.is_fq(c) and c.output[0] not in seen:
                    seen.append(c.output[0])
                    todo.append(c.output[0])
        return seen

    def apply(self, t: str, fqs: list[onnx.NodeProto]) -> str:
        """The merged tensor: float tensor ``t`` followed by the rounding nodes ``fqs``."""
        cur = self.f2m[t]
        for fq in fqs:
            key = (cur, id(fq))
            if key not in self.memo:
                self.count += 1
                out = f"{t}__int8_{self.count}"
                node = onnx.NodeProto()
                node.CopyFrom(fq)
                del node.input[:]
                node.input.extend([cur, ENABLE_NAME])
                node.output[0] = out
                node.name = out
                self.nodes.append(node)
                self.memo[key] = out
            cur = self.memo[key]
        return cur

    def same_attrs(self, f: onnx.NodeProto, q: onnx.NodeProto) -> bool:
        if f.op_type not in self.registry:
            return {a.name: helper.get_attribute_value(a) for a in f.attribute} == {a.name: helper.get_attribute_value(a) for a in q.attribute}
        try:
            return self.registry[f.op_type].from_onnx(f) == self.registry[q.op_type].from_onnx(q)
        except ModelError:
            return False

    def data_inputs(self, n: onnx.NodeProto) -> list[int]:
        return [i for i, t in enumerate(n.input) if t and t not in self.fconst]

    # ------------------------------------------------------------------ match
    def try_node(self, f: onnx.NodeProto, q: onnx.NodeProto) -> tuple[list[list[onnx.NodeProto] | None], str] | None:
        """Chains per data input when ``q`` corresponds to ``f``; None otherwise (with no side effect)."""
        if q.op_type != f.op_type or len(q.input) != len(f.input) or not self.same_attrs(f, q):
            return None
        chains: list[list[onnx.NodeProto] | None] = []
        for i, t in enumerate(f.input):
            if not t:
                chains.append(None)
                continue
            if t in self.fconst:
                v = self.nconst(q.input[i])
                if v is None and q.input[i] in self.nm.inits:
                    v = self.nm.inits[q.input[i]]
                if v is None or np.shape(v) != np.shape(self.fconst[t]):
                    return None
                chains.append(None)
                continue
            c = self.chain(q.input[i], self.f2i[t])
            if c is None:
                return None
            chains.append(c)
        return chains, q.output[0]

    def accept(self, f: onnx.NodeProto, q: onnx.NodeProto, chains: list[list[onnx.NodeProto] | None]) -> None:
        node = onnx.NodeProto()
        node.CopyFrom(f)
        for i, t in enumerate(f.input):
            if not t:
                continue
            if t in self.fconst:
                self.record(t, self.nm.inits[q.input[i]], f)
            else:
                node.input[i] = self.apply(t, chains[i] or [])
        self.nodes.append(node)
        self.used.add(id(q))
        self.f2i[f.output[0]] = q.output[0]
        self.f2m[f.output[0]] = f.output[0]

    def record(self, fname: str, value: np.ndarray, f: onnx.NodeProto) -> None:
        fv = self.fconst[fname]
        if fv.dtype.kind != "f":
            if not np.array_equal(np.asarray(value).reshape(-1), fv.reshape(-1)):
                raise SpecError(FIELD, f"the constant '{fname}' of node {f.name or f.op_type} differs in the quantized model", _FIX)
            return
        self.values[fname] = np.asarray(value, dtype=np.float64).reshape(fv.shape)

    def candidates(self, f: onnx.NodeProto) -> list[onnx.NodeProto]:
        d = self.data_inputs(f)
        if not d:
            return []
        out = []
        for t in self.closure(self.f2i[f.input[d[0]]]):
            out.extend(c for c in self.consumers.get(t, []) if not self.is_fq(c) and id(c) not in self.used)
        return out

    def relu_folded(self, f: onnx.NodeProto) -> bool:
        """A float Relu the quantizer folded into the rounding after it."""
        u = self.f2i[f.input[0]]
        t = f.input[0]
        p = self.producer.get(u)
        node = helper.make_node("Relu", [self.f2m[t]], [f.output[0]], name=f.name)
        if p is not None and p.op_type == "ActivationQuantize" and _grid_low(p) == 0:
            self.nodes.append(node)  # relu(fq(x)) == fq(x) there
            self.f2i[f.output[0]] = u
            self.f2m[f.output[0]] = f.output[0]
            return True
        for c in self.consumers.get(u, []):
            if c.op_type == "ActivationQuantize" and _grid_low(c) == 0:
                self.nodes.append(node)
                self.f2m[f.output[0]] = f.output[0]
                merged = self.apply(f.output[0], [c])
                self.f2i[f.output[0]] = c.output[0]
                self.f2m[f.output[0]] = merged
                return True
        return False

    def with_bias(self, f: onnx.NodeProto) -> bool:
        """Gemm(x, W, b) as MatMul(x, W^T) + Add(b); Conv(x, W, b) as Conv(x, W) + Add(b)."""
        if f.op_type not in ("Gemm", "Conv") or len(f.input) != 3 or f.input[1] not in self.fconst or f.input[2] not in self.fconst:
            return False
        attrs = {a.name: helper.get_attribute_value(a) for a in f.attribute}
        if f.op_type == "Gemm" and (attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0 or attrs.get("transA", 0)):
            return False
        w, b = self.fconst[f.input[1]], self.fconst[f.input[2]]
        for q in self.candidates(f):
            if q.op_type != ("MatMul" if f.op_type == "Gemm" else "Conv") or len(q.input) != 2:
                continue
            if f.op_type == "Conv":
                probe = onnx.NodeProto()
                probe.CopyFrom(f)
                del probe.input[2:]
                if not self.same_attrs(probe, q):
                    continue
            wq = self.nconst(q.input[1])
            if wq is None:
                continue
            if f.op_type == "Gemm" and attrs.get("transB", 0):
                wq = wq.T
            if wq.shape != w.shape:
                continue
            c = self.chain(q.input[0], self.f2i[f.input[0]])
            adds = [a for a in self.consumers.get(q.output[0], []) if a.op_type == "Add"]
            if c is None or len(adds) != 1:
                continue
            add = adds[0]
            bq = self.nconst(add.input[1] if add.input[0] == q.output[0] else add.input[0])
            if bq is None or bq.size != b.size:
                continue
            node = onnx.NodeProto()
            node.CopyFrom(f)
            node.input[0] = self.apply(f.input[0], c)
            self.nodes.append(node)
            self.values[f.input[1]] = wq.astype(np.float64)
            self.values[f.input[2]] = bq.astype(np.float64).reshape(b.shape)
            self.used.update({id(q), id(add)})
            self.f2i[f.output[0]] = add.output[0]
            self.f2m[f.output[0]] = f.output[0]
            return True
        return False

    def run(self) -> Merged:
        g = self.fm.graph
        fin = [i.name for i in g.input if i.name not in self.fconst]
        self.f2i[fin[0]] = self.nm.input_name
        self.f2m[fin[0]] = fin[0]
        for idx, f in enumerate(g.node):
            if f.op_type == "Constant":
                self.fconst[f.output[0]] = numpy_helper.to_array(helper.get_attribute_value(f.attribute[0]))
                self.nodes.append(f)
                continue
            d = self.data_inputs(f)
            if f.op_type in _PASS and d:
                self.f2i[f.output[0]] = self.f2i[f.input[0]]
                self.f2m[f.output[0]] = self.f2m[f.input[0]]
                continue
            if not d:
                self.nodes.append(f)
                self.fconst[f.output[0]] = np.zeros(0)
                continue
            done = False
            for q in self.candidates(f):
                got = self.try_node(f, q)
                if got is not None:
                    self.accept(f, q, got[0])
                    done = True
                    break
            if not done and f.op_type == "Relu":
                done = self.relu_folded(f)
            if not done:
                done = self.with_bias(f)
            if not done:
                there = sorted({f"{q.op_type}" for q in self.candidates(f)})
                where = f"; after the matched inputs it has {', '.join(there)}" if there else ""
                raise SpecError(
                    FIELD,
                    f"the float model's node {_name(f, idx)} has no counterpart in the quantized model{where}",
                    _FIX,
                )
        return self.finish()

    def finish(self) -> Merged:
        g = self.fm.graph
        fout = g.output[0].name
        c = self.chain(self.nm.output_name, self.f2i[fout])
        if c is None:
            origin = self.nm.origin.get(self.nm.output_name, self.nm.output_name)
            raise SpecError(FIELD, f"its output (from node {origin}) does not correspond to the float model's output '{fout}'", _FIX)
        out = self.apply(fout, c)
        # every int8 node that feeds the output must have been matched
        todo, seen = [self.nm.output_name], set()
        while todo:
            t = todo.pop()
            p = self.producer.get(t)
            if p is None or id(p) in seen:
                continue
            seen.add(id(p))
            if not self.is_fq(p) and id(p) not in self.used:
                raise SpecError(FIELD, f"its node {self.nm.origin.get(t, t)} has no counterpart in the float model", _FIX)
            todo.extend(i for i in p.input if i)
        model = onnx.ModelProto()
        model.CopyFrom(self.fm)
        del model.graph.node[:]
        model.graph.node.extend(pool_after_rounding(self.nodes, out))
        model.graph.initializer.append(numpy_helper.from_array(np.zeros((), np.float32), ENABLE_NAME))
        model.graph.output[0].name = out
        if not any(o.domain == "ai.paramverify" for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid("ai.paramverify", 1))
        values = dict(self.values)
        values[ENABLE_NAME] = np.ones(())
        n_round = sum(1 for n in self.nodes if n.op_type in FQ_OPS)
        return Merged(model, values, n_round)


def pool_after_rounding(nodes: list[onnx.NodeProto], output: str) -> list[onnx.NodeProto]:
    """Moves every static rounding whose only reader is a MaxPool to after that MaxPool.

    ``max(fq(a), fq(b)) = fq(max(a, b))`` because ``fq`` (round to a fixed grid, then
    clip) is non-decreasing, so the function is unchanged; the bounds then meet one
    rounding per pooled value instead of one per tap, and the pooling's relaxation
    sees the values before rounding.  A dynamic rounding (its grid depends on the
    whole tensor's range) is left where it is.
    """
    out = list(nodes)
    readers: dict[str, list[int]] = {}
    for k, n in enumerate(out):
        for i in n.input:
            readers.setdefault(i, []).append(k)
    for k, q in enumerate(nodes):
        t = q.output[0]
        if q.op_type != "ActivationQuantize" or t == output or len(readers.get(t, [])) != 1:
            continue
        j = readers[t][0]
        pool = out[j]
        if pool.op_type != "MaxPool" or list(pool.input) != [t] or len(pool.output) != 1:
            continue
        moved_pool = onnx.NodeProto()
        moved_pool.CopyFrom(pool)
        moved_pool.input[0] = q.input[0]
        moved_pool.output[0] = f"{t}__before_rounding"
        moved_q = onnx.NodeProto()
        moved_q.CopyFrom(q)
        moved_q.input[0] = moved_pool.output[0]
        moved_q.output[0] = pool.output[0]
        out[k], out[j] = moved_pool, moved_q
    return out


def _grid_low(n: onnx.NodeProto) -> float:
    a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
    return (a.get("qmin", -128) - a.get("zero_point", 0)) * a.get("scale", 1.0)


def match(float_model: onnx.ModelProto, norm: Normalized) -> Merged:
    return Matcher(float_model, norm).run()
