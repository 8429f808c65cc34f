"""The kernel contract: every primitive of the Kernel protocol is implemented by every
kernel, or declared unsupported there with the reason (and then refused with a
CapabilityError that says it).  Adding a primitive (for a new op) without a row in every
kernel's table fails here, naming the kernel and the primitive.

Kernels: numeric (float64 evaluation), interval (sound enclosures), differential
(nominal, perturbed, difference), linear (the trace that backward/CROWN bounds walk),
autodiff (the falsifier's gradients), symbolic (z3, dReal, SMT-LIB2 terms).
"""

from __future__ import annotations

import inspect
import re

import pytest

from encoders.symbolic import SymbolicKernel
from paramverify.bounds.autodiff import AutodiffKernel
from paramverify.bounds.backward import CONCRETISED, _Pass
from paramverify.bounds.differential import DiffKernel
from paramverify.bounds.interval import IntervalKernel
from paramverify.bounds.linear import TraceKernel
from paramverify.errors import CapabilityError
from paramverify.kernels.numeric import NumericKernel
from paramverify.ops import default_registry
from paramverify.ops.base import PRIMITIVES, Kernel

KERNELS = {
    "numeric": NumericKernel,
    "interval": IntervalKernel,
    "differential": DiffKernel,
    "linear": TraceKernel,
    "autodiff": AutodiffKernel,
    "symbolic": SymbolicKernel,
}


def test_the_primitive_list_is_the_protocol() -> None:
    declared = {n for n, v in vars(Kernel).items() if callable(v) and not n.startswith("_")}
    assert set(PRIMITIVES) == declared and len(PRIMITIVES) >= 19


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_every_primitive_is_implemented_or_declared_unsupported(name: str) -> None:
    cls = KERNELS[name]
    unsupported = dict(cls.UNSUPPORTED)
    assert set(unsupported) <= set(PRIMITIVES), f"{name} declares unknown primitives {set(unsupported) - set(PRIMITIVES)}"
    missing = [p for p in PRIMITIVES if not callable(getattr(cls, p, None)) and p not in unsupported]
    assert not missing, f"kernel {name} neither implements nor declares unsupported: {missing}"
    for prim, reason in unsupported.items():
        assert len(reason) > 20, f"{name}.{prim}: say why it is unsupported and what to do instead"
        kernel = cls.__new__(cls)  # no solver needed: the refusal comes before any work
        n_args = len(inspect.signature(getattr(cls, prim)).parameters) - 1
        with pytest.raises(CapabilityError) as info:
            getattr(kernel, prim)(*([None] * n_args))
        assert str(info.value) == reason


def test_the_backward_pass_has_a_rule_or_concretises_every_recorded_op() -> None:
    """What the linear kernel records (one node per primitive) is bounded backwards by a
    rule ``_Pass._<op>`` or, declared with the reason, by its forward interval."""
    for prim in PRIMITIVES:
        if prim == "shape" or prim in TraceKernel.UNSUPPORTED:
            continue
        assert hasattr(_Pass, "_" + prim) or prim in CONCRETISED, f"backward pass: no rule for {prim}"
    for op, reason in CONCRETISED.items():
        assert not hasattr(_Pass, "_" + op), f"{op} is declared concretised but also has a backward rule"
        assert reason


def test_every_registered_op_lowers_to_primitives_only() -> None:
    """An op's lowering calls the kernel only through the protocol's primitives."""
    for op_type, op in default_registry().items():
        source = inspect.getsource(op.apply)
        for called in set(re.findall(r"\bk\.([a-z_]+)\(", source)):
            assert called in PRIMITIVES, f"{op_type}.apply calls k.{called}, which is not a Kernel primitive"
