"""The committed 1.6M-parameter MNIST MLP: an 8-bit label certificate, and samples that agree with it.

The model (``benchmarks/models/mnist_784_1024_512_256_256_256_10.onnx``,
provenance beside it) is the one ``benchmarks/bench_large.py`` times; here only
verdicts are checked, never speed.  The inputs are real MNIST test images
(foolbox's 20, shipped in ``paramverify/smoothing/models``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from paramverify import api
from paramverify.ir import load_model
from paramverify.options import Options
from paramverify.results import Verified
from paramverify.specs import QuantizationScheme, quantize

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "benchmarks" / "models" / "mnist_784_1024_512_256_256_256_10.onnx"
IMAGES = ROOT / "paramverify" / "smoothing" / "models" / "mnist_test_20_x.npy"
LABELS = ROOT / "paramverify" / "smoothing" / "models" / "mnist_test_20_y.npy"


@pytest.fixture(scope="module")
def graph():
    return load_model(MODEL)


def test_committed_file_is_the_documented_one() -> None:
    meta = json.loads(MODEL.with_suffix(".json").read_text())
    data = MODEL.read_bytes()
    assert hashlib.sha256(data).hexdigest() == meta["sha256"]
    assert meta["n_parameters"] == 1_594_122


def test_eight_bit_label_certificate_holds_on_samples(graph) -> None:
    x = np.load(IMAGES).reshape(20, -1).astype(np.float64)
    y = np.load(LABELS)
    i = 13  # the real test image with the largest nominal margin (label 0)
    assert int(np.argmax(graph.evaluate(x[i]))) == int(y[i])
    problem = api.make_problem(graph, bits=8, x0=x[i])
    assert problem.box.n_parameters == 1_594_122
    verdict = api.verify(problem, "label", options=Options(timeout_s=60, seed=0))
    assert isinstance(verdict, Verified), verdict

    # soundness spot check: the rounded 8-bit model and random vertices of the box keep the label
    box = problem.box
    scheme = QuantizationScheme(8)
    rounded = {n: quantize(graph.initializers[n], scheme)[0] for n in box.names}
    for n in box.names:
        assert np.all(box.lo[n] <= rounded[n]) and np.all(rounded[n] <= box.hi[n])
    samples = [rounded]
    rng = np.random.default_rng(0)
    for _ in range(6):
        samples.append({n: np.where(rng.random(box.lo[n].shape) < 0.5, box.lo[n], box.hi[n]) for n in box.names})
    for params in samples:
        assert int(np.argmax(graph.evaluate(x[i], params))) == int(y[i])
