"""SMT encoders for paramverify: z3 (exact), dReal (delta-complete, optional), SMT-LIB2 export.

One interface (:mod:`encoders.base`): a backend declares its capabilities,
guards its own import and supplies a term builder; the
:class:`~encoders.symbolic.SymbolicKernel` runs every ONNX op lowering on
those terms, and :mod:`encoders.encode` turns a problem and a property into
the formula of its violations (nominal and perturbed copies of the network,
inputs in the region, parameters in the box).

* ``Z3Engine`` / ``DRealEngine`` (:mod:`encoders.z3_backend`,
  :mod:`encoders.dreal_backend`): ``verify`` (unsat -> Verified; a replayed
  model -> Falsified; otherwise Unknown with the reason) and ``optimise``
  (bisection, :mod:`encoders.bisect`) through the shared
  :class:`~encoders.engine.SmtEngine`;
* :func:`encoders.smtlib.export_smtlib`: the same encoding as a standalone
  SMT-LIB2 script.

Submodules are imported on demand (``paramverify.engines`` looks the
engines up by name), so importing this package never imports a solver.
"""

from __future__ import annotations

__all__ = [
    "base",
    "bisect",
    "dreal_backend",
    "encode",
    "engine",
    "rational",
    "smtlib",
    "symbolic",
    "z3_backend",
]
