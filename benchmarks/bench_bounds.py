"""Speed targets of the bound engine on the case studies (not a unit test).

Run: ``python benchmarks/bench_bounds.py``.  Targets: MaxEpsilon over the data
box to an absolute gap <= 1e-5 in about 1 s; MinSigma per class to <= 1e-4
in a few seconds (deltas 0.005 and 0.01 on every weight and bias).
"""

from __future__ import annotations

import time

from paramverify.bounds.engine import BoundsEngine
from paramverify.casestudies import CASE_STUDIES
from paramverify.ir import load_model
from paramverify.options import Options
from paramverify.properties import MaxEpsilon, MinSigma, Problem
from paramverify.specs import AbsoluteDelta, InputRegion


def main() -> None:
    engine = BoundsEngine()
    print(f"{'model':<11} {'delta':>6} {'objective':<12} {'lower':>12} {'upper':>12} {'gap':>9} {'boxes':>6} {'time_s':>7}")
    for name, cs in CASE_STUDIES.items():
        graph = load_model(cs.onnx_path)
        lo, hi = cs.domain
        for delta in (0.005, 0.01):
            problem = Problem(graph, AbsoluteDelta(delta).to_box(graph), InputRegion.box(lo, hi), cs.level)
            for objective, tol in ((MaxEpsilon(), 1e-5), (MinSigma(0), 1e-4), (MinSigma(1), 1e-4)):
                t0 = time.perf_counter()
                b = engine.optimise(problem, objective, Options(tolerance=tol, timeout_s=60))
                dt = time.perf_counter() - t0
                label = type(objective).__name__ + (f"({objective.cls})" if isinstance(objective, MinSigma) else "")
                flag = "" if b.complete else "  INCOMPLETE"
                print(f"{name:<11} {delta:>6} {label:<12} {b.lower:>12.8f} {b.upper:>12.8f} {b.gap:>9.2e} "
                      f"{b.extra.get('boxes', 0):>6} {dt:>7.2f}{flag}")


if __name__ == "__main__":
    main()
