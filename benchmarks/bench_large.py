"""784-1024-512-256-256-256-10 ReLU MLPs (about 1.6M parameters), every layer in an 8-bit box.

    python benchmarks/bench_large.py [--quick] [--models robust,standard,random] [--inputs 3] [--timeout 120]

Three networks of the same shape, on held-out MNIST images
(``train_mnist_mlp.held_out``):

``robust``
    the committed ``models/mnist_784_1024_512_256_256_256_10.onnx``, trained by
    ``train_mnist_large.py`` with a quantization-robustness term (see there).
    The deployment case: a model meant to be quantized, checked before it is.
``standard``
    the same script with ``--mode standard`` (cross-entropy only), trained at
    run time into ``models/.cache/`` when absent (about 5 min on 2 cores; needs
    torch), never committed.
``random``
    weights N(0, 1/fan_in), biases N(0, 1/4) (``tests/netgen.random_mlp`` with
    seed 1600), built at run time.

Each (model, input) runs in its own subprocess, which reports

* a local label certificate (Def 3) under the symmetric per-tensor 8-bit
  rounding box on all 12 tensors: verdict and wall time;
* the largest output change there (MaxEpsilon bracket: the upper/lower ratio);
* peak memory: that process's ``resource.getrusage(RUSAGE_SELF).ru_maxrss``
  (resident set, including the Python/numpy/onnx baseline).

Target (issue 3): a label certificate for one input in under 60 s on 2 cores
with peak memory under 4 GB.  The inputs are tried largest nominal margin
first.  A Falsified verdict (a counterexample inside the box, replayed on
onnxruntime) is a definite answer but not a certificate: no sound tool can
certify that input.  When no input of a model certifies, its first input is
re-run with wider boxes (``--cert-bits``) to time a certificate that does exist.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(ROOT), str(ROOT / "tests"), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from bench_common import machine_info, write_results  # noqa: E402  (benchmarks/bench_common.py)

SIZES = (784, 1024, 512, 256, 256, 256, 10)
SEED = 1600
TARGET_TIME, TARGET_MB = 60.0, 4096.0
ANCHORS = {
    "label": "auto_LiRPA (784-1024-512-256-256-256-10, 8-bit box, re-measured 2026-12): IBP 0.9-1.0 s, unknown (ou"
             "tput-change bound 32-37x the attack); CROWN-IBP 2.1-2.8 s, unknown; CROWN out of memory at 12 GB after 96 s",
}


MODELS = ("robust", "standard", "random")
ROBUST_PATH = HERE / "models" / "mnist_784_1024_512_256_256_256_10.onnx"
STANDARD_PATH = HERE / "models" / ".cache" / "mnist_784_1024_512_256_256_256_10_standard.onnx"


def model_path(name: str) -> Path | None:
    """The ONNX file of a trained model (training the standard one when absent); None for the random one."""
    if name == "robust":
        if not ROBUST_PATH.is_file():
            raise SystemExit(f"{ROBUST_PATH} is missing (python benchmarks/train_mnist_large.py rebuilds it)")
        return ROBUST_PATH
    if name == "standard":
        if not STANDARD_PATH.is_file():
            print(f"training the standard model into {STANDARD_PATH} (once; about 5 min) ...", flush=True)
            subprocess.run([sys.executable, str(HERE / "train_mnist_large.py"), "--mode", "standard",
                            "--out", str(STANDARD_PATH)], check=True, stdout=subprocess.DEVNULL)
        return STANDARD_PATH
    if name == "random":
        return None
    raise SystemExit(f"unknown model {name!r}; use {', '.join(MODELS)}")


def build(name: str = "random"):
    from netgen import random_mlp

    from paramverify.ir import load_model

    path = model_path(name)
    return load_model(random_mlp(SEED, SIZES, "relu") if path is None else path)


def candidates(name: str, n: int, pool: int = 50) -> list[int]:
    """Indices (among the first ``pool`` held-out images) in order of decreasing nominal margin."""
    from train_mnist_mlp import held_out

    from paramverify.properties import margins

    g = build(name)
    x, _ = held_out(pool)
    m = margins(g.evaluate(x.astype(np.float64)), 0.5)
    return [int(i) for i in np.argsort(-m)[:n]]


def run_one(name: str, index: int, timeout: float, bits: int, eps: bool = True) -> dict[str, Any]:
    from train_mnist_mlp import held_out

    from paramverify import api
    from paramverify.options import Options
    from paramverify.properties import margins

    t_build = time.perf_counter()
    g = build(name)
    x, y = held_out(index + 1)
    x, label = x[index].astype(np.float64), int(y[index])
    problem = api.make_problem(g, bits=bits, x0=x)
    t_build = time.perf_counter() - t_build
    out: dict[str, Any] = {"model": name, "image": index, "label": label,
                           "predicted": int(np.argmax(g.evaluate(x))), "n_parameters": problem.box.n_parameters, "radius": problem.box.radius(),
                           "margin": float(margins(g.evaluate(x), 0.5)[0]), "build_s": t_build}
    t0, c0 = time.perf_counter(), time.process_time()
    v = api.verify(problem, "label", options=Options(timeout_s=timeout))
    out.update(verdict=v.name, label_time_s=time.perf_counter() - t0, label_cpu_s=time.process_time() - c0, label_method=v.method)
    if v.name == "unknown":
        out["reason"] = v.reason  # type: ignore[union-attr]
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if not eps:
        return out
    t0 = time.perf_counter()
    b = api.bound(problem, "eps", options=Options(timeout_s=timeout, tolerance=1e-6))
    out.update(eps_lower=b.lower, eps_upper=b.upper, eps_time_s=time.perf_counter() - t0, eps_method=b.method,
               ratio=b.upper / b.lower if b.lower > 0 else float("inf"))
    out["peak_rss_mb_with_eps"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _child(name: str, i: int, timeout: float, bits: int, eps: bool) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", str(i), "--model", name,
           "--timeout", str(timeout), "--bits", str(bits)]
    if not eps:
        cmd.append("--no-eps")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3 * timeout + 300, env=env, check=False)
    except subprocess.TimeoutExpired:
        return {"model": name, "image": i, "bits": bits, "error": "killed: over the time limit"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    r = json.loads(lines[-1]) if lines else {"model": name, "image": i,
                                             "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    r["bits"] = bits
    if "error" not in r:
        r["certificate_in_target"] = bool(r["verdict"] == "verified" and r["label_time_s"] < TARGET_TIME
                                          and r["peak_rss_mb"] < TARGET_MB)
        r["definite_in_target"] = bool(r["verdict"] != "unknown" and r["label_time_s"] < TARGET_TIME
                                       and r["peak_rss_mb"] < TARGET_MB)
    return r


def model_info(name: str) -> dict[str, Any]:
    path = model_path(name)
    if path is None:
        return {"model": name, "source": f"tests/netgen.random_mlp({SEED}, {SIZES}, 'relu'), built at run time"}
    import hashlib

    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return {"model": name, "file": str(path.relative_to(ROOT)), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "test_accuracy": meta.get("test_accuracy"), "training": {k: meta.get(k) for k in
                                                                     ("mode", "epochs", "lr", "kappa", "margin", "lam")}}


def run_model(name: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    info = model_info(name)
    idx = candidates(name, n)
    acc = info.get("test_accuracy")
    print(f"\n{name}: {'-'.join(map(str, SIZES))} ReLU MLP"
          f"{f', held-out accuracy {acc:.3f}' if acc is not None else ''}; all layers, {args.bits}-bit per-tensor box")
    print(f"{'image':>6}{'params':>10}{'margin':>9}{'verdict':>11}{'time s':>9}{'peak MB':>9}{'eps ratio':>11}{'eps s':>8}  target")
    rows = []
    for i in idx:
        r = _child(name, i, args.timeout, args.bits, eps=not args.no_eps)
        rows.append(r)
        if "error" in r:
            print(f"{i:>6}  ERROR {r['error'][:200]}")
            continue
        ratio = f"{r['ratio']:>11.3g}{r['eps_time_s']:>8.2f}" if "ratio" in r else f"{'-':>11}{'-':>8}"
        print(f"{i:>6}{r['n_parameters']:>10}{r['margin']:>9.3f}{r['verdict']:>11}{r['label_time_s']:>9.2f}"
              f"{r['peak_rss_mb']:>9.0f}{ratio}  {'PASS' if r['certificate_in_target'] else 'FAIL'}", flush=True)
    ok = any(r.get("certificate_in_target") for r in rows)
    refuted = bool(rows) and all(r.get("verdict") == "falsified" for r in rows)
    cert_rows = []
    if not ok and args.cert_bits and rows and "error" not in rows[0]:
        print(f"  no {args.bits}-bit certificate; input {idx[0]} with wider boxes (the engine's speed on a provable case):")
        for bits in (int(b) for b in args.cert_bits.split(",")):
            r = _child(name, idx[0], args.timeout, bits, eps=False)
            cert_rows.append(r)
            if "error" in r:
                print(f"  {bits:>4} bits  ERROR {r['error'][:200]}")
                continue
            print(f"  {bits:>4} bits: {r['verdict']:>10} in {r['label_time_s']:.2f} s, peak {r['peak_rss_mb']:.0f} MB", flush=True)
            if r["verdict"] == "verified":
                break
    return {**info, "pass": ok, "all_refuted": refuted, "rows": rows, "wider_boxes": cert_rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one input per model, no epsilon brackets")
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)} (default: all)")
    ap.add_argument("--inputs", type=int, default=3, help="inputs per model, largest margin first (default 3)")
    ap.add_argument("--bits", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=120.0, help="budget per query in seconds (default 120)")
    ap.add_argument("--out", default=str(HERE / "results" / "large.json"))
    ap.add_argument("--cert-bits", default="10,12,14,16",
                    help="when no input of a model certifies, try these widths on its first input "
                         "(default 10,12,14,16; '' to skip)")
    ap.add_argument("--no-eps", action="store_true", help="skip the epsilon brackets")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--model", default="robust", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one is not None:
        print(json.dumps(run_one(args.model, args.one, args.timeout, args.bits, eps=not args.no_eps), default=float))
        return 0
    if args.quick:
        args.no_eps = True
    n = 1 if args.quick else args.inputs
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    models = [run_model(name, n, args) for name in names]
    ok = any(m["pass"] for m in models)
    summary = "; ".join(
        f"{m['model']}: " + ("certified" if m["pass"] else "refuted at every input (replayed counterexamples)"
                             if m["all_refuted"] else "no certificate in time") for m in models)
    print(f"\ntarget: a label certificate for one input in < {TARGET_TIME:g} s, peak < {TARGET_MB / 1024:g} GB: "
          f"{'PASS' if ok else 'FAIL'} ({summary})   | ANCHORS: {ANCHORS['label']}")
    out = {
        "benchmark": "large", "sizes": SIZES, "bits": args.bits, "timeout_s": args.timeout,
        "target": f"label certificate for one input in < {TARGET_TIME} s on 2 cores, peak memory < {TARGET_MB / 1024} GB",
        "pass": ok, "summary": summary,
        "peak_memory": "resource.getrusage(RUSAGE_SELF).ru_maxrss of one subprocess per input (resident set)",
        "anchors": ANCHORS, "machine": machine_info(), "models": models,
    }
    write_results(args.out, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
