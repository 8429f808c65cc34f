"""ai.onnx.ml linear models, rewritten into standard ONNX ops before lowering.

``LinearClassifier``, ``LinearRegressor`` and ``Scaler`` keep their
coefficients in attributes.  They are replaced by ``Gemm`` / ``Sub`` / ``Mul``
nodes whose coefficients become initializers (named
``<node>_coefficients``, ``<node>_intercepts``, ``<node>_offset``,
``<node>_scale``), so they are parameters like any weight and bias, and the
rewritten model still runs on onnxruntime (counterexamples are replayed on
it).  The semantics follow onnxruntime's kernels (checked by the tests):

* LinearClassifier: ``scores = X W^T + b`` with ``W`` of shape
  ``[classes, features]``, then ``post_transform`` NONE / LOGISTIC (sigmoid)
  / SOFTMAX; a single coefficient row for two class labels gives
  ``[1 - s, s]`` (NONE) or ``[1 - sigmoid(s), sigmoid(s)]`` (LOGISTIC);
* LinearRegressor: ``X W^T + b`` (post_transform NONE);
* Scaler: ``(X - offset) * scale`` (constants, not perturbed by default).

Only the score output (index 1) of a LinearClassifier can be used; its label
output is part of the classifier head (see :mod:`paramverify.heads`).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

ML_OPS = ("LinearClassifier", "LinearRegressor", "Scaler")


def _attrs(node: onnx.NodeProto) -> dict:
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def unsupported_reason(node: onnx.NodeProto) -> str | None:
    """Why an ai.onnx.ml linear node cannot be rewritten (None when it can)."""
    a = _attrs(node)
    if node.op_type == "LinearClassifier":
        pt = a.get("post_transform", "NONE")
        n_cls = len(a.get("classlabels_ints", []) or a.get("classlabels_strings", []))
        rows = len(a.get("intercepts", [])) or 1
        if pt not in ("NONE", "LOGISTIC", "SOFTMAX"):
            return f"post_transform {pt} is not supported (NONE, LOGISTIC, SOFTMAX are)"
        if rows == 1 and n_cls == 2 and pt == "SOFTMAX":
            return "a single-row binary classifier with post_transform SOFTMAX is not supported"
        if len(node.output) > 1 and not node.output[1]:
            return "the score output is not used"
    if node.op_type == "LinearRegressor" and a.get("post_transform", "NONE") != "NONE":
        return f"post_transform {a['post_transform']} is not supported"
    return None


def rewrite(node: onnx.NodeProto, index: int) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Standard nodes and initializers computing the node's (score) output."""
    a = _attrs(node)
    base = node.name or f"{node.op_type}_{index}"
    x = node.input[0]
    if node.op_type == "Scaler":
        offset = np.asarray(a.get("offset", [0.0]), dtype=np.float32)
        scale = np.asarray(a.get("scale", [1.0]), dtype=np.float32)
        mid = f"{base}_centred"
        inits = [numpy_helper.from_array(offset, f"{base}_offset"), numpy_helper.from_array(scale, f"{base}_scale")]
        nodes = [helper.make_node("Sub", [x, f"{base}_offset"], [mid], name=f"{base}_sub"),
                 helper.make_node("Mul", [mid, f"{base}_scale"], [node.output[0]], name=f"{base}_mul")]
        return nodes, inits
    coef = np.asarray(a.get("coefficients", []), dtype=np.float32)
    icpt = np.asarray(a.get("intercepts", []), dtype=np.float32)
    rows = icpt.size if icpt.size else int(a.get("targets", 1))
    if icpt.size == 0:
        icpt = np.zeros(rows, dtype=np.float32)
    w = coef.reshape(rows, -1)
    inits = [numpy_helper.from_array(w, f"{base}_coefficients"), numpy_helper.from_array(icpt, f"{base}_intercepts")]
    out = node.output[0] if node.op_type == "LinearRegressor" else node.output[1]
    pt = a.get("post_transform", "NONE")
    n_cls = len(a.get("classlabels_ints", []) or a.get("classlabels_strings", []))
    raw = out if (pt == "NONE" and not (rows == 1 and n_cls == 2)) else f"{base}_raw"
    nodes = [helper.make_node("Gemm", [x, f"{base}_coefficients", f"{base}_intercepts"], [raw], name=f"{base}_gemm", transB=1)]
    if node.op_type == "LinearClassifier":
        if rows == 1 and n_cls == 2:
            s = raw
            if pt == "LOGISTIC":
                s = f"{base}_sigmoid"
                nodes.append(helper.make_node("Sigmoid", [raw], [s], name=f"{base}_sigmoid"))
            one = f"{base}_one"
            inits.append(numpy_helper.from_array(np.ones((1, 1), dtype=np.float32), one))
            nodes.append(helper.make_node("Sub", [one, s], [f"{base}_other"], name=f"{base}_other"))
            nodes.append(helper.make_node("Concat", [f"{base}_other", s], [out], name=f"{base}_concat", axis=1))
        elif pt == "LOGISTIC":
            nodes.append(helper.make_node("Sigmoid", [raw], [out], name=f"{base}_sigmoid"))
        elif pt == "SOFTMAX":
            nodes.append(helper.make_node("Softmax", [raw], [out], name=f"{base}_softmax", axis=-1))
    return nodes, inits
