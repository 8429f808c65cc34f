"""Bad input, fuzzed: malformed models, spec files and flag values exit 2 with one line.

Every case below is generated from a valid small model (built with
onnx.helper) or a valid spec file by one mutation, run through the CLI's
``main()`` in-process, and must end with exit code 2, nothing on stdout,
exactly one line on stderr that names the offending field, node or tensor,
and no traceback.  Mutations that used to be accepted silently (a custom-
domain Relu, infinite or integer weights, ``--level nan``, ...) are among
them.  Positive controls check that the valid originals still pass.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import set_external_data

from paramverify.cli import main

X0 = "0.5,0.2"
INITS = ("W1", "b1", "W2", "b2")
NODES = ("fc1", "relu1", "fc2")


def small_model() -> onnx.ModelProto:
    """x[1,2] -> Gemm(W1, b1) -> Relu -> Gemm(W2, b2) -> y[1,2]."""
    inits = [
        numpy_helper.from_array(np.array([[1.0, 0.5, -1.0], [-1.0, 2.0, 1.0]], np.float32), "W1"),
        numpy_helper.from_array(np.array([0.1, -0.2, 0.3], np.float32), "b1"),
        numpy_helper.from_array(np.array([[1.0, 0.5], [-1.0, 1.0], [0.3, -0.7]], np.float32), "W2"),
        numpy_helper.from_array(np.array([0.0, 0.1], np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["r"], name="relu1"),
        helper.make_node("Gemm", ["r", "W2", "b2"], ["y"], name="fc2"),
    ]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own exit
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, out: str, err: str, needle: str) -> None:
    assert "Traceback" not in err, err
    assert code == 2, (code, err)
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "error:" in lines[0]
    assert needle in lines[0], (needle, lines[0])


# ------------------------------------------------------------------------ models
Mutation = Callable[[onnx.ModelProto, Path], None]


def _set_init(name: str, arr: np.ndarray) -> Mutation:
    def mutate(m: onnx.ModelProto, d: Path) -> None:
        for t in m.graph.initializer:
            if t.name == name:
                t.CopyFrom(numpy_helper.from_array(arr, name))

    return mutate


def _shape(name: str) -> tuple[int, ...]:
    return {"W1": (2, 3), "b1": (3,), "W2": (3, 2), "b2": (2,)}[name]


def _model_cases() -> list[tuple[str, Mutation, str]]:
    cases: list[tuple[str, Mutation, str]] = []

    # every node input renamed to a tensor nobody produces
    for ni, node in enumerate(NODES):
        for slot in range(3 if node != "relu1" else 1):
            def mutate(m, d, ni=ni, slot=slot):
                m.graph.node[ni].input[slot] = "ghost"
            cases.append((f"dangling-{node}-{slot}", mutate, f"node '{node}'"))
    # cycles: a node reads its own or a later node's output
    for ni, later in [(0, "h"), (0, "r"), (0, "y"), (1, "r"), (1, "y"), (2, "y")]:
        def mutate(m, d, ni=ni, later=later):
            m.graph.node[ni].input[0] = later
        cases.append((f"cycle-{ni}-{later}", mutate, "cycle"))
    # a tensor produced twice, or a node writing over an initializer or the input
    for ni, target in [(1, "h"), (2, "h"), (2, "r"), (1, "W1"), (2, "x"), (0, "b2")]:
        def mutate(m, d, ni=ni, target=target):
            m.graph.node[ni].output[0] = target
        cases.append((f"dup-{ni}-{target}", mutate, f"'{target}'"))
    # graph output nobody produces
    for name in ("nope", "Y", "y ", "out:0"):
        def mutate(m, d, name=name):
            m.graph.output[0].name = name
        cases.append((f"output-{name!r}", mutate, f"graph output '{name}'"))
    # no standard opset import
    for opsets in ([], [("com.example", 1)], [("ai.onnx.ml", 3)]):
        def mutate(m, d, opsets=opsets):
            del m.opset_import[:]
            m.opset_import.extend([helper.make_opsetid(dom, v) for dom, v in opsets])
        cases.append((f"opset-{opsets}", mutate, "opset_import"))
    # ops from a custom domain are not the standard op of the same name
    for ni, node in enumerate(NODES):
        for domain in ("com.example", "custom.ops", "ai.onnx.ml"):
            def mutate(m, d, ni=ni, domain=domain):
                m.graph.node[ni].domain = domain
            cases.append((f"domain-{node}-{domain}", mutate, f"{domain}::"))
    # non-finite values in every initializer, at the first and the last position
    for name in INITS:
        for value in (np.nan, np.inf, -np.inf):
            for pos in (0, -1):
                arr = np.ones(_shape(name), np.float32)
                arr.reshape(-1)[pos] = value
                cases.append((f"nonfinite-{name}-{value}-{pos}", _set_init(name, arr), f"initializer '{name}'"))
        # float64 and float16 storage too
        arr64 = np.full(_shape(name), np.nan, np.float64)
        cases.append((f"nan64-{name}", _set_init(name, arr64), f"initializer '{name}'"))
        arr16 = np.full(_shape(name), np.inf, np.float16)
        cases.append((f"inf16-{name}", _set_init(name, arr16), f"initializer '{name}'"))
    # empty weights
    for name in INITS:
        shape = _shape(name)
        for axis in range(len(shape)):
            empty = np.zeros(tuple(0 if i == axis else s for i, s in enumerate(shape)), np.float32)
            cases.append((f"empty-{name}-{axis}", _set_init(name, empty), f"initializer '{name}'"))
    # integer or boolean weights and biases (never perturbed as floats)
    for name in INITS:
        for dtype in (np.int64, np.int32, np.int8, np.uint8, np.bool_):
            arr = np.ones(_shape(name), dtype)
            cases.append((f"int-{name}-{np.dtype(dtype).name}", _set_init(name, arr), f"initializer '{name}'"))
    # input dimensions far too large to allocate (checked before anything is allocated)
    for size in (10**9, 10**11, 2**40, 2**62):
        def mutate(m, d, size=size):
            m.graph.input[0].type.tensor_type.shape.dim[1].dim_value = size
        cases.append((f"huge-input-{size}", mutate, "input 'x'"))
    # symbolic non-batch dimension, no shape at all
    def symbolic(m, d):
        m.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "n"
    cases.append(("symbolic-dim", symbolic, "input 'x'"))

    def shapeless(m, d):
        del m.graph.input[0].type.tensor_type.shape.dim[:]
    cases.append(("shapeless-input", shapeless, "input 'x'"))
    # unknown attributes and wrong arity name the node
    for ni, node in enumerate(NODES):
        def mutate(m, d, ni=ni):
            m.graph.node[ni].attribute.append(helper.make_attribute("colour", 3))
        cases.append((f"attr-{node}", mutate, f"node '{node}'"))
    # attributes of the wrong kind (a string, a list, a tensor where a number belongs, NaN coefficients)
    for attr, value in (("alpha", "abc"), ("alpha", [1.0, 2.0]), ("alpha", float("nan")), ("beta", float("inf")),
                        ("transB", 1.5), ("transB", [1, 2]), ("transA", "yes"),
                        ("alpha", numpy_helper.from_array(np.ones(2, np.float32)))):
        for ni in (0, 2):
            def mutate(m, d, ni=ni, attr=attr, value=value):
                m.graph.node[ni].attribute.append(helper.make_attribute(attr, value))
            cases.append((f"attr-{NODES[ni]}-{attr}-{type(value).__name__}-{value if np.isscalar(value) else ''}",
                          mutate, f"attribute '{attr}'"))
    # Gemm shape rules numpy is laxer about: C must broadcast to (M, N), A and B must be 2-D
    for name, shape in (("b1", (2, 3)), ("b1", (1, 1, 3)), ("b2", (3, 2)), ("b2", (2, 1))):
        cases.append((f"gemm-c-{name}-{shape}", _set_init(name, np.ones(shape, np.float32)), "C of shape"))
    for name, shape in (("W1", (1, 2, 3)), ("W2", (6,))):
        cases.append((f"gemm-b-{name}-{shape}", _set_init(name, np.ones(shape, np.float32)), "must be 2-D"))
    # a model whose output ignores its input
    def ignores_input(m, d):
        m.graph.node[0].input[0] = "W2"
    cases.append(("input-unused", ignores_input, "input 'x' does not reach"))
    # external data: missing file, outside the model's folder, absolute path
    for name in INITS:
        for where in ("missing.bin", "../outside.bin", "/tmp/abs.bin", "sub/../../escape.bin"):
            def mutate(m, d, name=name, where=where):
                t = next(t for t in m.graph.initializer if t.name == name)
                set_external_data(t, location=where)
                t.ClearField("raw_data")
                t.ClearField("float_data")
                t.data_location = TensorProto.EXTERNAL
            cases.append((f"external-{name}-{where}", mutate, f"initializer '{name}'"))
    return cases


MODEL_CASES = _model_cases()
COMMANDS = [
    ["bound", "{m}", "--property", "eps", "--delta", "0.01", "--x0", X0, "--timeout", "5"],
    ["verify", "{m}", "--property", "label", "--delta", "0.01", "--x0", X0, "--timeout", "5"],
    ["bits", "{m}", "--x0", X0, "--timeout", "5", "--no-delta"],
    ["export-smt", "{m}", "--property", "label", "--delta", "0.01", "--x0", X0],
]


def _write(m: onnx.ModelProto, path: Path) -> str:
    path.write_bytes(m.SerializeToString())
    return str(path)


@pytest.mark.parametrize("name,mutate,needle", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_malformed_model_exit_2_one_line(capsys, tmp_path, name, mutate, needle):
    m = small_model()
    mutate(m, tmp_path)
    path = _write(m, tmp_path / "m.onnx")
    argv = [a.replace("{m}", path) for a in COMMANDS[MODEL_CASES.index((name, mutate, needle)) % len(COMMANDS)]]
    assert_one_line_error(*run_cli(capsys, argv), needle)


def test_enough_cases():
    assert len(MODEL_CASES) + len(SPEC_CASES) + len(FLAG_CASES) >= 150


@pytest.mark.parametrize("perm", list(itertools.permutations(range(3))))
def test_nodes_out_of_order_are_sorted(capsys, tmp_path, perm):
    """Nodes out of topological order are accepted (as onnxruntime does) with the same answer."""
    ref = small_model()
    m = small_model()
    nodes = list(m.graph.node)
    del m.graph.node[:]
    m.graph.node.extend([nodes[i] for i in perm])
    answers = []
    for model, fname in ((ref, "ref.onnx"), (m, "perm.onnx")):
        code, out, err = run_cli(capsys, ["bound", _write(model, tmp_path / fname), "--property", "eps", "--delta",
                                          "0.01", "--x0", X0, "--json", "--quiet"])
        assert code == 0, err
        answers.append((json.loads(out)["lower"], json.loads(out)["upper"]))
    assert answers[0] == answers[1]


def test_truncated_and_garbage_files(capsys, tmp_path):
    """Cut the serialized model anywhere or flip bytes: exit 2 or (when the bytes still decode to the
    same valid model) success, never a traceback."""
    blob = small_model().SerializeToString()
    rng = np.random.default_rng(0)
    cuts = sorted(set(rng.integers(1, len(blob), 12).tolist()))
    for i, cut in enumerate(cuts):
        path = tmp_path / f"cut{i}.onnx"
        path.write_bytes(blob[:cut])
        code, out, err = run_cli(capsys, ["verify", str(path), "--property", "label", "--delta", "0.01", "--x0", X0])
        assert "Traceback" not in err
        assert code in (0, 2), (cut, code, err)
        if code == 2:
            assert len(err.strip().splitlines()) == 1, err


# ------------------------------------------------------------------------ smooth
SMOOTH_MODEL_CASES = [
    ("scalar-input", lambda m: m.graph.input[0].type.tensor_type.shape.ClearField("dim"), "input 'x'"),
    ("no-shape", lambda m: m.graph.input[0].type.tensor_type.ClearField("shape"), "input 'x'"),
    ("nan-weight", lambda m: m.graph.initializer[0].CopyFrom(
        numpy_helper.from_array(np.full((2, 3), np.nan, np.float32), "W1")), "initializer 'W1'"),
    ("dangling", lambda m: m.graph.node[1].input.__setitem__(0, "ghost"), "node 'relu1'"),
    ("output", lambda m: setattr(m.graph.output[0], "name", "nope"), "graph output 'nope'"),
    ("custom-relu", lambda m: setattr(m.graph.node[1], "domain", "com.example"), "com.example::Relu"),
    ("no-opset", lambda m: m.ClearField("opset_import"), "opset_import"),
    ("huge", lambda m: setattr(m.graph.input[0].type.tensor_type.shape.dim[1], "dim_value", 10**11), "input 'x'"),
]


@pytest.fixture
def smooth_files(tmp_path):
    np.save(tmp_path / "x.npy", np.array([[0.5, 0.2], [0.1, 0.9]], np.float32))
    return tmp_path


def _smooth_argv(model: str, d: Path, *extra: str) -> list[str]:
    return ["smooth", "certify", model, "--sigma", "0.25", "--n", "20", "--n0", "5", "--inputs", str(d / "x.npy"),
            "--quiet", "--json", "--seed", "0", *extra]


@pytest.mark.parametrize("name,mutate,needle", SMOOTH_MODEL_CASES, ids=[c[0] for c in SMOOTH_MODEL_CASES])
def test_smooth_malformed_model(capsys, smooth_files, name, mutate, needle):
    pytest.importorskip("torch")
    m = small_model()
    mutate(m)
    path = _write(m, smooth_files / "m.onnx")
    assert_one_line_error(*run_cli(capsys, _smooth_argv(path, smooth_files)), needle)


@pytest.mark.parametrize("labels,extra,needle", [
    ([0, 2], [], "labels"),
    ([0, -2], [], "labels"),
    ([0, 1], ["--policy", '{"default": 33}'], "policy.default"),
    ([0, 1], ["--policy", '{"default": 8}', "--incremental", "10", "--alpha", "0.6", "--alpha-q", "0.5"], "alpha"),
])
def test_smooth_bad_settings(capsys, smooth_files, labels, extra, needle):
    pytest.importorskip("torch")
    np.save(smooth_files / "y.npy", np.array(labels))
    path = _write(small_model(), smooth_files / "m.onnx")
    argv = _smooth_argv(path, smooth_files, "--labels", str(smooth_files / "y.npy"), *extra)
    assert_one_line_error(*run_cli(capsys, argv), needle)


def test_smooth_valid_model_passes(capsys, smooth_files):
    pytest.importorskip("torch")
    np.save(smooth_files / "y.npy", np.array([0, 1]))
    path = _write(small_model(), smooth_files / "m.onnx")
    code, out, err = run_cli(capsys, _smooth_argv(path, smooth_files, "--labels", str(smooth_files / "y.npy")))
    assert code == 0, err
    assert len(json.loads(out)["results"]) == 2


# -------------------------------------------------------------------------- specs
VALID_SPEC = {"perturbation": {"kind": "absolute", "delta": 0.01}, "x0": [0.5, 0.2]}


def _with(path: tuple[str, ...], value) -> dict:
    spec = json.loads(json.dumps(VALID_SPEC))
    node = spec
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return spec


def _deep(n: int) -> str:
    """JSON text of a number nested in ``n`` lists (too deep for repr or json.dumps to build)."""
    return "[" * n + "0.5" + "]" * n


def _text_with(path: tuple[str, ...], raw: str, drop_x0: bool = False) -> str:
    """The valid spec with the value at ``path`` replaced by raw JSON text."""
    marker = "__RAW__"
    spec = _with(path, marker)
    if drop_x0:
        del spec["x0"]
    return json.dumps(spec).replace(f'"{marker}"', raw)


def _spec_cases() -> list[tuple[str, str, str, list[str], str]]:
    """(id, file suffix, file text, extra flags, needle)."""
    cases = []

    def add(name, spec, needle, extra=(), suffix=".json"):
        text = spec if isinstance(spec, str) else json.dumps(spec)
        cases.append((name, suffix, text, list(extra), needle))

    # the region
    for bad in (["0.5", 0.2], "0.5,0.2", [[0.5, 0.2], [0.1]], [True, False], [0.5, None], {"a": 1}):
        add(f"x0-{str(bad)[:20]}", _with(("x0",), bad), "x0")
    for depth in (9, 30, 900):
        add(f"x0-deep-{depth}", _text_with(("x0",), _deep(depth)), "x0")
        add(f"domain-deep-{depth}", _text_with(("domain",), _deep(depth), drop_x0=True), "domain")
        add(f"deltamap-deep-{depth}", _text_with(("perturbation", "delta"), '{"W1": ' + _deep(depth) + "}"),
            "perturbation.delta")
    for bad in ([[0, 1], [0]], ["0:1", "0:1"], [["a", "b"]], [0, 1], [[0, 1, 2]], [[True, False]],
                [[0, None]], "0:1", [[1, 0], [0, 1]]):
        spec = {k: v for k, v in VALID_SPEC.items() if k != "x0"}
        spec["domain"] = bad
        add(f"domain-{str(bad)[:20]}", spec, "domain")
    add("x0-and-domain", _with(("domain",), [[0, 1]]), "x0/domain")
    add("x0-nan", '{"perturbation": {"delta": 0.01}, "x0": [NaN, 0.2]}', "x0")
    add("x0-inf", '{"perturbation": {"delta": 0.01}, "x0": [Infinity, 0.2]}', "x0")
    # level
    for bad in ("0.5", True, [0.5], None):
        if bad is not None:
            add(f"level-{bad!r}", _with(("level",), bad), "level")
    add("level-nan", '{"perturbation": {"delta": 0.01}, "x0": [0.5, 0.2], "level": NaN}', "level")
    add("level-inf", '{"perturbation": {"delta": 0.01}, "x0": [0.5, 0.2], "level": -Infinity}', "level")
    # the perturbation
    for bad in ([0.01], "0.01", 0.01, None):
        add(f"perturbation-{bad!r}", _with(("perturbation",), bad), "perturbation")
    for bad in ("gaussian", 3, ["absolute"]):
        add(f"kind-{bad!r}", _with(("perturbation", "kind"), bad), "perturbation.kind")
    for bad in ("0.01", -0.01, True, [0.01, 0.02], None):
        add(f"delta-{bad!r}", _with(("perturbation", "delta"), bad), "perturbation.delta")
    add("delta-nan", '{"perturbation": {"delta": NaN}, "x0": [0.5, 0.2]}', "perturbation.delta")
    for bad in ({"W1": "0.1"}, {"W1": [[0.1, 0.1, 0.1], [0.1]]}, {"W1": True}, {"nope": 0.1}, {},
                {"W1": -0.1}, {"W1": [0.1, 0.2, 0.3, 0.4]}, {"W1": [[0.1, "x", 0.1], [1, 1, 1]]}):
        add(f"deltamap-{str(bad)[:24]}", _with(("perturbation", "delta"), bad), "perturbation.delta")
    for bad in ("0", [0], 99, -3, True, 0.0):
        spec = _with(("perturbation", "delta"), {"W1": [0.1, 0.1]})
        spec["perturbation"]["channel_axis"] = bad
        add(f"axis-abs-{bad!r}", spec, "perturbation.channel_axis")
    q = {"kind": "quantization", "bits": 8, "per_channel": True}
    for bad in ("0", [0], 99, -3, True, 1.5):
        add(f"axis-q-{bad!r}", _with(("perturbation",), dict(q, channel_axis=bad)), "perturbation.channel_axis")
    add("axis-not-per-channel", _with(("perturbation",), {"kind": "quantization", "bits": 8, "channel_axis": 1}),
        "perturbation.channel_axis")
    for key in ("per_channel", "symmetric"):
        for bad in ("false", "true", 0, 1, None, "no"):
            add(f"{key}-{bad!r}", _with(("perturbation",), {"kind": "quantization", "bits": 8, key: bad}),
                f"perturbation.{key}")
    for bad in (1, 33, 99, "8", 8.0, True, None):
        add(f"bits-{bad!r}", _with(("perturbation",), {"kind": "quantization", "bits": bad}), "perturbation.bits")
    for bad in ("0.1", -1, None, [0.1]):
        add(f"fraction-{bad!r}", _with(("perturbation",), {"kind": "relative", "fraction": bad}),
            "perturbation.fraction")
    for bad in ("W1", [1, 2], ["nope"]):
        add(f"params-{bad!r}", _with(("perturbation", "params"), bad), "params")
    add("unknown-field", _with(("perturbation", "colour"), "red"), "perturbation.colour")
    add("unknown-top", _with(("colour",), "red"), "colour")
    add("model-not-string", _with(("model",), 3), "model")
    add("model-other", _with(("model",), "other.onnx"), "model")
    # file-level problems
    add("top-list", [VALID_SPEC], "spec")
    add("empty-json", "", "spec")
    add("bad-json", '{"perturbation": {"delta": 0.01},', "spec")
    add("deep-json", "[" * 1000 + "]" * 1000, "spec")
    add("deep-json-object", '{"a": ' * 1000 + "1" + "}" * 1000, "spec")
    add("deep-json-x0", '{"x0": ' + "[" * 100000 + "]" * 100000 + "}", "spec")
    add("yaml-tabs", "perturbation:\n\tdelta: 0.01\nx0: [0.5, 0.2]\n", "spec", suffix=".yaml")
    add("yaml-python-tag", "perturbation: !!python/object/apply:os.getcwd []\nx0: [0.5, 0.2]\n", "spec",
        suffix=".yaml")
    add("yaml-python-name", "perturbation: !!python/name:os.system\nx0: [0.5, 0.2]\n", "spec", suffix=".yaml")
    add("yaml-empty", "", "spec", suffix=".yaml")
    add("yaml-scalar", "0.01\n", "spec", suffix=".yml")
    add("yaml-deep", "x0: " + "[" * 1000 + "]" * 1000 + "\nperturbation: {delta: 0.01}\n", "spec", suffix=".yaml")
    add("yaml-bad-indent", "perturbation:\n  delta: 0.01\n x0: [0.5, 0.2]\n", "spec", suffix=".yaml")
    add("yaml-string-bool", "perturbation: {kind: quantization, bits: 8, per_channel: 'false'}\nx0: [0.5, 0.2]\n",
        "perturbation.per_channel", suffix=".yaml")
    add("yaml-string-domain", "perturbation: {delta: 0.01}\ndomain: ['0:1', '0:1']\n", "domain", suffix=".yaml")
    # settings given twice (never a silent choice of one of them)
    spec_no_x0 = {"perturbation": {"delta": 0.01}}
    for flags, needle in ((["--delta", "0.02", "--x0", X0], "--delta"), (["--bits", "8", "--x0", X0], "--bits"),
                          (["--relative", "0.1", "--x0", X0], "--relative"),
                          (["--params", "W1", "--x0", X0], "--params"),
                          (["--asymmetric", "--x0", X0], "--asymmetric"),
                          (["--per-channel", "--x0", X0], "--per-channel")):
        add(f"twice{flags[0]}", spec_no_x0, needle, extra=flags)
    add("twice-x0", VALID_SPEC, "--x0", extra=["--x0", X0])
    add("twice-domain", VALID_SPEC, "--domain", extra=["--domain", "0:1"])
    add("twice-level", _with(("level",), 0.3), "level", extra=["--level", "0.4"])
    return cases


SPEC_CASES = _spec_cases()


@pytest.mark.parametrize("name,suffix,text,extra,needle", SPEC_CASES, ids=[c[0] for c in SPEC_CASES])
def test_malformed_spec_exit_2_one_line(capsys, tmp_path, name, suffix, text, extra, needle):
    model = _write(small_model(), tmp_path / "m.onnx")
    spec = tmp_path / f"spec{suffix}"
    spec.write_text(text, encoding="utf-8")
    argv = ["bound", model, "--property", "eps", "--spec", str(spec), "--timeout", "5", *extra]
    assert_one_line_error(*run_cli(capsys, argv), needle)


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_non_utf8_spec(capsys, tmp_path, suffix):
    model = _write(small_model(), tmp_path / "m.onnx")
    spec = tmp_path / f"spec{suffix}"
    spec.write_bytes(b'{"perturbation": {"delta": 0.01}, "x0": [0.5, 0.2], "note": "caf\xe9"}')
    argv = ["bound", model, "--property", "eps", "--spec", str(spec)]
    assert_one_line_error(*run_cli(capsys, argv), "UTF-8")


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.recursive(
    st.none() | st.booleans() | st.integers(-5, 40) | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["W1", "b1", "x", "kind"]), inner,
                                                                  max_size=3),
    max_leaves=8,
), field=st.sampled_from([("x0",), ("domain",), ("level",), ("perturbation", "delta"), ("perturbation", "kind"),
                          ("perturbation", "params"), ("perturbation", "channel_axis"), ("perturbation",)]))
def test_random_spec_values_never_crash(capsys, tmp_path, value, field):
    """Any JSON value in any field: a result (exit 0, 1, 3) or one error line (exit 2), never a traceback."""
    model = tmp_path / "m.onnx"
    if not model.exists():
        _write(small_model(), model)
    spec = _with(field, value)
    if field == ("domain",):
        del spec["x0"]
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    code, out, err = run_cli(capsys, ["verify", str(model), "--property", "label", "--spec", str(path),
                                      "--timeout", "1", "--quiet"])
    assert "Traceback" not in err
    assert code in (0, 1, 2, 3), err
    if code == 2:
        assert len(err.strip().splitlines()) == 1, err


# -------------------------------------------------------------------------- flags
BOUND = ["bound", "{m}", "--property", "eps", "--delta", "0.01", "--x0", X0]
VERIFY = ["verify", "{m}", "--property", "label", "--delta", "0.01", "--x0", X0]
SMOOTH = ["smooth", "certify", "{m}", "--sigma", "0.25", "--n", "10", "--inputs", "x.npy"]
SEARCH = ["search", "{m}", "--budget", "0.1"]
BITS = ["bits", "{m}", "--x0", X0]


def _flag_cases() -> list[tuple[list[str], str]]:
    cases: list[tuple[list[str], str]] = []
    for base in (BOUND, VERIFY):
        for flag, values in (("--level", ["nan", "inf", "-inf", "abc"]), ("--timeout", ["-1", "0", "nan", "inf"]),
                             ("--tolerance", ["-1", "nan", "inf"])):
            cases += [(base + [flag, v], f"argument {flag}") for v in values]
    cases += [(VERIFY[:3] + ["eps"] + VERIFY[4:] + ["--epsilon", v], "argument --epsilon") for v in ("nan", "-1", "inf")]
    cases += [(["bound", "{m}", "--property", "delta", "--domain", "0:1", "--sigma", v], "argument --sigma")
              for v in ("nan", "-0.5")]
    cases += [(["reproduce", "--points", v], "argument --points") for v in ("-1", "0", "1.5")]
    cases += [(["reproduce", "--timeout", v], "argument --timeout") for v in ("-1", "nan")]
    cases += [(BITS + [flag, v], f"argument {flag}") for flag, v in (
        ("--budget", "-1"), ("--budget", "nan"), ("--timeout", "0"), ("--min-bits", "1"), ("--max-bits", "33"),
        ("--level", "nan"), ("--sigma", "-1"))]
    cases += [(SMOOTH + [flag, v], f"argument {flag}") for flag, v in (
        ("--sigma", "0"), ("--sigma", "nan"), ("--n", "-1"), ("--alpha", "1.5"), ("--alpha", "0"),
        ("--batch", "0"), ("--n0", "0"), ("--incremental", "-5"), ("--alpha-q", "nan"))]
    cases += [(SEARCH[:2] + ["--budget", v], "argument --budget") for v in ("2", "0", "-0.1", "nan")]
    cases += [(SEARCH + [flag, v], f"argument {flag}") for flag, v in (
        ("--episodes", "0"), ("--alpha", "1"), ("--timeout", "-1"), ("--max-bits", "33"), ("--reward-n", "0"))]
    cases += [(["compare", "--models", "{m}", flag, v], f"argument {flag}") for flag, v in (
        ("--timeout", "nan"), ("--tolerance", "-1"), ("--level", "inf"), ("--max-points", "0"))]
    return cases


FLAG_CASES = _flag_cases()


@pytest.mark.parametrize("argv,needle", FLAG_CASES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in FLAG_CASES])
def test_bad_flag_values_exit_2_one_line(capsys, tmp_path, argv, needle):
    model = _write(small_model(), tmp_path / "m.onnx")
    assert_one_line_error(*run_cli(capsys, [a.replace("{m}", model) for a in argv]), needle)


def test_search_alpha_sum(capsys, tmp_path):
    pytest.importorskip("torch")
    model = _write(small_model(), tmp_path / "m.onnx")
    argv = SEARCH[:2] + ["--budget", "0.5", "--alpha", "0.6", "--alpha-q", "0.6", "--out", str(tmp_path / "o")]
    assert_one_line_error(*run_cli(capsys, [a.replace("{m}", model) for a in argv]), "alpha")


# ------------------------------------------------------------- item 12: spec files
def single_output_model() -> onnx.ModelProto:
    """y = Gemm(x, W=[[1]], b=[0]): a single output compared with the decision level."""
    inits = [numpy_helper.from_array(np.array([[1.0]], np.float32), "W"),
             numpy_helper.from_array(np.array([0.0], np.float32), "b")]
    g = helper.make_graph([helper.make_node("Gemm", ["x", "W", "b"], ["y"], name="fc")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_spec_level_is_used(capsys, tmp_path):
    """At x0 = 0.25 with |W - 1| <= 0.01, y spans [0.2475, 0.2525]: level 0.251 is crossed, 0.5 is not."""
    model = _write(single_output_model(), tmp_path / "one.onnx")
    spec = tmp_path / "s.yaml"
    spec.write_text("perturbation: {delta: 0.01}\nx0: [0.25]\nlevel: 0.251\n")
    flag_code, _, _ = run_cli(capsys, ["verify", model, "--property", "label", "--delta", "0.01", "--x0", "0.25",
                                       "--level", "0.251", "--quiet"])
    spec_code, _, err = run_cli(capsys, ["verify", model, "--property", "label", "--spec", str(spec), "--quiet"])
    assert flag_code == spec_code == 1, err
    spec.write_text("perturbation: {delta: 0.01}\nx0: [0.25]\n")  # default level 0.5
    assert run_cli(capsys, ["verify", model, "--property", "label", "--spec", str(spec), "--quiet"])[0] == 0
    # the spec's level through the Python API too
    from paramverify import api

    spec.write_text(f"model: {model}\nperturbation: {{delta: 0.01}}\nx0: [0.25]\nlevel: 0.251\n")
    assert api.problem_from_spec_file(spec).level == 0.251


@pytest.mark.parametrize("value,expected", [(False, "per-tensor"), (True, "per-channel")])
def test_spec_per_channel_false_is_false(capsys, tmp_path, value, expected):
    model = _write(small_model(), tmp_path / "m.onnx")
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"perturbation": {"kind": "quantization", "bits": 8, "per_channel": value,
                                                 "symmetric": value}, "x0": [0.5, 0.2]}))
    code, out, err = run_cli(capsys, ["bound", model, "--property", "eps", "--spec", str(spec), "--json", "--quiet"])
    assert code == 0, err
    desc = json.loads(out)["box"]["description"]
    assert expected in desc and ("asymmetric" in desc) == (not value)


def test_spec_without_perturbation_takes_the_delta_flag(capsys, tmp_path):
    """A spec file giving only the region combines with --delta (nothing silently dropped)."""
    model = _write(small_model(), tmp_path / "m.onnx")
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"x0": [0.5, 0.2]}))
    code, out, err = run_cli(capsys, ["bound", model, "--property", "eps", "--spec", str(spec), "--delta", "0.02",
                                      "--json", "--quiet"])
    assert code == 0, err
    assert "0.02" in json.loads(out)["box"]["description"]
    spec.write_text(json.dumps({"perturbation": {"delta": 0.02}}))
    code, out2, err = run_cli(capsys, ["bound", model, "--property", "eps", "--spec", str(spec), "--x0", X0,
                                       "--json", "--quiet"])
    assert code == 0, err
    assert json.loads(out2)["upper"] == json.loads(out)["upper"]


def test_external_data_inside_the_folder_is_read(capsys, tmp_path):
    m = small_model()
    onnx.save(m, tmp_path / "ext.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.data", size_threshold=0)
    code, _, err = run_cli(capsys, ["verify", str(tmp_path / "ext.onnx"), "--property", "label", "--delta", "0.01",
                                    "--x0", X0, "--quiet"])
    assert code == 0, err
    os.remove(tmp_path / "ext.data")
    assert_one_line_error(*run_cli(capsys, ["verify", str(tmp_path / "ext.onnx"), "--property", "label",
                                            "--delta", "0.01", "--x0", X0]), "ext.data")


@pytest.mark.parametrize("pads", [[100000] * 4, [0, 0, 20000, 20000]])
def test_huge_intermediate_tensor_is_refused_up_front(capsys, tmp_path, pads):
    """A Conv whose pads would make a 1e10-value output is refused before anything is allocated."""
    w = numpy_helper.from_array(np.ones((4, 1, 3, 3), np.float32), "Wc")
    g = helper.make_graph([helper.make_node("Conv", ["x", "Wc"], ["c"], name="conv", pads=pads),
                           helper.make_node("Flatten", ["c"], ["y"], name="flat")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    path = _write(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "conv.onnx")
    argv = ["bound", path, "--property", "eps", "--delta", "0.01", "--x0", ",".join(["0.1"] * 64)]
    assert_one_line_error(*run_cli(capsys, argv), "tensor 'c'")


@pytest.mark.parametrize("level", [float("nan"), float("inf"), "0.5", True])
def test_api_level_must_be_finite(tmp_path, level):
    from paramverify import api
    from paramverify.errors import SpecError

    with pytest.raises(SpecError, match="level"):
        api.make_problem(_write(small_model(), tmp_path / "m.onnx"), delta=0.01, x0=[0.5, 0.2], level=level)


def test_smooth_non_finite_inputs(capsys, smooth_files):
    pytest.importorskip("torch")
    np.save(smooth_files / "x.npy", np.array([[0.5, np.nan]], np.float32))
    path = _write(small_model(), smooth_files / "m.onnx")
    assert_one_line_error(*run_cli(capsys, _smooth_argv(path, smooth_files)), "inputs")


def test_integer_initializer_is_never_perturbed(capsys, tmp_path):
    """An int64 shape constant (Reshape) loads, is not perturbed by default and cannot be named in --params."""
    m = small_model()
    m.graph.initializer.append(numpy_helper.from_array(np.array([1, 2], np.int64), "shape"))
    m.graph.node[2].output[0] = "y0"
    m.graph.node.append(helper.make_node("Reshape", ["y0", "shape"], ["y"], name="reshape"))
    path = _write(m, tmp_path / "m.onnx")
    code, out, err = run_cli(capsys, ["bound", path, "--property", "eps", "--delta", "0.01", "--x0", X0, "--json",
                                      "--quiet"])
    assert code == 0, err
    assert "shape" not in json.loads(out)["box"]["parameters"]
    argv = ["bound", path, "--property", "eps", "--delta", "0.01", "--x0", X0, "--params", "W1,shape"]
    assert_one_line_error(*run_cli(capsys, argv), "'shape' is an integer initializer")


def test_bits_channel_axis_must_exist(capsys, tmp_path):
    """--channel-axis 2 on 2-D weights used to wrap around silently (2 % 2 = 0); axis 1 is fine (biases use
    their only axis)."""
    path = _write(small_model(), tmp_path / "m.onnx")
    argv = ["bits", path, "--x0", X0, "--per-channel", "--no-delta", "--quiet", "--max-bits", "6"]
    assert_one_line_error(*run_cli(capsys, argv + ["--channel-axis", "2"]), "channel_axis: is 2 but 'W1' has 2 axes")
    code, _, err = run_cli(capsys, argv + ["--channel-axis", "1"])
    assert code in (0, 3) and "error" not in err


def test_dead_branches_are_ignored(capsys, tmp_path):
    """A node nobody reads (here a Softmax of a 1-D bias) does not change the answer (onnxruntime drops it too)."""
    ref = small_model()
    m = small_model()
    m.graph.node.append(helper.make_node("Softmax", ["b2"], ["unused"], name="dead"))
    answers = []
    for model, fname in ((ref, "ref.onnx"), (m, "dead.onnx")):
        code, out, err = run_cli(capsys, ["bound", _write(model, tmp_path / fname), "--property", "eps", "--delta",
                                          "0.01", "--x0", X0, "--json", "--quiet"])
        assert code == 0, err
        answers.append(json.loads(out)["upper"])
    assert answers[0] == answers[1]


def test_unexpected_exception_is_one_line_exit_4(capsys, tmp_path, monkeypatch):
    """A crash inside a command is a bug: one line, exit 4 (never 1, which means falsified), no traceback."""
    from paramverify import cli

    def boom(args):
        raise IndexError("too many indices\nfor array")

    monkeypatch.setitem(cli.COMMANDS, "bound", boom)
    code, out, err = run_cli(capsys, ["bound", "m.onnx", "--property", "eps", "--delta", "0.01", "--x0", X0])
    assert code == 4 and out == "" and "Traceback" not in err
    assert err.strip().splitlines() == ["paramverify: internal error (please report; --debug shows the traceback): "
                                        "IndexError: too many indices for array"]
    with pytest.raises(IndexError):
        main(["bound", "m.onnx", "--property", "eps", "--delta", "0.01", "--x0", X0, "--debug"])
