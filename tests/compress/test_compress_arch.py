"""Stage CNNs: exact MAC counts, ONNX export and import, weight inheritance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paramverify.compress.arch import (
    ArchSpec,
    StageAction,
    StageNet,
    StageSpec,
    apply_actions,
    arch_macs,
    calibrate_new_norms,
    inherit,
)
from paramverify.compress.flops import node_macs, onnx_macs
from paramverify.compress.onnxio import (
    TeacherFormatError,
    from_onnx,
    read_teacher,
    save_onnx,
    to_onnx,
)
from paramverify.errors import CapabilityError, ModelError, ParamVerifyError


def _tiny() -> StageNet:
    arch = ArchSpec((1, 8, 8), 4, (StageSpec(2, 1, 1, "std", "relu", "bn"), StageSpec(3, 2, 2, "dws", "silu", "none")))
    torch.manual_seed(0)
    return StageNet(arch).eval()


def test_onnx_macs_match_a_hand_count():
    # block 0: std conv 1->2 on 8x8: 64*2*1*9 = 1152, its BatchNorm 64*2 = 128
    # block 1: dws, stride 2 -> 4x4: depthwise 16*2*9 = 288, pointwise 16*3*2 = 96
    # block 2: dws 4x4: depthwise 16*3*9 = 432, pointwise 16*3*3 = 144; Gemm 3*4 = 12
    hand = 1152 + 128 + 288 + 96 + 432 + 144 + 12
    model = to_onnx(_tiny())
    assert onnx_macs(model) == hand
    assert arch_macs(_tiny().arch) == hand
    per_op = {}
    for _, op, m in node_macs(model):
        per_op[op] = per_op.get(op, 0) + m
    assert per_op == {"Conv": 1152 + 288 + 96 + 432 + 144, "BatchNormalization": 128, "Gemm": 12, "Relu": 0,
                      "Sigmoid": 0, "Mul": 0, "GlobalAveragePool": 0, "Flatten": 0}


def test_onnx_macs_refuse_unknown_operators():
    model = to_onnx(_tiny())
    next(n for n in model.graph.node if n.op_type == "Sigmoid").op_type = "Erf"  # must not silently count 0
    with pytest.raises(CapabilityError, match="Erf"):
        onnx_macs(model)
    model.graph.node[-1].op_type = "ConvTranspose"  # shape inference fails on a 2-D input: one error, no crash
    with pytest.raises(ModelError, match="shape inference"):
        onnx_macs(model)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_description_count_equals_graph_count_on_random_subnets(seed):
    rng = np.random.default_rng(seed)
    teacher = ArchSpec((1, 14, 14), 10, (StageSpec(8, 3, 2), StageSpec(16, 2, 2), StageSpec(24, 2, 1, "dws", "leaky_relu")))
    acts = tuple(StageAction(float(rng.choice([0.25, 0.5, 1.0])), int(rng.integers(1, s.depth + 1)),
                             str(rng.choice(["std", "dws"])), str(rng.choice(["relu", "silu", "leaky_relu"])),
                             str(rng.choice(["bn", "none"]))) for s in teacher.stages)
    sub = apply_actions(teacher, acts)
    assert onnx_macs(to_onnx(StageNet(sub).eval())) == arch_macs(sub)


def test_subnet_runs_on_onnxruntime_like_torch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    net = _tiny()
    x = np.random.default_rng(0).random((5, 1, 8, 8), dtype=np.float32)
    path = save_onnx(net, tmp_path / "net.onnx")
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    back = read_teacher(path)
    assert back.arch == net.arch
    with torch.no_grad():
        np.testing.assert_array_equal(back(torch.from_numpy(x)).numpy(), want)


def test_foreign_onnx_is_refused_in_one_line(tmp_path):
    model = to_onnx(_tiny())
    del model.metadata_props[:]
    with pytest.raises(TeacherFormatError, match="cannot be read as stages") as info:
        from_onnx(model, "m.onnx")
    assert "\n" not in str(info.value) and isinstance(info.value, ParamVerifyError)
    model = to_onnx(_tiny())
    model.graph.initializer[0].name = "renamed"
    with pytest.raises(TeacherFormatError, match="b0.conv.weight"):
        from_onnx(model)


def test_full_width_inheritance_is_the_teacher(tiny_teacher, digits_small):
    x = torch.from_numpy(digits_small.eval_x[:16])
    keep = tuple(StageAction(1.0, s.depth) for s in tiny_teacher.arch.stages)
    with torch.no_grad():
        want = tiny_teacher(x)
        assert torch.allclose(inherit(tiny_teacher, apply_actions(tiny_teacher.arch, keep))(x), want, atol=1e-5)
        folded = tuple(StageAction(1.0, s.depth, norm="none") for s in tiny_teacher.arch.stages)  # BatchNorm folded
        assert torch.allclose(inherit(tiny_teacher, apply_actions(tiny_teacher.arch, folded))(x), want, atol=1e-4)


def test_new_batchnorm_starts_as_the_identity(digits_small):
    arch = ArchSpec((1, 8, 8), 10, (StageSpec(4, 1, 1, norm="none"), StageSpec(6, 1, 2, norm="none")))
    torch.manual_seed(1)
    teacher = StageNet(arch).eval()
    sub = inherit(teacher, apply_actions(arch, (StageAction(1.0, 1, norm="bn"), StageAction(1.0, 1, norm="bn"))))
    x = torch.from_numpy(digits_small.train_x[:64])
    calibrate_new_norms(sub, x)
    with torch.no_grad():
        assert torch.allclose(sub(x), teacher(x), atol=1e-4)


def test_narrow_subnet_keeps_the_largest_channels_and_dws_factorises(tiny_teacher):
    sub_arch = apply_actions(tiny_teacher.arch, (StageAction(0.5, 1, "dws", "relu", "bn"), StageAction(0.5, 2)))
    sub = inherit(tiny_teacher, sub_arch)
    assert [s.width for s in sub.arch.stages] == [3, 6]
    # a rank-one kernel per input channel is reproduced exactly by the depthwise-separable block
    t = StageNet(ArchSpec((1, 8, 8), 10, (StageSpec(3, 1, 1, norm="none"),))).eval()
    with torch.no_grad():
        t.blocks[0].conv.weight.copy_(torch.einsum("o,k->ok", torch.tensor([1.0, -2.0, 0.5]),
                                                    torch.arange(9.0)).reshape(3, 1, 3, 3))
    d = inherit(t, apply_actions(t.arch, (StageAction(1.0, 1, "dws", "relu", "none"),)))
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(d(x), t(x), atol=1e-5)


def test_bad_actions_are_spec_errors(tiny_teacher):
    with pytest.raises(ParamVerifyError):
        apply_actions(tiny_teacher.arch, (StageAction(1.0, 3), StageAction(1.0, 1)))
    with pytest.raises(ParamVerifyError):
        apply_actions(tiny_teacher.arch, (StageAction(1.0, 1),))


def test_zoo_writes_a_teacher_that_reads_back(tmp_path, capsys):
    from paramverify.compress.zoo import main as zoo_main

    assert zoo_main(["teacher", "digits-b", "--out", str(tmp_path / "t.onnx"), "--steps", "2"]) == 0
    net = read_teacher(tmp_path / "t.onnx")
    assert [(s.width, s.depth, s.stride) for s in net.arch.stages] == [(24, 3, 1), (48, 2, 2)]
    assert "wrote" in capsys.readouterr().out
