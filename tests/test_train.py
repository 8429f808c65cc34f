"""Tests for paramverify.train: the numpy MLP trainer and its ONNX exporter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from paramverify.errors import SpecError
from paramverify.train import ACTIVATIONS, TrainedMLP, build_onnx_model, export_onnx, train_mlp


def _blobs(n: int = 120, k: int = 2, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``k`` well separated Gaussian blobs in 2-D with large raw offsets."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [4.0, 4.0], [0.0, 5.0], [5.0, 0.0]])[:k]
    y = np.arange(n) % k
    X = centres[y] + rng.normal(0.0, 0.7, size=(n, 2))
    return X * np.array([10.0, 0.5]) + np.array([150.0, 60.0]), y


def _run(path: Path, X: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": X.astype(np.float32)})[0]


def test_same_seed_gives_identical_weights_and_other_seed_differs() -> None:
    X, y = _blobs()
    a = train_mlp(X, y, seed=3, epochs=200)
    b = train_mlp(X, y, seed=3, epochs=200)
    c = train_mlp(X, y, seed=4, epochs=200)
    for wa, wb in zip(a.weights + a.biases, b.weights + b.biases):
        assert np.array_equal(wa, wb)
    assert not np.array_equal(a.weights[0], c.weights[0])


def test_parameters_are_float32_and_read_only() -> None:
    X, y = _blobs()
    m = train_mlp(X, y, epochs=50)
    for arr in (*m.weights, *m.biases, m.mean, m.std):
        assert arr is not None and arr.dtype == np.float32
        assert not arr.flags.writeable
    assert m.hidden == (3,) and m.n_features == 2 and m.standardized


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_each_activation_trains_exports_and_matches_onnxruntime(activation: str, tmp_path: Path) -> None:
    X, y = _blobs()
    m = train_mlp(X, y, hidden=(4,), activation=activation, epochs=400, lr=0.05)
    assert m.accuracy(X, y) >= 0.95
    path = tmp_path / f"{activation}.onnx"
    proto = export_onnx(m, path, feature_names=["a", "b"])
    assert path.stat().st_size > 0
    ops = [n.op_type for n in proto.graph.node]
    expected_act = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "leaky_relu": "LeakyRelu"}.get(activation)
    assert ops[:3] == ["Sub", "Div", "Gemm"]
    assert ops[-1] == "Sigmoid"
    assert (expected_act in ops[3:-1]) if expected_act else ops == ["Sub", "Div", "Gemm", "Gemm", "Sigmoid"]
    got = _run(path, X)
    assert got.shape == (X.shape[0], 1)
    np.testing.assert_allclose(got, m.predict_proba(X), rtol=1e-5, atol=1e-6)


def test_leaky_relu_node_uses_alpha_001(tmp_path: Path) -> None:
    X, y = _blobs()
    proto = export_onnx(train_mlp(X, y, activation="leaky_relu", epochs=20), tmp_path / "l.onnx")
    node = next(n for n in proto.graph.node if n.op_type == "LeakyRelu")
    assert onnx.helper.get_attribute_value(node.attribute[0]) == pytest.approx(0.01)


def test_export_layout_names_and_shapes(tmp_path: Path) -> None:
    X, y = _blobs()
    m = train_mlp(X, y, hidden=(5, 3), epochs=30)
    proto = export_onnx(m, tmp_path / "m.onnx", feature_names=["h", "w"], class_names=["no", "yes"])
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == 17 and proto.ir_version in (8, 9)
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    assert set(inits) == {"norm_mean", "norm_std", "W1", "b1", "W2", "b2", "W3", "b3"}
    assert inits["W1"].shape == (5, 2) and inits["W2"].shape == (3, 5) and inits["W3"].shape == (1, 3)
    assert all(a.dtype == np.float32 for a in inits.values())
    np.testing.assert_array_equal(inits["W2"], m.weights[1])
    np.testing.assert_array_equal(inits["norm_std"], m.std)
    assert all(n.name for n in proto.graph.node)
    assert len({n.name for n in proto.graph.node}) == len(proto.graph.node)
    assert all(onnx.helper.get_attribute_value(n.attribute[0]) == 1 for n in proto.graph.node if n.op_type == "Gemm")
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert inp.name == "x" and [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["N", 2]
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["N", 1]
    assert {p.key: p.value for p in proto.metadata_props}["feature_names"] == '["h", "w"]'


def test_export_is_byte_deterministic(tmp_path: Path) -> None:
    X, y = _blobs()
    m = train_mlp(X, y, epochs=30)
    export_onnx(m, tmp_path / "a.onnx")
    export_onnx(train_mlp(X, y, epochs=30), tmp_path / "b.onnx")
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()


def test_without_standardization_no_sub_div(tmp_path: Path) -> None:
    X, y = _blobs()
    Xs = (X - X.mean(axis=0)) / X.std(axis=0)
    m = train_mlp(Xs, y, standardize=False, epochs=200)
    proto = export_onnx(m, tmp_path / "n.onnx")
    assert m.mean is None and [n.op_type for n in proto.graph.node] == ["Gemm", "Relu", "Gemm", "Sigmoid"]
    np.testing.assert_allclose(_run(tmp_path / "n.onnx", Xs), m.predict_proba(Xs), rtol=1e-5, atol=1e-6)


def test_softmax_for_three_classes(tmp_path: Path) -> None:
    X, y = _blobs(k=3)
    m = train_mlp(X, y, hidden=(6,), activation="tanh", epochs=400, lr=0.05)
    assert m.n_classes == 3 and m.weights[-1].shape == (3, 6)
    p = m.predict_proba(X)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    assert m.accuracy(X, y) >= 0.95
    proto = export_onnx(m, tmp_path / "s.onnx")
    assert proto.graph.node[-1].op_type == "Softmax"
    got = _run(tmp_path / "s.onnx", X)
    assert got.shape == (X.shape[0], 3)
    np.testing.assert_allclose(got, p, rtol=1e-5, atol=1e-6)


def test_training_reduces_loss_and_beats_chance() -> None:
    X, y = _blobs()
    short = train_mlp(X, y, epochs=2, lr=0.001)
    long = train_mlp(X, y, epochs=300, lr=0.05)
    assert long.final_loss < short.final_loss
    assert long.final_loss < 0.2


def test_custom_initializer_names(tmp_path: Path) -> None:
    m = TrainedMLP(weights=(np.array([[1.0, -2.0]]),), biases=(np.array([0.5]),), activation="linear", n_classes=2)
    proto = build_onnx_model(m, initializer_names=[("W", "b")])
    assert [t.name for t in proto.graph.initializer] == ["W", "b"]
    X = np.array([[0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(m.predict_proba(X)[:, 0], 1.0 / (1.0 + np.exp(-(0.5 + X[:, 0] - 2.0 * X[:, 1]))))
    assert list(m.predict(X)) == [1, 0]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"activation": "swish"}, "activation"),
        ({"hidden": (0,)}, "hidden"),
        ({"epochs": 0}, "epochs"),
        ({"lr": -1.0}, "lr"),
    ],
)
def test_bad_hyperparameters_raise_spec_error(kwargs: dict[str, object], field: str) -> None:
    X, y = _blobs()
    with pytest.raises(SpecError) as info:
        train_mlp(X, y, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_bad_data_raise_spec_error() -> None:
    X, y = _blobs()
    with pytest.raises(SpecError, match="y"):
        train_mlp(X, y + 0.5)
    with pytest.raises(SpecError, match="y"):
        train_mlp(X, np.zeros(len(y)))
    with pytest.raises(SpecError, match="X"):
        train_mlp(X[:, 0], y)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(SpecError, match="NaN"):
        train_mlp(bad, y)


def test_bad_export_arguments(tmp_path: Path) -> None:
    X, y = _blobs()
    m = train_mlp(X, y, epochs=5)
    with pytest.raises(SpecError, match="feature_names"):
        export_onnx(m, tmp_path / "a.onnx", feature_names=["only-one"])
    with pytest.raises(SpecError, match="initializer_names"):
        export_onnx(m, tmp_path / "a.onnx", initializer_names=[("W", "b")])
    with pytest.raises(SpecError, match="path"):
        export_onnx(m, tmp_path / "missing" / "a.onnx")
    with pytest.raises(SpecError, match="X"):
        m.predict_proba(np.zeros((2, 3)))
