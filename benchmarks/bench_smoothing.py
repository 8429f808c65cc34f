"""Randomized-smoothing benchmarks: throughput and incremental certification.

    python benchmarks/bench_smoothing.py [--device cpu|cuda] [--n N] [--batches 400,1000,...]
        [--precisions float32,bfloat16,int8] [--inc-images K] [--inc-n N] [--inc-nq NQ] [--out PATH]

Part 1 (throughput): samples per second and seconds per image for a
CIFAR-10-shaped ResNet-110 (random weights: timing only) in float32, bfloat16
(autocast) and int8 fake quantization (W8A8, per-channel weights, static
activation ranges), for several batch sizes.  Seconds per image at Cohen et
al.'s N = 100,000 (+ n0 = 100) is *measured* when N = 100,000 was run and
*extrapolated* from the measured rate otherwise; the JSON says which.

Part 2 (incremental certification, Ugare et al. 2024): the shipped MNIST CNN
trained at sigma = 1.0 (moderate pA, the regime IRS is for) on held-out MNIST
digits.  The float model is certified with N samples (alpha_f); its int8 copy
is certified incrementally from n_q samples reusing the float noise (alpha_q),
confidence 1 - alpha_f - alpha_q.  The from-scratch baseline certifies the
int8 copy at the *same* overall confidence (alpha = alpha_f + alpha_q) and
counts n0 + the smallest n whose Clopper-Pearson bound reaches the IRS radius
(first passage along one sample stream, capped at --inc-max; a cap counts as
the cap, so the ratio is then a lower bound).  The float certification is not
counted for IRS: it is the premise (done once, reused for every quantized copy).

Defaults are small on a CPU and Cohen-sized on a GPU.  Writes
benchmarks/results/smoothing.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_common import write_results  # benchmarks/bench_common.py

from paramverify.smoothing.core import (
    Smooth,
    SmoothOptions,
    clopper_pearson_lower,
    clopper_pearson_upper,
    radius_from_pa,
)
from paramverify.smoothing.data import MODELS_DIR, load_test_samples, split_mnist_5k
from paramverify.smoothing.dataset import CertRow, plot_certified_accuracy
from paramverify.smoothing.incremental import certify_incremental
from paramverify.smoothing.onnx_torch import load_onnx
from paramverify.smoothing.quant import QuantPolicy, bitops, quantize_model
from paramverify.smoothing.resnet import CifarResNet, fold_batchnorm

COHEN_N, COHEN_N0 = 100_000, 100
REPORTED = {
    "source": "/work/shared/ANCHORS.md, randomized smoothing (reported figures)",
    "cohen2019_resnet110_cifar10_seconds_per_image": 15.0,
    "cohen2019_hardware": "RTX 2080 Ti, N = 100,000, alpha = 0.001",
    "cohen2019_resnet50_imagenet_seconds_per_image": 150.0,
    "ugare2024_irs_int8_resnet110_speedup": 4.1,
    "ugare2024_average_disagreement_bound": 0.009,
    "all_agree_max_radius_over_sigma_alpha_0.001": {"1e3": 2.46, "1e4": 3.20, "1e5": 3.81},
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(args: argparse.Namespace, device: torch.device) -> list[dict[str, object]]:
    torch.manual_seed(0)
    x_all, _ = load_test_samples("cifar10")
    x = torch.from_numpy(x_all[0])
    base = fold_batchnorm(CifarResNet(110).eval())
    rows: list[dict[str, object]] = []
    for precision in args.precisions:
        model: torch.nn.Module = base
        dtype = "bfloat16" if precision == "bfloat16" else "float32"
        if precision == "int8":
            calib = torch.from_numpy(x_all).repeat(4, 1, 1, 1)
            calib = calib + args.sigma * torch.randn(calib.shape, generator=torch.Generator().manual_seed(1))
            model = quantize_model(base, QuantPolicy.uniform(8), calib.to(torch.float32))
        if args.compile:
            model = torch.compile(model)
        n = args.n_bf16_cpu if precision == "bfloat16" and device.type == "cpu" else args.n
        for batch in args.batches:
            if precision == "bfloat16" and device.type == "cpu" and batch > args.n_bf16_cpu:
                continue
            opts = SmoothOptions(sigma=args.sigma, batch_size=batch, device=str(device), dtype=dtype,
                                 channels_last=device.type == "cuda")
            sm = Smooth(model, 10, opts, torch.Generator().manual_seed(0))
            sm.sample_labels(x, min(batch, n), sm.noise_spec(1, 0))  # warm-up (cudnn autotune, allocator)
            _sync(device)
            t0 = time.perf_counter()
            counts, _ = sm.sample_labels(x, n, sm.noise_spec(2, 1))
            _sync(device)
            dt = time.perf_counter() - t0
            rate = n / dt
            measured = n >= COHEN_N
            row = {
                "model": "ResNet-110 (CIFAR-10 shape, random weights, BN folded)",
                "precision": precision, "batch": batch, "n_measured": n, "seconds_measured": round(dt, 3),
                "samples_per_second": round(rate, 1),
                "seconds_per_image_at_N_100000": round((COHEN_N + COHEN_N0) / rate, 2),
                "seconds_per_image_kind": "measured" if measured else "extrapolated from the measured rate",
                "reported_cohen2019_seconds_per_image": REPORTED["cohen2019_resnet110_cifar10_seconds_per_image"],
                "sum_counts": int(counts.sum()),
            }
            rows.append(row)
            print(f"  {precision:9s} batch {batch:6d}: {rate:10.1f} samples/s, "
                  f"{row['seconds_per_image_at_N_100000']:9.2f} s/image at N=1e5 ({row['seconds_per_image_kind']})",
                  flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


def _scratch_needed(p_hat: float, target_pa: float, alpha: float, cap: int) -> int | None:
    """Smallest n whose Clopper-Pearson bound at the *expected* count ``p_hat * n`` reaches ``target_pa``.

    Using the expected count (not a first passage along one stream, which would
    be optional stopping) makes this the typical cost of a from-scratch
    certificate; None when even ``cap`` samples do not suffice.
    """
    def ok(n: int) -> bool:
        return clopper_pearson_lower(round(p_hat * n), n, alpha) >= target_pa

    if p_hat <= target_pa or not ok(cap):
        return None
    lo, hi = 1, cap
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def incremental(args: argparse.Namespace, device: torch.device) -> dict[str, object]:
    _, _, x_test, y_test = split_mnist_5k()
    model = load_onnx(MODELS_DIR / args.inc_model)
    calib = torch.from_numpy(x_test[-256:])  # held-out images not certified below
    calib = calib + args.inc_sigma * torch.randn(calib.shape, generator=torch.Generator().manual_seed(3))
    policy = QuantPolicy.uniform(8)
    qmodel = quantize_model(model, policy, calib)
    alpha_f, alpha_q = args.alpha / 2, args.alpha / 2
    opts = SmoothOptions(sigma=args.inc_sigma, batch_size=args.inc_batch, device=str(device))
    fs = Smooth(model, 10, opts, torch.Generator().manual_seed(0))
    qs = Smooth(qmodel, 10, opts, torch.Generator().manual_seed(1))
    grid = sorted(args.inc_nq)
    headline = max(grid)
    per_image = []
    curves: dict[str, list[CertRow]] = {"float32 (N)": [], f"int8 IRS (n_q={headline})": [],
                                        f"int8 from scratch (n={headline}, expected)": []}
    for i in range(args.inc_images):
        x, label = x_test[i], int(y_test[i])
        fc = fs.certify(x, COHEN_N0, args.inc_n, alpha_f, seed=10_000 + i, keep_labels=True)
        # the library path, timed, at the largest n_q
        ic = certify_incremental(qs, fc, x, headline, alpha_q)
        # the int8 copy on the whole float stream: prefixes give IRS at every n_q, the whole
        # stream estimates the copy's pA (a measurement, counted for neither method)
        t0 = time.perf_counter()
        _, q_labels = qs.sample_labels(x, args.inc_n, fc.noise, keep_labels=True)
        q_seconds = time.perf_counter() - t0
        assert q_labels is not None and fc.labels is not None
        disagree = np.cumsum(q_labels != fc.labels)
        p_hat = float(np.mean(q_labels == fc.guess))
        rate = args.inc_n / q_seconds
        row: dict[str, object] = {
            "idx": i, "label": label, "float_predict": fc.predict, "float_pa_lower": round(fc.pa_lower, 6),
            "float_radius": round(fc.radius, 4), "int8_pa_estimate": round(p_hat, 5),
            "int8_disagreement_rate": round(float(disagree[-1]) / args.inc_n, 5),
            "irs_seconds_at_largest_nq": round(ic.seconds, 3), "int8_samples_per_second": round(rate, 1), "by_nq": {},
        }
        for nq in grid:
            k = int(disagree[nq - 1])
            zeta = clopper_pearson_upper(k, nq, alpha_q)
            pa = fc.pa_lower - zeta
            certified = not fc.abstained and pa > 0.5
            radius = radius_from_pa(pa, args.inc_sigma) if certified else 0.0
            if nq == headline and not fc.abstained:
                assert (ic.disagreements, round(ic.radius, 9)) == (k, round(radius, 9)), "prefix != library"
            needed = _scratch_needed(p_hat, pa, args.alpha, args.inc_max) if certified else None
            scratch = COHEN_N0 + (needed if needed is not None else args.inc_max)
            s_pa = clopper_pearson_lower(round(p_hat * nq), nq, args.alpha)
            row["by_nq"][str(nq)] = {  # type: ignore[index]
                "irs_radius": round(radius, 4), "zeta": round(zeta, 6), "disagreements": k,
                "scratch_samples_for_equal_radius": scratch if certified else None,
                "scratch_censored": certified and needed is None,
                "sample_ratio": round(scratch / nq, 2) if certified else None,
                "scratch_expected_radius_at_equal_samples": round(
                    radius_from_pa(s_pa, args.inc_sigma) if s_pa >= 0.5 else 0.0, 4),
            }
        per_image.append(row)
        h = row["by_nq"][str(headline)]  # type: ignore[index]
        curves["float32 (N)"].append(CertRow(i, label, fc.predict, fc.radius, int(fc.predict == label), 0.0))
        irs_pred = fc.predict if h["irs_radius"] > 0 else -1
        curves[f"int8 IRS (n_q={headline})"].append(
            CertRow(i, label, irs_pred, h["irs_radius"], int(irs_pred == label), 0.0))
        s_r = h["scratch_expected_radius_at_equal_samples"]
        s_pred = fc.guess if s_r > 0 else -1
        curves[f"int8 from scratch (n={headline}, expected)"].append(
            CertRow(i, label, s_pred, s_r, int(s_pred == label), 0.0))
        print(f"  image {i:3d}: float pA>={fc.pa_lower:.4f} r={fc.radius:.3f} | int8 pA~{p_hat:.4f} "
              f"dis={row['int8_disagreement_rate']:.4f} | ratios "
              + " ".join(f"{nq}:{row['by_nq'][str(nq)]['sample_ratio']}" for nq in grid), flush=True)  # type: ignore[index]
    summary = {}
    for nq in grid:
        comp = [r["by_nq"][str(nq)] for r in per_image if r["by_nq"][str(nq)]["sample_ratio"] is not None]  # type: ignore[index]
        ratios = np.array([c["sample_ratio"] for c in comp], dtype=float)
        mids = [r["by_nq"][str(nq)] for r in per_image
                if r["by_nq"][str(nq)]["sample_ratio"] is not None and r["float_pa_lower"] < 0.99]  # type: ignore[index]
        summary[str(nq)] = {
            "n_q": nq, "certified_images": len(comp),
            "censored_images": sum(bool(c["scratch_censored"]) for c in comp),
            "sample_ratio_total": round(sum(c["scratch_samples_for_equal_radius"] for c in comp) / (nq * len(comp)), 2)
            if comp else None,
            "sample_ratio_median": round(float(np.median(ratios)), 2) if len(ratios) else None,
            "fraction_of_images_ratio_at_least_4": round(float(np.mean(ratios >= 4)), 3) if len(ratios) else None,
            "sample_ratio_total_float_pa_below_0.99": round(
                sum(c["scratch_samples_for_equal_radius"] for c in mids) / (nq * len(mids)), 2) if mids else None,
            "images_float_pa_below_0.99": len(mids),
            "mean_zeta": round(float(np.mean([c["zeta"] for c in comp])), 5) if comp else None,
            "mean_irs_radius": round(float(np.mean([c["irs_radius"] for c in comp])), 4) if comp else None,
            "mean_scratch_radius_at_equal_samples": round(
                float(np.mean([c["scratch_expected_radius_at_equal_samples"] for c in comp])), 4) if comp else None,
        }
    plot_path = Path(args.out).with_name("smoothing_incremental_certified_accuracy.png")
    plot_certified_accuracy(curves, plot_path, title=f"MNIST CNN and its int8 copy, sigma {args.inc_sigma}")
    return {
        "model": f"paramverify/smoothing/models/{args.inc_model} (MNIST CNN, trained with noise sigma "
                 f"{args.inc_sigma}), int8 copy: W8A8 per-channel weights, static activation ranges",
        "bitops_fraction_of_float": bitops(model, policy, torch.from_numpy(x_test[:1])).to_dict()["fraction_of_float"],
        "images": args.inc_images, "sigma": args.inc_sigma, "N_float": args.inc_n, "n0": COHEN_N0,
        "n_q_grid": grid, "alpha_float": alpha_f, "alpha_q": alpha_q,
        "combined_confidence": round(1 - alpha_f - alpha_q, 12), "scratch_alpha": args.alpha,
        "scratch_cap": args.inc_max,
        "method": "IRS samples = n_q forward passes of the int8 copy (the float certificate is the premise). "
                  "Scratch samples = n0 + the smallest n whose Clopper-Pearson bound (alpha_f + alpha_q), at the "
                  "expected count p_hat * n, reaches the IRS bound; p_hat = the int8 copy's hit rate over the N "
                  "float-stream samples. Censored at the cap (ratio then a lower bound).",
        "mean_int8_disagreement_rate": round(float(np.mean([r["int8_disagreement_rate"] for r in per_image])), 5),
        "summary_by_nq": summary,
        "headline_n_q": headline,
        "certified_accuracy_plot": str(plot_path.relative_to(ROOT) if plot_path.is_relative_to(ROOT) else plot_path),
        "per_image": per_image,
        "target": "at least 4x fewer samples than from scratch at equal radius",
        "reported_ugare2024_speedup": REPORTED["ugare2024_irs_int8_resnet110_speedup"],
        "reported_ugare2024_average_disagreement_bound": REPORTED["ugare2024_average_disagreement_bound"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--n", type=int, help="samples per configuration (default 100000 on GPU, 800 on CPU)")
    p.add_argument("--n-bf16-cpu", type=int, default=200, help="bfloat16 samples on a CPU without native bf16")
    p.add_argument("--batches", help="comma-separated batch sizes (default 400,1000,4000,16384 GPU; 100,400 CPU)")
    p.add_argument("--precisions", default="float32,bfloat16,int8")
    p.add_argument("--sigma", type=float, default=0.25)
    p.add_argument("--alpha", type=float, default=0.001)
    p.add_argument("--compile", action="store_true", help="torch.compile the ResNet (GPU)")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-incremental", action="store_true")
    p.add_argument("--inc-model", default="mnist_cnn_sigma1.onnx")
    p.add_argument("--inc-sigma", type=float, default=1.0)
    p.add_argument("--inc-images", type=int, help="held-out images (default 100 GPU, 20 CPU)")
    p.add_argument("--inc-n", type=int, help="float samples N (default 100000 GPU, 20000 CPU)")
    p.add_argument("--inc-nq", help="comma-separated n_q values (default N/100,N/40,N/20,N/10)")
    p.add_argument("--inc-max", type=int, help="cap on scratch samples (default 20N)")
    p.add_argument("--inc-batch", type=int, default=2000)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "smoothing.json"))
    args = p.parse_args(argv)
    gpu = args.device.startswith("cuda")
    if gpu and not torch.cuda.is_available():
        p.error("--device cuda but no CUDA device is available")
    device = torch.device(args.device)
    args.n = args.n or (100_000 if gpu else 800)
    args.batches = [int(b) for b in (args.batches or ("400,1000,4000,16384" if gpu else "100,400")).split(",")]
    args.precisions = args.precisions.split(",")
    args.inc_images = args.inc_images or (100 if gpu else 20)
    args.inc_n = args.inc_n or (100_000 if gpu else 20_000)
    args.inc_nq = [int(v) for v in args.inc_nq.split(",")] if args.inc_nq else \
        [args.inc_n // 100, args.inc_n // 40, args.inc_n // 20, args.inc_n // 10]
    args.inc_max = args.inc_max or 20 * args.inc_n
    if gpu:
        torch.backends.cudnn.benchmark = True
    env = {
        "device": torch.cuda.get_device_name(device) if gpu else f"CPU ({platform.processor() or platform.machine()})",
        "device_type": device.type, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "compile": args.compile, "load_average_at_start": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "note": "CPU runs use a small N; seconds per image at N = 100,000 is then an extrapolation "
                "from the measured samples/second, labelled as such. The machine may be shared.",
    }
    print(f"device: {env['device']} (torch {env['torch']}, {env['threads']} threads)")
    out = Path(args.out)
    previous = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
    result: dict[str, object] = {"environment": env, "reported": REPORTED}
    for part, skipped in (("throughput", args.skip_throughput), ("incremental", args.skip_incremental)):
        if skipped and part in previous:  # keep the last run's section, with the environment it ran in
            result[part] = previous[part]
            result[f"{part}_environment"] = previous.get(f"{part}_environment", previous.get("environment"))
    if not args.skip_throughput:
        print(f"throughput: ResNet-110, N={args.n}, batches {args.batches}")
        result["throughput"] = throughput(args, device)
        result["throughput_environment"] = env
    if not args.skip_incremental:
        print(f"incremental: {args.inc_images} MNIST images, N={args.inc_n}, n_q in {args.inc_nq}")
        result["incremental"] = incremental(args, device)
        result["incremental_environment"] = env
    write_results(out, result)
    _table(result)
    print(f"wrote {out}")
    return 0


def _table(result: dict[str, object]) -> None:
    rows = result.get("throughput") or []
    if rows:
        print(f"\n{'precision':10s} {'batch':>6s} {'N run':>7s} {'samples/s':>11s} {'s/img @1e5':>11s} "
              f"{'reported (2080 Ti)':>19s}  kind")
        for r in rows:  # type: ignore[union-attr]
            print(f"{r['precision']:10s} {r['batch']:6d} {r['n_measured']:7d} {r['samples_per_second']:11.1f} "
                  f"{r['seconds_per_image_at_N_100000']:11.2f} {r['reported_cohen2019_seconds_per_image']:19.1f}  "
                  f"{r['seconds_per_image_kind']}")
    inc = result.get("incremental")
    if inc:
        print(f"\nincremental certification of the int8 copy ({inc['images']} images, N={inc['N_float']}, "  # type: ignore[index]
              f"confidence {inc['combined_confidence']}; reported IRS speedup {inc['reported_ugare2024_speedup']}x):")  # type: ignore[index]
        print(f"{'n_q':>6s} {'certified':>9s} {'ratio total':>11s} {'median':>7s} {'>=4x':>6s} "
              f"{'ratio pA<.99':>12s} {'zeta':>8s} {'r IRS':>7s} {'r scratch@n_q':>13s}")
        for v in inc["summary_by_nq"].values():  # type: ignore[index]
            print(f"{v['n_q']:6d} {v['certified_images']:9d} {v['sample_ratio_total']!s:>11s} "
                  f"{v['sample_ratio_median']!s:>7s} {v['fraction_of_images_ratio_at_least_4']!s:>6s} "
                  f"{v['sample_ratio_total_float_pa_below_0.99']!s:>12s} {v['mean_zeta']!s:>8s} "
                  f"{v['mean_irs_radius']!s:>7s} {v['mean_scratch_radius_at_equal_samples']!s:>13s}")


if __name__ == "__main__":
    raise SystemExit(main())
