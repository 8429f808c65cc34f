"""Sound bound propagation and branch and bound: the default ``bounds`` engine.

Public API:

* :class:`~paramverify.bounds.engine.BoundsEngine` -- ``verify`` / ``optimise``.
* :class:`~paramverify.bounds.interval.Interval`, :class:`~paramverify.bounds.interval.IntervalKernel`
  -- outward-rounded interval semantics of every op.
* :class:`~paramverify.bounds.differential.DiffValue`, :class:`~paramverify.bounds.differential.DiffKernel`
  -- (nominal, perturbed, difference) enclosures.
* :class:`~paramverify.bounds.crown.LinearBounds` -- CROWN-style linear bounds with perturbed
  weights (:mod:`~paramverify.bounds.linear` traces a graph, :mod:`~paramverify.bounds.backward`
  back-substitutes, :mod:`~paramverify.bounds.relax` holds the sound activation lines).
* :class:`~paramverify.bounds.local.SplitSearch` -- neuron-split branch and bound at a point;
  :mod:`~paramverify.bounds.point` pairs it with the falsifier for point-region queries.
* :func:`~paramverify.bounds.sound.box_outputs`, :func:`~paramverify.bounds.sound.tight_box_outputs`,
  :func:`~paramverify.bounds.sound.point_outputs` -- run a graph on N input boxes / one concrete (x, p).
* :class:`~paramverify.bounds.autodiff.AutodiffKernel`, :func:`~paramverify.bounds.falsify.falsify`
  -- gradients over the kernel primitives and the sign-gradient falsifier.
* :func:`~paramverify.bounds.branch.branch_and_bound` -- batched best-first search over an input box.
"""

from paramverify.bounds.crown import LinearBounds
from paramverify.bounds.differential import DiffKernel, DiffValue
from paramverify.bounds.interval import Interval, IntervalKernel

__all__ = ["DiffKernel", "DiffValue", "Interval", "IntervalKernel", "LinearBounds"]
