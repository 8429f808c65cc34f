"""Classifier heads, --output, ai.onnx.ml linear ops, the final softmax and per-channel axes.

Models are built at test time with skl2onnx, onnx.helper and onnxruntime's
own quantizer (for the per-channel convention).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from paramverify import api
from paramverify.cli import main
from paramverify.errors import ModelError, UnsupportedOpsError
from paramverify.ir import load_model
from paramverify.properties import scores_for_labels
from paramverify.replay import run_onnxruntime
from paramverify.results import Falsified
from paramverify.specs import QuantizationScheme, quantize

skl2onnx = pytest.importorskip("skl2onnx")
sklearn_datasets = pytest.importorskip("sklearn.datasets")


def _iris():
    x, y = sklearn_datasets.load_iris(return_X_y=True)
    return x.astype(np.float32), y


def _sk_model(kind: str) -> onnx.ModelProto:
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer, StandardScaler

    x, y = _iris()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "mlp":
            m = MLPClassifier((8,), max_iter=300, random_state=0).fit(x, y)
        elif kind == "logreg":
            m = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(x, y)
        elif kind == "logreg-binary":
            m = LogisticRegression(max_iter=300).fit(x, (y > 0).astype(int))
        elif kind == "linreg":
            m = make_pipeline(StandardScaler(), LinearRegression()).fit(x, x[:, 0] * 2)
        else:
            m = make_pipeline(Normalizer(), LinearRegression()).fit(x, x[:, 0])
        return skl2onnx.to_onnx(m, x[:1])


def _original_scores(model: onnx.ModelProto, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})
    if len(outs) == 1:
        return np.asarray(outs[0], dtype=np.float64).reshape(len(x), -1), None
    probs = outs[1]
    if isinstance(probs, list):  # ZipMap: a list of {class: probability}
        probs = [[d[k] for k in sorted(d)] for d in probs]
    return np.asarray(probs, dtype=np.float64), np.asarray(outs[0])


@pytest.mark.parametrize("kind", ["mlp", "logreg", "logreg-binary", "linreg"])
def test_sklearn_models_lower_and_match_onnxruntime(kind: str) -> None:
    model = _sk_model(kind)
    g = load_model(model)
    x, _ = _iris()
    probs, labels = _original_scores(model, x[::7])
    np.testing.assert_allclose(g.evaluate(x[::7]), probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run_onnxruntime(g, x[::7]), probs, rtol=1e-5, atol=1e-6)  # the cut model runs too
    if labels is not None:
        assert np.array_equal(np.argmax(g.evaluate(x[::7]), axis=1), labels)
        assert "classifier head skipped" in g.note and "ZipMap" in g.note
    if kind.startswith("logreg"):  # the LinearClassifier's coefficients are parameters
        assert any(n.endswith("_coefficients") for n in g.default_parameters())


def test_normalizer_on_data_is_refused_with_a_reason() -> None:
    with pytest.raises(UnsupportedOpsError) as info:
        load_model(_sk_model("normalizer"))
    assert "Normalizer" in str(info.value) and "--output" in str(info.value)


def test_logistic_regression_counterexample_replays_on_the_cut_model() -> None:
    g = load_model(_sk_model("logreg"))
    x, _ = _iris()
    problem = api.make_problem(g, delta=2.0, x0=x[60])
    verdict = api.verify(problem, "label")
    assert isinstance(verdict, Falsified) and verdict.counterexample.replayed


def test_output_picks_any_tensor_and_names_the_choices() -> None:
    model = _sk_model("mlp")
    g = load_model(model, output="next_activations")
    assert g.output_name == "next_activations" and g.evaluate(np.zeros(4)).shape == (1, 8)
    with pytest.raises(ModelError) as info:
        load_model(model, output="no_such_tensor")
    assert "add_result1" in str(info.value)


def test_final_softmax_is_skipped_for_labels_and_kept_for_eps() -> None:
    g = load_model(_sk_model("mlp"))
    scores = scores_for_labels(g)
    assert scores.output_name == "add_result1" and "Softmax is skipped" in scores.note
    x, _ = _iris()
    assert np.array_equal(np.argmax(scores.evaluate(x), 1), np.argmax(g.evaluate(x), 1))
    # the largest label-keeping delta is the same bracket with or without the softmax
    with_sm = api.bound(api.make_problem(g, unit_box=True, x0=x[60]), "delta")
    without = api.bound(api.make_problem(scores, unit_box=True, x0=x[60]), "delta")
    assert (with_sm.lower, with_sm.upper) == (without.lower, without.upper)
    # eps is stated on the probabilities: the change of a probability is at most 1
    eps = api.bound(api.make_problem(g, delta=10.0, x0=x[60]), "eps")
    assert eps.upper <= 1.0 + 1e-9


def test_cli_says_where_the_property_is_stated(tmp_path, capsys) -> None:
    path = tmp_path / "mlp.onnx"
    onnx.save(_sk_model("mlp"), path)
    x, _ = _iris()
    x0 = ",".join(f"{v:.4f}" for v in x[60])
    code = main(["verify", str(path), "--property", "label", "--bits", "8", "--x0", x0, "--json", "--quiet"])
    out = json.loads(capsys.readouterr().out)
    assert code in (0, 1, 3)
    assert out["output"]["tensor"] == "add_result1" and "ZipMap" in out["output"]["note"]
    code = main(["bound", str(path), "--property", "eps", "--bits", "8", "--x0", x0, "--json", "--quiet",
                 "--output", "add_result1", "--timeout", "10"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["output"]["tensor"] == "add_result1"
    code = main(["bits", str(path), "--x0", x0, "--json", "--quiet", "--no-delta", "--timeout", "5", "--max-bits", "10"])
    out = json.loads(capsys.readouterr().out)
    assert out["output"]["tensor"] == "add_result1"


def test_control_flow_is_named() -> None:
    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "b", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, ["N", 2])])
    cond = numpy_helper.from_array(np.array(True), "cond")
    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch, name="choice")], "cf",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], [cond])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(UnsupportedOpsError) as info:
        load_model(model)
    assert "control flow is not supported" in str(info.value) and "'choice'" in str(info.value)


# ------------------------------------------------------------------ per-channel


def _dense_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3)).astype(np.float32)
    w[:, 1] *= 10  # one output column with a much larger range
    g = rng.normal(size=(3, 3)).astype(np.float32)
    g[2] *= 5
    g0 = rng.normal(size=(3, 2)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "b"], ["hb"]),
             helper.make_node("Gemm", ["hb", "G", "c"], ["z"], transB=1),
             helper.make_node("Gemm", ["z", "G0"], ["y"])]
    graph = helper.make_graph(
        nodes, "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.array([0.1, -2.0, 0.5], np.float32), "b"),
         numpy_helper.from_array(g, "G"), numpy_helper.from_array(np.array([1.0, 0.01, -3.0], np.float32), "c"),
         numpy_helper.from_array(g0, "G0")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 9
    return model


def test_channel_axes_follow_onnxruntime_quantizer(tmp_path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = _dense_model()
    g = load_model(model)
    assert dict(g.channel_axes) == {"W": 1, "G": 0, "G0": 1}
    src, dst = tmp_path / "m.onnx", tmp_path / "q.onnx"
    onnx.save(model, src)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8,
                         extra_options={"MatMulConstBOnly": True})
    scales = {i.name: numpy_helper.to_array(i) for i in onnx.load(dst).graph.initializer if i.name.endswith("_scale")}
    scheme = QuantizationScheme(8, per_channel=True)
    _, s_w = quantize(g.initializers["W"], scheme, scheme.axis_for(g, "W"))
    np.testing.assert_allclose(s_w[0], scales["W_scale"], rtol=1e-6)  # one scale per column (output)
    _, s_g = quantize(g.initializers["G"], scheme, scheme.axis_for(g, "G"))
    np.testing.assert_allclose(s_g[:, 0], [v for k, v in scales.items() if k.startswith("G_")][0], rtol=1e-6)


def test_per_channel_box_uses_output_channels_and_one_scale_per_bias() -> None:
    g = load_model(_dense_model())
    box = QuantizationScheme(4, per_channel=True).to_box(g)
    rad_w = box.hi["W"] - g.initializers["W"]
    # columns of W have their own radius: the large column's radius is larger than the others'
    assert rad_w[:, 1].min() > 5 * rad_w[:, 0].max()
    # a bias keeps one scale: its radius is at least max|b| / (2 qmax) everywhere
    rad_b = np.maximum(box.hi["b"] - g.initializers["b"], g.initializers["b"] - box.lo["b"])
    assert np.all(rad_b >= 2.0 / 7 / 2 * (1 - 1e-9))
    # an explicit channel axis still overrides the convention
    rad_w0 = QuantizationScheme(4, per_channel=True, channel_axis=0).to_box(g).hi["W"] - g.initializers["W"]
    assert not np.allclose(rad_w0, rad_w)
