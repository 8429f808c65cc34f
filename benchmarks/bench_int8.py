"""The deployed int8 digits CNN against its float model (issue: int8 vs float, differential).

    nice python benchmarks/bench_int8.py [--variant standard|penalized] [--n 20] [--first 0] [--radius 0.02] [--timeout 28] [--eps-timeout 10]

Models: ``benchmarks/train_int8_cnn.py`` (a digits CNN with max and average
pooling, and its onnxruntime ``quantize_static`` copies in QDQ and
QOperator format; ``--variant penalized``: the same network trained with
``--penalty 3``, a penalty on its first-order sensitivity to activation rounding).  For each of ``--n`` held-out
test images from index ``--first`` on (``--first 20``: images 20-39, which played no part in choosing the
penalty; their JSON gets the suffix ``_from20``) and each int8 copy, on the L-inf ball of radius ``--radius`` around the image:

* ``verify --property label`` (the int8 label equals the float label on the
  whole ball), with a time limit of ``--timeout`` seconds (the target: a
  verdict, verified or falsified with a counterexample replayed on both
  files, for at least 18 of 20 balls per int8 copy, each under 30 s);
* ``bound --property eps`` (the largest |int8(x) - float(x)| on the ball) as a
  bracket [witness, proof], with a limit of ``--eps-timeout`` seconds and
  tolerance 1e-3;
* 10,000 points sampled in the ball (corners and uniform), run through
  onnxruntime on both models: the largest observed difference must not
  exceed the proved upper end, and a VERIFIED ball must show no label
  disagreement.

An UNKNOWN ball whose float label is proved constant records the int8
margin's bracket (``int8_margin``: ``proved_at_least``, ``lowest_found``,
``pieces``) and the smallest int8 margin of the samples (``sampled_min``,
which must not be below the proved end).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_common import machine_info, write_results
from train_int8_cnn import VARIANTS, data, paths

from paramverify import api
from paramverify.options import Options


def ort_rows(path: Path, xs: np.ndarray, optimize: bool) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": xs.astype(np.float32).reshape(-1, 1, 8, 8)})[0].astype(np.float64)


def sample(x0: np.ndarray, r: float, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    u = rng.uniform(-1, 1, (n, x0.size))
    u[: n // 10] = np.sign(u[: n // 10])
    xs = (x0 + r * u).astype(np.float32)
    lo = np.nextafter((x0 - r).astype(np.float32), np.float32(np.inf))
    hi = np.nextafter((x0 + r).astype(np.float32), np.float32(-np.inf))
    return np.clip(xs, lo, hi)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="number of test images")
    ap.add_argument("--first", type=int, default=0, help="index of the first test image (default 0)")
    ap.add_argument("--radius", type=float, default=0.02)
    ap.add_argument("--timeout", type=float, default=28.0, help="time limit of the label verification (s)")
    ap.add_argument("--eps-timeout", type=float, default=10.0, help="time limit of the eps bracket (s)")
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="standard",
                    help="standard: the cross-entropy-trained CNN (results/int8.json); penalized: the one trained "
                         "with the rounding-sensitivity penalty, train_int8_cnn.py --penalty 3 (results/int8_penalized.json)")
    ap.add_argument("--out", default=None, help="JSON path (default by --variant)")
    args = ap.parse_args()
    float_path, qdq_path, qop_path, _ = paths(VARIANTS[args.variant])
    stem = "int8" if args.variant == "standard" else "int8_penalized"
    out_path = args.out or str(HERE / "results" / (stem + (f"_from{args.first}" if args.first else "") + ".json"))
    _, _, xte, _ = data()
    rows = []
    for fmt, qpath in (("QDQ", qdq_path), ("QOperator", qop_path)):
        for i in range(args.first, args.first + args.n):
            x0 = xte[i].reshape(-1).astype(np.float64)
            problem = api.make_problem(str(float_path), quantized_model=str(qpath), x0=x0, radius=args.radius)
            t = time.monotonic()
            v = api.verify(problem, "label", options=Options(timeout_s=args.timeout))
            t_label = time.monotonic() - t
            t = time.monotonic()
            b = api.bound(problem, "eps", options=Options(timeout_s=args.eps_timeout, tolerance=1e-3))
            t_eps = time.monotonic() - t
            xs = sample(x0, args.radius, args.samples, seed=i)
            y_f, y_q = ort_rows(float_path, xs, optimize=False), ort_rows(qpath, xs, optimize=True)
            observed = float(np.max(np.abs(y_q - y_f)))
            disagree = int(np.sum(np.argmax(y_q, 1) != np.argmax(y_f, 1)))
            row = {"format": fmt, "image": i, "label_verdict": v.name, "label_time_s": round(t_label, 3),
                   "eps_lower": b.lower, "eps_upper": b.upper, "eps_time_s": round(t_eps, 3), "eps_complete": b.complete,
                   "sampled_max_diff": observed, "sampled_label_disagreements": disagree, "samples": args.samples,
                   "sound": bool(observed <= b.upper and (v.name != "verified" or disagree == 0))}
            margin = getattr(v, "margin", None)
            if margin is not None:
                # an undecided ball: the int8 margin's bracket, and the smallest margin the samples show
                others = np.delete(y_q, margin.cls, axis=1)
                sampled_min = float(np.min(y_q[:, margin.cls] - others.max(axis=1)))
                row["int8_margin"] = {**margin.to_json(), "sampled_min": sampled_min}
                row["sound"] = row["sound"] and margin.lower <= sampled_min
            if v.name == "falsified":
                ce = v.counterexample  # type: ignore[union-attr]
                row["counterexample_replayed"] = bool(ce.replayed)
                if ce.onnxruntime_outputs is not None:
                    r_f, r_q = ce.onnxruntime_outputs
                    row["counterexample_labels"] = [int(np.argmax(r_f)), int(np.argmax(r_q))]
                    # a tie for the int8 model's top output: its label is not the float label strictly
                    row["counterexample_int8_tie"] = bool(np.sum(r_q == np.max(r_q)) > 1)
            rows.append(row)
            print(f"{fmt} image {i}: {v.name} ({t_label:.1f} s), eps in [{b.lower:.4g}, {b.upper:.4g}] ({t_eps:.1f} s), "
                  f"sampled max {observed:.4g}, disagreements {disagree}", flush=True)
    target = {}
    for fmt in ("QDQ", "QOperator"):
        rs = [r for r in rows if r["format"] == fmt]
        decided = sum(r["label_verdict"] in ("verified", "falsified") for r in rs)
        target[fmt] = {"verdicts": decided, "of": len(rs), "max_label_time_s": max((r["label_time_s"] for r in rs), default=0.0),
                       "met": bool(rs) and decided >= 0.9 * len(rs) and all(r["label_time_s"] < 30 for r in rs)}
    out = {"benchmark": "int8", "variant": args.variant, "radius": args.radius, "target": target, "timeout_s": args.timeout, "eps_timeout_s": args.eps_timeout, "n_images": args.n, "first_image": args.first,
           "models": {"float": float_path.name, "QDQ": qdq_path.name, "QOperator": qop_path.name}, "machine": machine_info(),
           "command": " ".join(["python"] + sys.argv), "rows": rows}
    print(f"wrote {write_results(out_path, out)}")


if __name__ == "__main__":
    main()
