"""The label line under a label counterexample (paramverify.cli.label_line), on hand-made outputs."""

from __future__ import annotations

import numpy as np

from paramverify.cli import label_line
from paramverify.results import Counterexample


def _cex(y0, yp, ort=None):
    return Counterexample(np.zeros(2), {}, np.asarray(y0, float), np.asarray(yp, float), replayed=ort is not None,
                          onnxruntime_outputs=None if ort is None else tuple(np.asarray(v, float) for v in ort))


def test_a_plain_flip_names_both_labels():
    assert label_line(_cex([0.0, 2.0, 1.0], [0.0, 1.0, 3.0])) == "\nlabels (float64): nominal 1, perturbed 2"


def test_onnxruntime_outputs_are_preferred():
    line = label_line(_cex([0.0, 2.0, 1.0], [0.0, 1.0, 3.0], ort=([3.0, 2.0, 1.0], [0.0, 5.0, 1.0])))
    assert line == "\nlabels (onnxruntime): nominal 0, perturbed 1"


def test_a_tie_is_named_with_what_argmax_picks():
    # the int8 outputs of QOperator image 11 of bench_int8.py --variant penalized: classes 3 and 9 tie
    y0 = [2.99, 7.32, 5.65, 8.41, 2.64, 6.02, 4.83, 2.90, 7.09, 8.63]
    yq = [2.949266, 7.33331, 5.499982, 8.449248, 2.550716, 5.898532, 4.862303, 2.949266, 7.01447, 8.449248]
    line = label_line(_cex(y0, yq, ort=(y0, yq)))
    assert line == ("\nlabels (onnxruntime): nominal 9; perturbed: outputs 3, 9 tie at 8.44925, so it does not give 9 "
                    "strictly (argmax picks 3)")


def test_a_single_output_model_gets_no_line():
    assert label_line(_cex([0.3], [-0.2])) == ""


def test_verify_prints_the_labels_of_a_label_counterexample(tmp_path, capsys):
    """A two-class Gemm at a point near its boundary: a 2% weight box flips the label (0 -> 1)."""
    import onnx
    from onnx import TensorProto, helper

    from paramverify.cli import main

    w = helper.make_tensor("W", TensorProto.FLOAT, [2, 2], [1.0, 0.0, 0.0, 1.0])
    b = helper.make_tensor("B", TensorProto.FLOAT, [2], [0.0, 0.0])
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "W", "B"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [w, b])
    path = tmp_path / "gemm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    code = main(["verify", str(path), "--property", "label", "--delta", "0.02", "--x0", "1,0.99", "--quiet"])
    out = capsys.readouterr().out
    assert code == 1 and out.startswith("FALSIFIED")
    assert "\nlabels (onnxruntime): nominal 0, perturbed 1" in out
