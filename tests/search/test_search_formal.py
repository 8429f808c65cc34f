"""The formal reward: proved label invariance under the policy's rounding boxes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import onnx
from onnx import TensorProto, helper, numpy_helper

from paramverify.errors import SpecError
from paramverify.search.formal import FormalConfig, FormalEvaluator, FormalTest, weight_only_model
from paramverify.search.space import BitPolicy


def identity_net() -> onnx.ModelProto:
    """y = x W^T with W = I (2x2), b = 0: class 0 iff x1 > x2."""
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "b"], ["y"], transB=1, name="fc")], "eye",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(np.eye(2, dtype=np.float32), "W"), numpy_helper.from_array(np.zeros(2, np.float32), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


X = np.array([[1.0, 0.5], [1.0, 0.9], [0.5, 1.0], [0.0, 1.0]])
Y = np.array([0, 0, 1, 0])  # the last label is wrong: never counted


@pytest.mark.parametrize("bits,expected", [(2, 0.0), (3, 0.0), (4, 0.5), (5, 0.5), (6, 0.75), (8, 0.75)])
def test_formal_reward_on_a_hand_checkable_net(bits, expected):
    """By hand: 1 and 0 lie on every grid, so the box is W +- r with r = scale / 2 = 1 / (2 (2^(b-1) - 1)).

    The worst case of y0 - y1 is x1 - x2 - 2 r (|x1| + |x2|): (1, .5) and (.5, 1) need r < 1/6
    (b >= 4; b = 3 gives r = 1/6 + slack, a tie at worst: not kept), (1, .9) needs r < 1/38 (b >= 6).
    """
    ev = FormalEvaluator(identity_net(), X, Y, FormalConfig(query_timeout_s=5.0))
    res = ev.evaluate(BitPolicy(("fc",), (bits,), (None,)))
    assert res.reward == pytest.approx(expected)
    assert res.metrics["nominal_accuracy"] == 0.75 and res.samples == 3
    r = ev.radii(BitPolicy(("fc",), (bits,), (None,)))["W"]
    assert np.all(r >= 1 / (2 * (2 ** (bits - 1) - 1)))


def test_boxes_contain_the_exported_weights():
    from paramverify.smoothing.onnx_torch import load_onnx

    from .nets import tiny_cnn

    proto = tiny_cnn(5)
    x = np.random.default_rng(0).uniform(0, 1, (2, 36))
    ev = FormalEvaluator(proto, x, np.array([0, 1]), FormalConfig())
    policy = BitPolicy(("conv", "fc1", "fc2"), (3, 5, 2), (None, None, None))
    radii = ev.radii(policy)
    q = weight_only_model(ev, policy)
    for name, w_name in (("conv", "cw"), ("fc1", "w1"), ("fc2", "w2")):
        w0 = ev.graph.initializers[w_name]
        wq = q.get_submodule(name).layer.weight.detach().numpy().astype(np.float64)
        assert np.all(np.abs(wq - w0) <= radii[w_name])
    assert load_onnx(proto) is not None


def test_formal_policies_quantize_weights_only():
    ev = FormalEvaluator(identity_net(), X, Y, FormalConfig())
    with pytest.raises(SpecError, match="weights only"):
        ev.evaluate(BitPolicy(("fc",), (4,), (4,)))


def test_formal_test_reports_proved_fraction_and_accuracy():
    t = FormalTest(identity_net(), X, Y, FormalConfig())
    f = t.certify_policy(None)
    assert f["metrics"] == {"proved_fraction": 0.75, "accuracy": 0.75}
    p = t.certify_policy(BitPolicy(("fc",), (4,), (None,)))
    assert p["metrics"]["proved_fraction"] == 0.5 and p["metrics"]["accuracy"] == 0.75
    assert t.has("fc=4/f") and t.certifications == 2


def test_an_interrupted_query_abandons_the_evaluation(monkeypatch):
    """An engine swallows Ctrl-C/SIGTERM and answers unknown ("interrupted"): that must not
    become an episode's score (it would be cached and replayed on --resume)."""
    from paramverify import api
    from paramverify.results import Unknown

    monkeypatch.setattr(api, "verify", lambda *a, **k: Unknown("interrupted", "bounds", 0.0))
    ev = FormalEvaluator(identity_net(), X, Y, FormalConfig(query_timeout_s=5.0))
    with pytest.raises(KeyboardInterrupt):
        ev.evaluate(BitPolicy(("fc",), (8,), (None,)))
