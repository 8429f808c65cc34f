"""Value representations the op lowerings run on (see :class:`paramverify.ops.Kernel`)."""

from paramverify.kernels.numeric import NumericKernel

__all__ = ["NumericKernel"]
