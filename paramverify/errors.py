"""One error hierarchy for paramverify.

Every error a user can cause derives from :class:`ParamVerifyError` and also
from the builtin exception a Python programmer would expect (``ValueError``,
``ImportError``, ...), so ``except ValueError`` keeps working.  Messages are one
line: what is wrong and how to fix it.  The CLI maps any ``ParamVerifyError``
to exit code 2 without a traceback (unless ``--debug``).
"""

from __future__ import annotations

from collections.abc import Sequence


class ParamVerifyError(Exception):
    """Base class of every error paramverify raises on purpose."""


class ModelError(ParamVerifyError, ValueError):
    """The ONNX model is missing, malformed, or cannot be lowered."""


class UnsupportedOpsError(ModelError):
    """The model uses ONNX operators that paramverify cannot lower.

    ``nodes`` lists every offending node at once as ``(op_type, node_name)``.
    """

    def __init__(self, nodes: Sequence[tuple[str, str]], hint: str = "") -> None:
        self.nodes = tuple(nodes)
        self.hint = hint
        listed = ", ".join(f"{op} (node '{name}')" for op, name in self.nodes)
        msg = f"unsupported ONNX operators: {listed}"
        if hint:
            msg += f"; {hint}"
        super().__init__(msg)

    def __reduce__(self) -> tuple[object, ...]:  # picklable (Ray tasks, subprocesses) despite the custom __init__
        return (type(self), (self.nodes, self.hint))


class SpecError(ParamVerifyError, ValueError):
    """A specification (input region, perturbation, property) is invalid.

    ``field`` names the offending field, ``fix`` says how to repair it.
    """

    def __init__(self, field: str, problem: str, fix: str = "") -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        msg = f"{field}: {problem}"
        if fix:
            msg += f" ({fix})"
        super().__init__(msg)

    def __reduce__(self) -> tuple[object, ...]:  # picklable (Ray tasks, subprocesses) despite the custom __init__
        return (type(self), (self.field, self.problem, self.fix))


class CapabilityError(ParamVerifyError, NotImplementedError):
    """A backend lacks a capability the query needs (e.g. z3 and ``exp``)."""


class BackendUnavailableError(ParamVerifyError, ImportError):
    """An optional backend (dReal, torch) is not installed."""


class SolverError(ParamVerifyError, RuntimeError):
    """A solver failed in a way that is not a plain 'unknown'."""


class ClusterError(ParamVerifyError, RuntimeError):
    """The Ray cluster (``--workers``/``--ray-address``) could not be reached or was lost.

    Work that finished before the loss is reported by the caller.
    """


class ReplayError(ParamVerifyError, RuntimeError):
    """A counterexample did not reproduce on onnxruntime (internal guard)."""


class InternalError(ParamVerifyError, RuntimeError):
    """An internal invariant of paramverify failed: a bug, never the user's input.

    Soundness invariants are checked with :func:`check` (which raises this)
    instead of ``assert``, so that ``python -O`` cannot strip them.
    """


def check(condition: object, message: str) -> None:
    """Raise :class:`InternalError` with ``message`` unless ``condition`` holds.

    Use for invariants whose failure would make a result unsound; unlike
    ``assert`` it survives ``python -O``.
    """
    if not condition:
        raise InternalError(f"internal error (please report): {message}")
